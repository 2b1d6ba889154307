"""Fixtures for the live tests: the shared taef2 pair and images, small anchors, a session loader."""

from __future__ import annotations

import pytest
import support
import torch

SIZE = 128  # small pictures keep the suite fast on two cores


def wait_for(condition, timeout: float = 30.0) -> bool:
    """``support.wait_for`` with the live tests' patience: a render thread on two cores starts slowly."""
    return support.wait_for(condition, timeout, interval=0.02)


@pytest.fixture(scope="session")
def anchor_latents(taef2, shared) -> torch.Tensor:
    """dog and pastry encoded at SIZE: [2, 32, SIZE/8, SIZE/8]."""
    from instrument.latent.anchors import load_anchors

    images = [str(shared / "images" / "dog.png"), str(shared / "images" / "pastry.png")]
    anchors, errors = load_anchors(images, taef2, (SIZE, SIZE), cache=None)
    assert not errors
    return torch.stack([a.latent for a in anchors])


@pytest.fixture
def session_loader(taef2, anchor_latents):
    """A ``load`` for Renderer/Session: taef2 on the CPU with the two anchors, no full decoder."""

    def load(say):
        return taef2, None, anchor_latents.clone(), ["dog", "pastry"], []

    return load
