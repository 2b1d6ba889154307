"""``li.load``, ``li.encode``, ``li.decode``: the command line's loaders, with the real taef2 pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import instrument as li
from instrument.decoders import ModelLoadError, load_autoencoder
from instrument.latent.anchors import AnchorError, load_anchors

from .conftest import SIZE

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_package_loads_no_torch_until_the_library_is_used():
    code = ("import sys, instrument as li; print('torch' in sys.modules); li.slerp; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_every_public_name_resolves_and_unknown_names_fail():
    from instrument import api

    assert set(li.__all__) == set(api.__all__) | {"Scrubber", "MidiLink"}
    for name in api.__all__:
        assert getattr(li, name) is getattr(api, name)
    assert li.slerp is __import__("instrument.latent.geometry", fromlist=["slerp"]).slerp
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        li.nonesuch  # noqa: B018
    from instrument import render  # a submodule is still imported as one

    assert render.__name__ == "instrument.render"


def test_load_reads_a_taesd_pair_as_the_command_line_does(shared, model):
    decoder = shared / "models" / "taef2_decoder.pth"
    same = load_autoencoder(str(decoder), device="cpu", dtype="fp32")
    assert (model.label, model.family.name, model.can_encode) == (same.label, "flux2", True)
    encoder_half = li.load(str(shared / "models" / "taef2_encoder.pth"), device="cpu", dtype="fp32")
    assert encoder_half.can_encode and encoder_half.family.name == "flux2"


def test_load_fails_with_the_command_lines_errors(shared, tmp_path):
    with pytest.raises(ModelLoadError, match="no such file or folder"):
        li.load(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelLoadError, match="32 latent channels, but family sd15 has 4"):
        li.load(str(shared / "models" / "taef2_decoder.pth"), family="sd15", device="cpu")
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache .* network is off"):
        li.load("someone/no-such-vae", offline=True)


def test_load_auto_without_the_cached_model_stands_in_the_procedural_decoder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    model = li.load(device="cpu")
    assert model.arch == "procedural" and "BUILT-IN PROCEDURAL DECODER" in model.notice


def test_encode_takes_files_seeds_folders_and_pictures_in_memory(model, images, tmp_path):
    dog = images / "dog.png"
    found = li.encode(model, [dog, "seed:5", "seed"], SIZE, seed=9, cache=False)
    assert found.names == ["dog", "seed:5", "seed:9"] and found.latents.shape == (3, 32, 8, 8)
    assert found.size == (SIZE, SIZE) and found.family.name == "flux2"
    expected, errors = load_anchors([str(dog), "seed:5"], model, (SIZE, SIZE), cache=None)
    assert not errors
    assert torch.equal(found.latents[:2], torch.stack([a.latent for a in expected]))
    with Image.open(dog) as picture:
        picture.load()
    array = np.asarray(picture.convert("RGB"))
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255
    memory = li.encode(model, [picture, array, tensor], SIZE, cache=False)
    assert memory.sources == ["<image 0>", "<image 1>", "<image 2>"]
    for latent in memory:
        assert torch.equal(latent, found["dog"])  # the same fitting and encoding as the file
    folder = li.encode(model, str(images), 32, cache=False)
    assert folder.names == ["dog", "family", "panda", "pastry", "scribe"]


def test_encode_sizes_snap_and_anchors_index_by_name_and_slice(model, anchors):
    odd = li.encode(model, "seed:1", (61, 35), cache=False)
    assert odd.size == (64, 32) and odd.latents.shape == (1, 32, 4, 8)
    assert torch.equal(anchors["pastry"], anchors[1])
    assert anchors[1:].names == ["pastry"] and anchors[[1, 0]].names == ["pastry", "dog"]
    with pytest.raises(KeyError, match="no anchor called 'cat'; the anchors are dog, pastry"):
        anchors["cat"]  # noqa: B018


def test_encode_names_a_bad_file_or_skips_it(model, images, tmp_path, caplog):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"<!doctype html><html>not a picture</html>")
    with pytest.raises(AnchorError, match="broken.png: not an image: looks like an HTML page"):
        li.encode(model, [images / "dog.png", broken], SIZE, cache=False)
    kept = li.encode(model, [broken, images / "dog.png"], SIZE, cache=False, strict=False)
    assert kept.names == ["dog"] and "broken.png" in caplog.text
    with pytest.raises(AnchorError, match="no anchor could be loaded"):
        li.encode(model, [broken], SIZE, cache=False, strict=False)
    with pytest.raises(AnchorError, match=r"^<image 1>: image is only 4x4 px"):
        li.encode(model, ["seed:1", np.zeros((4, 4, 3), np.uint8)], SIZE, cache=False)
    with pytest.raises(ValueError, match=r"a picture array is \[H, W, 3\] or \[H, W\], not \(4, 4, 5\)"):
        li.encode(model, np.zeros((4, 4, 5), np.uint8), SIZE, cache=False)


def test_encode_caches_by_content_where_asked(model, images, tmp_path):
    cache = tmp_path / "anchors"
    first = li.encode(model, images / "dog.png", SIZE, cache=cache)
    entries = list(cache.glob("*.safetensors"))
    assert len(entries) == 1
    again = li.encode(model, images / "dog.png", SIZE, cache=cache)
    assert torch.equal(first.latents, again.latents) and list(cache.glob("*.safetensors")) == entries
    li.encode(model, images / "dog.png", SIZE)  # cache=True: the user cache folder (here the test's own)
    assert list((tmp_path / "user-cache").rglob("*.safetensors"))


def test_decode_gives_pictures_or_arrays_batched(model, anchors):
    one = li.decode(model, anchors[0])
    assert isinstance(one, Image.Image) and one.size == (SIZE, SIZE)
    many = li.decode(model, anchors)
    assert [p.size for p in many] == [(SIZE, SIZE)] * 2
    arrays = li.decode(model, anchors, output="array", batch=1)
    assert arrays.shape == (2, SIZE, SIZE, 3) and arrays.dtype == np.uint8
    assert np.abs(arrays.astype(int) - np.stack([np.asarray(p) for p in many]).astype(int)).max() <= 1
    with torch.no_grad():
        plain = model.decode(anchors.latents[:1])[0]
    own = (plain * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(one), own)
    assert li.decode(model, anchors, size=(48, 32), output="array").shape == (2, 32, 48, 3)


def test_decode_refuses_what_is_not_latents(model, anchors):
    with pytest.raises(ValueError, match="output must be pil or array"):
        li.decode(model, anchors, output="png")
    with pytest.raises(ValueError, match=r"\[C, h, w\] or \[B, C, h, w\]"):
        li.decode(model, anchors.latents[:0])
    with pytest.raises(ValueError, match="decodes \\[B, 32, h, w\\] latents"):
        li.decode(model, torch.zeros(4, 8, 8))
