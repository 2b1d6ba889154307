"""Tiny AutoEncoder for Stable Diffusion (TAESD) and its family: the whole model in a page.

After madebyollin's ``taesd.py`` (MIT). The ``.pth`` files are state dicts of the two ``nn.Sequential`` below,
so the list of layers *is* the checkpoint layout (``<index>.<path>``; see ``shared/models/LAYOUT.md``).

Shapes and ranges: encoder ``[B, 3, H, W]`` RGB in [0, 1] -> ``[B, L, H/8, W/8]`` diffusion-space latents
(≈ [-3, 3]); decoder the reverse, giving ≈ [0, 1] (clamp before display). ``L`` is 4 for taesd/taesdxl,
16 for taesd3/taef1, 32 for taef2.
"""

from __future__ import annotations

import torch
from torch import nn


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of latents to about ±3, so that a wild latent cannot blow up the decoder."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Three 3x3 convs plus a skip; with ``pool`` (taef2's deepest blocks) a GroupNorm branch comes first."""

    def __init__(self, n: int, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(conv(n, n), nn.ReLU(), conv(n, n), nn.ReLU(), conv(n, n))
        self.fuse = nn.ReLU()
        self.pool = None
        if pool:
            wide = 4 * n
            self.pool = nn.Sequential(
                nn.Conv2d(n, wide, 1, bias=False), nn.GroupNorm(4, wide), nn.ReLU(),
                nn.Conv2d(wide, n, 1, bias=False),
            )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def Down() -> nn.Conv2d:
    """Halve the resolution: one strided conv (a single layer index in the checkpoint)."""
    return conv(64, 64, stride=2, bias=False)


def Up() -> tuple[nn.Module, nn.Module]:
    """Double the resolution: nearest upsample, then a conv (two layer indices)."""
    return nn.Upsample(scale_factor=2), conv(64, 64, bias=False)


def Encoder(latent_channels: int = 4, pool: bool = False) -> nn.Sequential:
    """[B, 3, H, W] in [0, 1] -> [B, latent_channels, H/8, W/8]."""
    return nn.Sequential(
        conv(3, 64), Block(64),
        Down(), Block(64), Block(64), Block(64),
        Down(), Block(64), Block(64), Block(64),
        Down(), Block(64, pool), Block(64, pool), Block(64, pool),
        conv(64, latent_channels),
    )  # fmt: skip


def Decoder(latent_channels: int = 4, pool: bool = False) -> nn.Sequential:
    """[B, latent_channels, h, w] -> [B, 3, 8h, 8w] in ≈ [0, 1]."""
    return nn.Sequential(
        Clamp(), conv(latent_channels, 64), nn.ReLU(),
        Block(64, pool), Block(64, pool), Block(64, pool), *Up(),
        Block(64), Block(64), Block(64), *Up(),
        Block(64), Block(64), Block(64), *Up(),
        Block(64), conv(64, 3),
    )  # fmt: skip


def checkpoint_info(state_dict: dict[str, torch.Tensor], part: str) -> tuple[int, bool]:
    """(latent channels, pooled blocks?) read off an encoder or decoder state dict; KeyError if not TAESD."""
    latent_key = "14.weight" if part == "encoder" else "1.weight"
    channels = state_dict[latent_key].shape[0 if part == "encoder" else 1]
    pooled = any(".pool." in k for k in state_dict)
    return int(channels), pooled
