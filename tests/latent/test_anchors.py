"""Anchors: images of every mode and shape, seeds, latent files, bad files, and the on-disk cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from instrument.latent.anchors import (
    AnchorCache,
    AnchorError,
    load_anchors,
    load_image,
    load_latent,
    save_latent,
    seed_latent,
    snap_size,
)


def save(path: Path, img: Image.Image, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    # Stored landscape 64x32: red on top, blue below. Orientation 6 = shown rotated 90° clockwise, so the
    # upright picture is portrait 32x64 with red on the right.
    stored = Image.new("RGB", (64, 32), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 64, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path / "rotated.jpg", stored, exif=exif, quality=95)
    img = load_image(path, (32, 64), fit="crop")
    assert img.shape == (3, 64, 32)
    right, left = img[:, :, 20:], img[:, :, :12]
    assert right[0].mean() > 0.8 and right[2].mean() < 0.2
    assert left[2].mean() > 0.8 and left[0].mean() < 0.2


def test_every_mode_loads_to_rgb_in_unit_range(tmp_path):
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 20, 40))
    palette = Image.new("RGB", (40, 40), (0, 200, 0)).quantize(4)
    palette_clear = palette.copy()
    palette_clear.info["transparency"] = palette.getpixel((0, 0))
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))
    deep = Image.fromarray(np.full((40, 40), 32768, dtype=np.uint16))
    assert deep.mode == "I;16"
    files = {
        "rgba": save(tmp_path / "rgba.png", rgba),
        "grey": save(tmp_path / "grey.png", Image.new("L", (40, 40), 200)),
        "deep": save(tmp_path / "deep.png", deep),
        "int": save(tmp_path / "int.tif", Image.fromarray(np.full((40, 40), 65535, dtype=np.int32))),
        "cmyk": save(tmp_path / "cmyk.tif", cmyk),
        "palette": save(tmp_path / "palette.png", palette),
        "palette_clear": save(tmp_path / "palette_clear.png", palette_clear),
        "bits": save(tmp_path / "bits.png", Image.new("1", (40, 40), 1)),
    }
    loaded = {}
    for name, path in files.items():
        img = load_image(path, (32, 24), fit="crop")
        assert img.shape == (3, 24, 32) and img.dtype == torch.float32, name
        assert img.min() >= 0 and img.max() <= 1, name
        loaded[name] = img
    # Transparent half on mid grey, opaque half red.
    assert torch.allclose(loaded["rgba"][:, :, -4:], torch.full((3, 24, 4), 128 / 255), atol=1e-3)
    assert torch.allclose(loaded["rgba"][:, :, :4], torch.tensor([1.0, 0, 0])[:, None, None].expand(3, 24, 4))
    assert torch.allclose(loaded["grey"], torch.full((3, 24, 32), 200 / 255), atol=1e-3)
    # 16 bits scaled down, not clipped to white.
    assert torch.allclose(loaded["deep"], torch.full((3, 24, 32), 0.5), atol=1e-3)
    assert torch.allclose(loaded["int"], torch.ones(3, 24, 32), atol=1e-3)
    assert loaded["cmyk"][0].mean() > 0.9 and loaded["cmyk"][1:].max() < 0.1
    assert loaded["palette"][1].mean() > 0.7 and loaded["palette"][0].max() < 0.1
    assert torch.allclose(loaded["palette_clear"], torch.full((3, 24, 32), 128 / 255), atol=1e-3)
    assert torch.allclose(loaded["bits"], torch.ones(3, 24, 32))


def test_crop_keeps_the_centre_and_pad_adds_grey_bars(tmp_path):
    img = Image.new("L", (128, 64), 0)
    img.paste(255, (64, 0, 128, 64))  # left half black, right half white
    path = save(tmp_path / "wide.png", img)
    crop = load_image(path, (64, 64), fit="crop")
    assert crop[:, :, :30].max() < 0.05 and crop[:, :, 34:].min() > 0.95
    pad = load_image(path, (64, 64), fit="pad")
    assert torch.allclose(pad[:, :16], torch.full((3, 16, 64), 128 / 255), atol=1e-3)
    assert torch.allclose(pad[:, 48:], torch.full((3, 16, 64), 128 / 255), atol=1e-3)
    assert pad[:, 20:44, :28].max() < 0.05 and pad[:, 20:44, 36:].min() > 0.95
    assert snap_size((250, 130), 8) == (248, 128) and snap_size((3, 905), 8) == (8, 904)


def test_bad_files_raise_errors_naming_the_file(tmp_path):
    good = save(tmp_path / "good.png", Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3),
                                                                                           dtype=np.uint8)))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    tiny = save(tmp_path / "tiny.png", Image.new("RGB", (1, 1)))
    cases = {truncated: "broken", text: "not an image", empty: "empty", tiny: "at least 8 px",
             tmp_path / "missing.png": "no such file"}
    for path, words in cases.items():
        with pytest.raises(AnchorError, match=words) as info:
            load_image(path, (64, 64))
        assert str(path) in str(info.value) and info.value.path == str(path)


def test_seeds_have_the_family_statistics_and_are_reproducible():
    a = seed_latent(3, "flux2", (256, 128))
    assert a.shape == (32, 16, 32) and a.dtype == torch.float32
    assert 0.95 < a.std().item() < 1.05 and abs(a.mean().item()) < 0.05
    assert torch.equal(a, seed_latent(3, "flux2", (256, 128)))
    assert not torch.equal(a, seed_latent(4, "flux2", (256, 128)))
    with pytest.raises(ValueError, match="multiple of 8"):
        seed_latent(3, "flux2", (100, 64))


def test_latent_files_round_trip_and_bad_ones_are_named(tmp_path):
    latent = torch.randn(32, 8, 8)
    path = save_latent(tmp_path / "x.safetensors", latent, {"family": "flux2", "size": [64, 64]})
    back, meta = load_latent(path)
    assert torch.equal(back, latent) and meta == {"family": "flux2", "size": "[64, 64]"}
    assert not list(tmp_path.glob("*.tmp"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(AnchorError, match="broken.safetensors"):
        load_latent(broken)
    from safetensors.torch import save_file

    save_file({"weights": latent}, tmp_path / "noname.safetensors")
    with pytest.raises(AnchorError, match="no 'latent' tensor"):
        load_latent(tmp_path / "noname.safetensors")


def test_load_anchors_keeps_going_past_a_bad_spec(shared, taef2, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    four = save_latent(tmp_path / "four.safetensors", torch.randn(4, 8, 8))
    wrong_size = save_latent(tmp_path / "big.safetensors", torch.randn(32, 16, 16))
    ok = save_latent(tmp_path / "ok.safetensors", torch.randn(32, 8, 8))
    specs = [str(shared / "images" / "dog.png"), str(bad), "seed:5", "seed:x", str(four), str(wrong_size),
             str(ok), "seed"]
    anchors, errors = load_anchors(specs, taef2, (64, 64), cache=AnchorCache(tmp_path / "cache"), seed=9)
    assert [a.name for a in anchors] == ["dog", "seed:5", "ok", "seed:9"]
    assert all(a.latent.shape == (32, 8, 8) and a.latent.dtype == torch.float32 for a in anchors)
    assert [Path(e.path).name for e in errors] == ["bad.png", "seed:x", "four.safetensors", "big.safetensors"]
    assert "4 channels" in str(errors[2]) and "--size 128x128" in str(errors[3])
    assert torch.equal(anchors[1].latent, seed_latent(5, "flux2", (64, 64)))


def test_cache_hits_on_the_second_load_and_misses_for_another_size_or_model(shared, taef2, tmp_path,
                                                                             monkeypatch):
    from instrument.decoders import procedural_autoencoder

    calls = []
    encode = taef2.encode
    monkeypatch.setattr(taef2, "encode", lambda images: calls.append(images.shape) or encode(images))
    cache = AnchorCache(tmp_path / "cache")
    dog = [str(shared / "images" / "dog.png")]
    first, _ = load_anchors(dog, taef2, (64, 64), cache=cache)
    second, _ = load_anchors(dog, taef2, (64, 64), cache=cache)
    assert (cache.hits, cache.misses, len(calls)) == (1, 1, 1)
    assert torch.equal(first[0].latent, second[0].latent)
    # A copy under another name has the same content: still a hit.
    (tmp_path / "copy.png").write_bytes(Path(dog[0]).read_bytes())
    load_anchors([str(tmp_path / "copy.png")], taef2, (64, 64), cache=cache)
    assert (cache.hits, len(calls)) == (2, 1)
    load_anchors(dog, taef2, (64, 48), cache=cache)
    load_anchors(dog, taef2, (64, 64), cache=cache, fit="pad")
    assert (cache.hits, cache.misses, len(calls)) == (2, 3, 3)
    other = procedural_autoencoder(device="cpu", dtype=torch.float32)
    anchors, errors = load_anchors(dog, other, (64, 64), cache=cache)
    assert not errors and anchors[0].latent.shape[0] == other.family.latent_channels
    assert cache.misses == 4
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 4 and all(f.suffix == ".safetensors" for f in files)
    # A damaged entry is a miss and gets rewritten.
    for f in files:
        f.write_bytes(b"garbage")
    load_anchors(dog, taef2, (64, 64), cache=cache)
    assert cache.misses == 5 and len(calls) == 4
    load_anchors(dog, taef2, (64, 64), cache=cache)
    assert cache.hits == 3


def test_a_decoder_only_model_says_it_cannot_encode(shared, tmp_path):
    import shutil

    from instrument.decoders import load_autoencoder

    shutil.copy(shared / "models" / "taef2_decoder.pth", tmp_path / "taef2_decoder.pth")
    decoder_only = load_autoencoder(str(tmp_path / "taef2_decoder.pth"), device="cpu", dtype="fp32")
    assert not decoder_only.can_encode
    anchors, errors = load_anchors([str(shared / "images" / "dog.png"), "seed:1"], decoder_only, (64, 64),
                                   cache=None)
    assert [a.name for a in anchors] == ["seed:1"]
    assert "no encoder" in str(errors[0]) and "dog.png" in str(errors[0])


def _finishes(work, seconds: float = 60.0):
    """Run ``work`` in a thread; its result, or a failure if it is still running after ``seconds``."""
    import threading

    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(result=work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked (a FIFO or device read?)"
    return out["result"]


def test_only_regular_files_are_read_a_fifo_or_device_never_blocks(taef2, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    device = tmp_path / "zeros.png"
    device.symlink_to("/dev/zero")
    latent_fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(latent_fifo)
    anchors, errors = _finishes(lambda: load_anchors([str(fifo), str(device), str(latent_fifo), "seed:1"],
                                                     taef2, (64, 64), cache=None))
    assert [a.name for a in anchors] == ["seed:1"]
    assert [Path(e.path).name for e in errors] == ["pipe.png", "zeros.png", "pipe.safetensors"]
    assert "FIFO" in str(errors[0]) and "device" in str(errors[1]) and "regular file" in str(errors[2])
    # In a folder they are passed over; the pictures beside them load.
    save(tmp_path / "real.png", Image.new("RGB", (32, 32), (10, 200, 30)))
    anchors, errors = _finishes(lambda: load_anchors([str(tmp_path)], taef2, (64, 64), cache=None))
    assert [a.name for a in anchors] == ["real"] and not errors


def test_a_file_name_that_is_not_utf8_does_not_stop_the_others(shared, taef2, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    latin1 = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    latin1.write_bytes((shared / "images" / "panda.png").read_bytes())
    (folder / "dog.png").write_bytes((shared / "images" / "dog.png").read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG nope")
    cache = AnchorCache(tmp_path / "cache")
    anchors, errors = load_anchors([str(folder)], taef2, (64, 64), cache=cache)
    assert sorted(a.name for a in anchors) == ["caf\ufffd", "dog"]  # a name any font or file can hold
    assert all(a.name.encode("utf-8") for a in anchors)  # (a lone surrogate would fail here, in pygame, JSON)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # both good ones cached
    named = next(a for a in anchors if a.name != "dog")
    assert named.metadata["image"] == "caf\ufffd.png" and named.source == str(latin1)
    assert [Path(e.path).name for e in errors] == ["broken.png"]
    again, _ = load_anchors([str(latin1)], taef2, (64, 64), cache=cache)
    assert cache.hits == 1 and torch.equal(again[0].latent, named.latent)
    bad = tmp_path / os.fsdecode(b"\xff\xfe.png")
    bad.write_text("text")
    _, errors = load_anchors([str(bad)], taef2, (64, 64), cache=None)
    assert "\ufffd\ufffd.png: not an image" in str(errors[0])
    str(errors[0]).encode("utf-8")  # printable on any terminal


def test_seeds_out_of_range_are_refused_not_overflowed(taef2):
    specs = ["seed:99999999999999999999", "seed:-1", "seed:9223372036854775807", "seed:1e3"]
    anchors, errors = load_anchors(specs, taef2, (64, 64), cache=None)
    assert [a.name for a in anchors] == ["seed:9223372036854775807"]
    assert [e.path for e in errors] == ["seed:99999999999999999999", "seed:-1", "seed:1e3"]
    assert all("from 0 to 9223372036854775807" in str(e) for e in errors)
    with pytest.raises(ValueError, match="outside"):
        seed_latent(2**63, "flux2", (64, 64))


def test_a_web_page_or_lfs_pointer_saved_as_an_image_is_named_as_such(tmp_path):
    page = tmp_path / "dog.png"
    page.write_bytes(b"<!DOCTYPE html><html><body>Not found</body></html>")
    pointer = tmp_path / "cat.jpg"
    pointer.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n")
    with pytest.raises(AnchorError, match="looks like an HTML page.*download the real file"):
        load_image(page, (64, 64))
    with pytest.raises(AnchorError, match="Git LFS pointer"):
        load_image(pointer, (64, 64))


def test_latent_metadata_is_read_from_the_header(tmp_path):
    """``load_latent`` reads the header through safetensors (metadata, then the one tensor it needs)."""
    from safetensors.torch import save_file

    save_file({"latent": torch.ones(4, 2, 2), "extra": torch.zeros(1)}, tmp_path / "x.safetensors",
              metadata={"family": "sd15", "kind": "seed"})
    latent, meta = load_latent(tmp_path / "x.safetensors")
    assert meta == {"family": "sd15", "kind": "seed"} and torch.equal(latent, torch.ones(4, 2, 2))
    save_file({"latent": torch.ones(4, 2, 2)}, tmp_path / "bare.safetensors")
    assert load_latent(tmp_path / "bare.safetensors")[1] == {}


def test_the_cache_folder_is_the_platforms_user_cache(monkeypatch, tmp_path):
    from platformdirs.macos import MacOS

    from instrument.latent.anchors import user_cache_dir

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert user_cache_dir() == tmp_path / ".cache" / "latent-instrument" / "anchors"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert user_cache_dir() == tmp_path / "xdg" / "latent-instrument" / "anchors"
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    mac = MacOS("latent-instrument", appauthor=False, opinion=False)  # the arguments user_cache_dir passes
    assert mac.user_cache_path == tmp_path / "Library" / "Caches" / "latent-instrument"
    assert AnchorCache().root == user_cache_dir()
