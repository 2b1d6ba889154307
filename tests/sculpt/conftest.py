"""Fixtures for the sculpt tests: tiny random models saved the ways users keep real ones; no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_sculpt import (
    save_pipeline,
    save_single_file,
    save_tiny_taesd,
    scheduler,
    tiny_text_encoder,
    tiny_unet,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Every test here runs offline, against an empty Hugging Face cache of its own."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """A folder with ``tiny-turbo/`` (an SD 1.x-shaped pipeline folder, Euler trailing like SD-Turbo),
    ``tiny-sd/`` (the same UNet, not distilled), ``tiny-lcm/`` (LCMScheduler), ``tiny15.safetensors`` and
    ``tiny21.safetensors`` (single files, the first with the pipelines' weights)."""
    root = tmp_path_factory.mktemp("sculpt-models")
    save_pipeline(root / "tiny-turbo", "sd15")
    shutil.copytree(root / "tiny-turbo", root / "tiny-sd")
    shutil.copytree(root / "tiny-turbo", root / "tiny-lcm")
    scheduler("lcm").save_pretrained(root / "tiny-lcm" / "scheduler")
    save_single_file(root / "tiny15.safetensors", "sd15", tiny_unet("sd15"), tiny_text_encoder("sd15"))
    save_single_file(root / "tiny21.safetensors", "sd21", tiny_unet("sd21"), tiny_text_encoder("sd21"))
    return root


@pytest.fixture(scope="session")
def taesd_folder(tmp_path_factory) -> Path:
    """A tiny TAESD (SD 1.x latents) saved as a diffusers folder: the decoder of the live sculpting tests."""
    return save_tiny_taesd(tmp_path_factory.mktemp("sculpt-decoder") / "tiny-taesd")
