"""Fixtures for the rig tests: the shared taef2 pair with two small anchors, and a render loop to play."""

from __future__ import annotations

import pytest
import torch

SIZE = 64  # small pictures: the rig's parts are under test, not the decoder


@pytest.fixture(scope="session")
def loader(taef2, shared):
    """A ``load`` for Renderer and Session: taef2 on the CPU with dog and pastry, no full decoder."""
    from instrument.latent.anchors import load_anchors

    images = [str(shared / "images" / "dog.png"), str(shared / "images" / "pastry.png")]
    anchors, errors = load_anchors(images, taef2, (SIZE, SIZE), cache=None)
    assert not errors
    latents = torch.stack([a.latent for a in anchors])

    def load(say):
        return taef2, None, latents.clone(), ["dog", "pastry"], []

    return load
