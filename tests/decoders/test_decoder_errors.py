"""Bad weight files give a ModelLoadError that names the file and says what is wrong."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import tiny_kl

from instrument.decoders import ModelLoadError, load_autoencoder


def expect_error(path, *words: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_autoencoder(str(path), device="cpu")
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path):
    expect_error(tmp_path / "taesd_decoder.pth", "no such file")
    expect_error(tmp_path / "nothing_here", "no such file")


@pytest.mark.parametrize("name", ["taesd_decoder.pth", "vae.safetensors", "vae.ckpt"])
def test_zero_byte_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    expect_error(tmp_path / name, "empty")


def test_truncated_pth(shared, tmp_path):
    data = (shared / "models" / "taef2_decoder.pth").read_bytes()
    (tmp_path / "taef2_decoder.pth").write_bytes(data[: len(data) // 2])
    expect_error(tmp_path / "taef2_decoder.pth", "truncated or corrupt")


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "vae.safetensors"
    save_file(tiny_kl().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    expect_error(path, "truncated or corrupt")


class Payload:
    """Any class outside torch's weights_only allow-list: unpickling it could run code."""


def test_pickle_with_objects_is_refused(tmp_path):
    path = tmp_path / "taesd_decoder.pth"
    torch.save({"1.weight": torch.zeros(64, 4, 3, 3), "extra": Payload()}, path)
    expect_error(path, "weights_only")


def test_wrong_family(shared):
    path = shared / "models" / "taef2_decoder.pth"
    with pytest.raises(ModelLoadError) as info:
        load_autoencoder(str(path), family="sd15", device="cpu")
    message = str(info.value)
    assert str(path) in message and "32 latent channels" in message and "flux2" in message


def test_incomplete_taesd(tmp_path):
    path = tmp_path / "taesd_decoder.pth"
    torch.save({"1.weight": torch.zeros(64, 4, 3, 3)}, path)
    message = expect_error(path, "TAESD decoder", "missing")
    assert len(message) < 400


def test_not_a_model(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"some.weight": torch.zeros(3)}, path)
    expect_error(path, "not a VAE or TAESD")


def test_folder_without_model(tmp_path):
    expect_error(tmp_path, "config.json")


def test_hub_repo_not_cached_offline():
    with pytest.raises(ModelLoadError, match="madebyollin/taesd.*not in the Hugging Face cache"):
        load_autoencoder("madebyollin/taesd", device="cpu")
