"""Fixtures for the latent tests: the shared images and the real taef2 autoencoder (CPU, fp32)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).parents[2] / ".." / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    needed = [SHARED / "models" / "taef2_encoder.pth", SHARED / "models" / "taef2_decoder.pth",
              SHARED / "images" / "dog.png"]
    if not all(p.is_file() for p in needed):
        pytest.skip(f"shared models and images not found at {SHARED.resolve()}")
    return SHARED.resolve()


@pytest.fixture(scope="session")
def taef2(shared):
    from instrument.decoders import load_autoencoder

    path = shared / "models" / "taef2_decoder.pth"
    return load_autoencoder(str(path), family="flux2", device="cpu", dtype="fp32")
