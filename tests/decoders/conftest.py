"""Fixtures for the decoder tests: the shared taef2 pair, tiny random diffusers models, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).parents[2] / ".." / "shared"


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Every test here runs offline, against an empty Hugging Face cache of its own."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "models" / "taef2_decoder.pth").is_file():
        pytest.skip(f"shared assets not found at {SHARED.resolve()}")
    return SHARED.resolve()
