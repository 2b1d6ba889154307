"""A corpus of broken model files and folders: each gives a ModelLoadError (a UserError) naming the file
and the right cause, never a raw IndexError/KeyError/AttributeError; through ``encode``: one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import tiny_kl

from instrument.cli import main
from instrument.decoders import ModelLoadError, load_autoencoder
from instrument.errors import UserError

HTML = b"<!DOCTYPE html>\n<html><head><title>madebyollin/taesd at main</title></head><body></body></html>\n"
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7c0cbd\nsize 2449812\n"


class Payload:
    """A class outside torch's weights_only allow-list: unpickling it could run code."""


def safetensors_raw(path: Path, header: bytes, body: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)


def taef2_state(shared: Path) -> dict[str, torch.Tensor]:
    return torch.load(shared / "models" / "taef2_decoder.pth", weights_only=True)


def kl_state() -> dict[str, torch.Tensor]:
    return tiny_kl().state_dict()


def with_rank(state: dict, key: str, shape: tuple[int, ...]) -> dict:
    return {**state, key: torch.zeros(shape)}


# name -> (write the file at path, words the message must hold)
FILES: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "zero.pth": (lambda p, s: p.write_bytes(b""), ("empty",)),
    "zero.safetensors": (lambda p, s: p.write_bytes(b""), ("empty",)),
    "html.pth": (lambda p, s: p.write_bytes(HTML), ("not a checkpoint", "HTML page", "download the real")),
    "html.safetensors": (lambda p, s: p.write_bytes(HTML), ("HTML page", "download the real file")),
    "lfs.pth": (lambda p, s: p.write_bytes(LFS), ("not a checkpoint", "Git LFS pointer", "download")),
    "lfs.safetensors": (lambda p, s: p.write_bytes(LFS), ("Git LFS pointer",)),
    "error_body.pth": (lambda p, s: p.write_bytes(b'{"error":"Repository not found"}'), ("a text file",)),
    "truncated_decoder.pth": (
        lambda p, s: p.write_bytes((s / "models" / "taef2_decoder.pth").read_bytes()[:50_000]),
        ("truncated or corrupt", "download it again"),
    ),
    "garbage.pth": (lambda p, s: p.write_bytes(bytes(range(256)) * 8), ("truncated or corrupt",)),
    "objects.pth": (lambda p, s: torch.save({"1.weight": torch.zeros(64, 4, 3, 3), "x": Payload()}, p),
                    ("holds Python objects", "weights_only")),
    "a_list.pth": (lambda p, s: torch.save([torch.zeros(3)], p), ("expected a state dict", "list")),
    "no_tensors.pth": (lambda p, s: torch.save({"a": 1, "b": "text"}, p), ("holds no tensors",)),
    "wrong_keys.safetensors": (lambda p, s: save_file({"some.weight": torch.zeros(3)}, p),
                               ("not a VAE or TAESD",)),
    "wrapped_wrong_keys.pth": (lambda p, s: torch.save({"state_dict": {"weird.key": torch.zeros(2)}}, p),
                               ("not a VAE or TAESD",)),
    "taesd_decoder_flat.pth": (lambda p, s: torch.save({"1.weight": torch.zeros(64)}, p),
                               ("not a TAESD decoder", "1.weight")),
    "taesd_decoder_scalar.pth": (lambda p, s: torch.save({"1.weight": torch.tensor(3.0)}, p),
                                 ("not a TAESD decoder",)),
    "taef2_decoder_bent.pth": (
        lambda p, s: torch.save(with_rank(taef2_state(s), "3.conv.0.weight", (3, 3)), p),
        ("does not fit", "3.conv.0.weight"),
    ),
    "taef2_decoder_holes.pth": (
        lambda p, s: torch.save({k: v for k, v in taef2_state(s).items() if not k.startswith("3.")}, p),
        ("does not fit", "missing keys"),
    ),
    "kl_flat_conv_in.safetensors": (
        lambda p, s: save_file(with_rank(kl_state(), "decoder.conv_in.weight", (3,)), p),
        ("without a decoder", "decoder.conv_in.weight"),
    ),
    "kl_no_mid_block.safetensors": (
        lambda p, s: save_file({k: v for k, v in kl_state().items() if "mid_block" not in k}, p),
        ("does not fit an AutoencoderKL",),
    ),
    "ldm_decoder_only.pth": (
        lambda p, s: torch.save({"decoder.up.0.block.0.conv1.weight": torch.zeros(8, 3, 3, 3),
                                 "decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}, p),
        ("not a usable VAE checkpoint",),
    ),
    "ldm_partial.pth": (
        lambda p, s: torch.save({"encoder.down.0.block.0.conv1.weight": torch.zeros(8, 3, 3, 3),
                                 "decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}, p),
        ("incomplete", "missing"),
    ),
    "bad_json_header.safetensors": (lambda p, s: safetensors_raw(p, b"{not"), ("unreadable safetensors",)),
    "list_header.safetensors": (lambda p, s: safetensors_raw(p, b"[1, 2, 3]"), ("unreadable safetensors",)),
    "huge_header.safetensors": (lambda p, s: p.write_bytes(struct.pack("<Q", 2**60) + b"{}"),
                                ("unreadable safetensors",)),
    "short_data.safetensors": (
        lambda p, s: safetensors_raw(
            p, json.dumps({"1.weight": {"dtype": "F32", "shape": [64, 4, 3, 3], "data_offsets": [0, 9216]}})
            .encode(), b"\0" * 10),
        ("unreadable safetensors",),
    ),
    "unknown_dtype.safetensors": (
        lambda p, s: safetensors_raw(
            p, json.dumps({"1.weight": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}).encode(),
            b"\0" * 4),
        ("unreadable safetensors",),
    ),
    "empty_header.safetensors": (lambda p, s: safetensors_raw(p, b"{}"), ("holds no tensors",)),
}


def expect_user_error(source: Path | str, *words: str, **kwargs) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_autoencoder(str(source), device="cpu", **kwargs)
    assert isinstance(info.value, UserError)
    message = str(info.value)
    assert str(source) in message and "\n" not in message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("name", sorted(FILES))
def test_broken_file_is_diagnosed(shared, tmp_path, name):
    write, words = FILES[name]
    path = tmp_path / name
    write(path, shared)
    expect_user_error(path, *words)


def test_a_fifo_named_like_weights_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "taesd_decoder.pth"
    os.mkfifo(fifo)
    expect_user_error(fifo, "FIFO", "not a regular file")


def rewrite_config(**changes) -> Callable[[Path, dict], None]:
    return lambda folder, config: (folder / "config.json").write_text(json.dumps({**config, **changes}))


def write_weights(data: Callable[[bytes], bytes]) -> Callable[[Path, dict], None]:
    def edit(folder: Path, config: dict) -> None:
        weights = folder / "diffusion_pytorch_model.safetensors"
        weights.write_bytes(data(weights.read_bytes()))

    return edit


# A diffusers folder whose config.json or weights are not what they claim: name -> (edit, words)
FOLDERS: dict[str, tuple[Callable[[Path, dict], None], tuple[str, ...]]] = {
    "config_is_a_list": (lambda f, c: (f / "config.json").write_text("[1, 2]"), ("_class_name",)),
    "config_not_json": (lambda f, c: (f / "config.json").write_text("{"), ("unreadable",)),
    "channels_text": (rewrite_config(latent_channels="abc"), ("latent_channels", "not a whole number")),
    "channels_null": (rewrite_config(latent_channels=None), ("latent_channels",)),
    "blocks_too_few": (rewrite_config(block_out_channels=[8]), ("not a usable AutoencoderKL folder",)),
    "blocks_text": (rewrite_config(block_out_channels="x"), ("not a usable AutoencoderKL folder",)),
    "weights_html": (write_weights(lambda data: HTML), ("HTML page", "download the real file")),
    "weights_truncated": (write_weights(lambda data: data[:3000]), ("not a usable AutoencoderKL folder",)),
    "weights_empty": (write_weights(lambda data: b""), ("empty",)),
}


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vae") / "good"
    tiny_kl().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_broken_diffusers_folder_is_diagnosed(good_folder, tmp_path, name):
    edit, words = FOLDERS[name]
    folder = tmp_path / name
    shutil.copytree(good_folder, folder)
    edit(folder, json.loads((good_folder / "config.json").read_text()))
    message = expect_user_error(folder, *words)
    assert "Traceback" not in message


def test_a_scaling_factor_of_the_wrong_type_is_ignored(good_folder, tmp_path):
    folder = tmp_path / "odd_scale"
    shutil.copytree(good_folder, folder)
    rewrite_config(scaling_factor="x")(folder, json.loads((folder / "config.json").read_text()))
    ae = load_autoencoder(str(folder), device="cpu")  # the family's scale is used anyway
    assert ae.latent_scale == ae.family.scale


@pytest.mark.parametrize("name", ["html.pth", "lfs.safetensors", "taesd_decoder_flat.pth",
                                  "kl_flat_conv_in.safetensors", "ldm_decoder_only.pth", "objects.pth",
                                  "truncated_decoder.pth", "no_tensors.pth"])
def test_encode_with_a_broken_model_is_one_line_and_exit_2(shared, tmp_path, capsys, name):
    write, words = FILES[name]
    path = tmp_path / name
    write(path, shared)
    status = main(["encode", str(shared / "images" / "dog.png"), "-o", str(tmp_path / "out"), "--model",
                   str(path), "--full-model", "none", "--device", "cpu", "--size", "64",
                   "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("latent-instrument encode: error: ")
    assert str(path) in lines[0] and all(word in lines[0] for word in words)
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_an_offline_hub_id_that_is_not_cached_is_one_clear_error(tmp_path):
    message = expect_user_error("someone/not-cached-vae", "not in the Hugging Face cache", "network is off")
    assert str(tmp_path / "hf_home" / "hub") in message


def test_a_failed_download_says_why_and_what_to_do(tmp_path, monkeypatch):
    """No cache, network allowed, but the hub cannot be reached: one line saying so, with the ways out."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(repo_id, **kwargs):
        raise LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    message = expect_user_error("someone/some-vae", "could not be reached", "--offline", "--model")
    assert "Traceback" not in message


def test_a_pipeline_repo_named_without_its_vae_folder_says_so(tmp_path, monkeypatch):
    """Downloaded, but the repo's top level has no VAE: the message says to name its vae folder."""
    import huggingface_hub

    def pipeline_repo(repo_id, *, revision, cache_dir, allow_patterns, local_files_only):
        snapshot = cache_dir / "models--someone--pipeline" / "snapshots" / "main"
        if not local_files_only:
            snapshot.mkdir(parents=True, exist_ok=True)  # nothing at the top level matched the patterns
        return str(snapshot)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", pipeline_repo)
    expect_user_error("someone/pipeline", "the repo has no config.json", "someone/pipeline/vae")
