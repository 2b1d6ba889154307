"""Fixtures for the lab tests: the real taef2 pair and the five shared pictures, encoded small (CPU-fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

NAMES = ["dog", "pastry", "scribe", "panda", "family"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ae(shared):
    """A taef2 of the lab's own: the live tests switch theirs to channels_last, where jvp can't run."""
    from instrument.decoders import load_autoencoder

    torch.manual_seed(0)
    return load_autoencoder(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="fp32")


def picture(path: Path, side: int) -> torch.Tensor:
    """A picture resized to side×side -> Tensor[3,side,side] in [0, 1]."""
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB").resize((side, side), Image.LANCZOS), dtype=np.float32)
    return torch.from_numpy(array / 255).permute(2, 0, 1)


@pytest.fixture(scope="session")
def latents128(ae, shared) -> torch.Tensor:
    """The five shared pictures encoded at 128×128: Tensor[5,32,16,16]."""
    return ae.encode(torch.stack([picture(shared / "images" / f"{n}.png", 128) for n in NAMES]))


@pytest.fixture(scope="session")
def latents64(ae, shared) -> torch.Tensor:
    """The five shared pictures encoded at 64×64: Tensor[5,32,8,8] (for tests that decode hundreds)."""
    return ae.encode(torch.stack([picture(shared / "images" / f"{n}.png", 64) for n in NAMES]))
