"""Fixtures for the decoder tests: the shared taef2 pair, tiny random diffusers models, no network."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Every test here runs offline, against an empty Hugging Face cache of its own."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

