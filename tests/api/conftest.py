"""Fixtures for the library tests: the shared taef2 pair loaded through ``li.load``, two anchors at 64 px."""

from __future__ import annotations

import pytest

import instrument as li

SIZE = 64  # pixels: small pictures keep the suite quick on two cores


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Never the network; the user cache folder (encoded anchors) in the test's own folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


@pytest.fixture(scope="session")
def model(shared):
    """taef2 through the library's loader, on the CPU in fp32 (a model of these tests' own: a Scrubber
    elsewhere switches the shared one to channels_last)."""
    return li.load(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def images(shared):
    return shared / "images"


@pytest.fixture(scope="session")
def anchors(model, images):
    """dog and pastry at SIZE: Anchors with latents [2, 32, 8, 8]."""
    return li.encode(model, [images / "dog.png", images / "pastry.png"], SIZE, cache=False)
