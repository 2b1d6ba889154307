"""Fixtures for the widget and notebook tests (each module skips without the notebook extra's packages)."""

from __future__ import annotations

import copy

import pytest
from torch import nn

import instrument as li
from instrument.decoders.autoencoder import Autoencoder

SIZE = 64  # pixels: small pictures keep the suite quick on two cores
MISSING = "the notebook extra is not installed: pip install -e '.[notebook]'"


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


@pytest.fixture(scope="session")
def model(shared):
    """taef2 for the widgets (their frame pipelines switch its layout to channels_last)."""
    return li.load(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def anchors(model, shared):
    """dog, pastry and a seed at SIZE: latents [3, 32, 8, 8]."""
    images = shared / "images"
    return li.encode(model, [images / "dog.png", images / "pastry.png", "seed:2"], SIZE, cache=False)


class Inverted(nn.Module):
    """A decoder's negative: tells its pictures from the decoder's own."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z):
        return 1 - self.inner(z)


@pytest.fixture(scope="session")
def full(model):
    """A 'full' decoder whose pictures are the fast one's negatives (255 - fast, within rounding)."""
    decoder = Inverted(copy.deepcopy(model.decoder_module))
    return Autoencoder(decoder, None, family=model.family, label="inverted taef2", arch="taesd",
                       device="cpu", dtype=model.dtype)
