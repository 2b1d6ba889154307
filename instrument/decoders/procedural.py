"""The built-in decoder: no weights, no download, always there, so that the instrument always starts.

It is *not* an image model. A fixed, seeded CPPN (a compositional pattern-producing network: a small per-pixel
MLP of sines) paints each pixel from its position and from the latent there, smoothly upsampled. Every step is
smooth, so a small move in the latent is a small change in the picture, and seeds give colourful, marbled,
flowing fields: enough to play, rehearse a mapping and test a controller.

Its encoder is a fixed projection, not a learned one: the picture is averaged down to the latent grid and
each cell's colour goes through a fixed random linear map to 4 channels. An image so becomes an anchor that
carries its coarse colour layout; decoding that anchor does not give the image back.

Shapes and ranges: latents [B, 4, h, w] (about unit std) -> pixels [B, 3, 8h, 8w] in [0, 1], and back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LATENT_CHANNELS = 4
DOWNSCALE = 8
HIDDEN = 32
FREQUENCIES = (1.0, 2.0, 3.0)  # of the warped position features, in half-cycles per picture
SCALES = (3, 8)  # the latent is read as smooth fields on grids this coarse (plus its global mean)


class ProceduralDecoder(nn.Module):
    """[B, 4, h, w] -> [B, 3, 8h, 8w] in [0, 1].

    The latent is read at a few coarse scales (area means, rescaled so that a Gaussian seed gives unit-std
    fields, bicubically upsampled): two channels warp the pixel positions, the others and the global mean feed
    the CPPN beside sines of the warped positions. Coarse reading is what makes pictures rather than static.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n_in = 1 + 4 * len(FREQUENCIES) + 2 * len(SCALES) + LATENT_CHANNELS
        # Fixed random weights, kept as buffers: they move with .to() and are never trained or saved.
        self.register_buffer("w1", torch.randn(HIDDEN, n_in, generator=g) * 1.2)
        self.register_buffer("b1", torch.rand(HIDDEN, generator=g) * 2 * math.pi)
        self.register_buffer("w2", torch.randn(HIDDEN, HIDDEN, generator=g) / math.sqrt(HIDDEN) * 2.0)
        self.register_buffer("w3", torch.randn(3, HIDDEN, generator=g) / math.sqrt(HIDDEN) * 2.2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, _, h, w = z.shape
        size = (h * DOWNSCALE, w * DOWNSCALE)
        fields = [self.field(z, n, size) for n in SCALES]
        y = torch.linspace(-1, 1, size[0], device=z.device, dtype=z.dtype)[:, None].expand(size)
        x = torch.linspace(-1, 1, size[1], device=z.device, dtype=z.dtype)[None, :].expand(size)
        u = x + 0.5 * fields[0][:, 0] + 0.15 * fields[1][:, 0]  # [B, H, W]: domain warp, coarse then medium
        v = y + 0.5 * fields[0][:, 1] + 0.15 * fields[1][:, 1]
        features = [torch.sqrt(x * x + y * y).expand(b, -1, -1)]
        for f in FREQUENCIES:
            features += [torch.sin(math.pi * f * u), torch.cos(math.pi * f * u)]
            features += [torch.sin(math.pi * f * v), torch.cos(math.pi * f * v)]
        features = torch.stack(features, 1)
        overall = soft_bound(z.mean(dim=(2, 3), keepdim=True) * math.sqrt(h * w))  # unit std for a seed
        inputs = torch.cat([features, *(f[:, 2:] for f in fields), overall.expand(-1, -1, *size)], 1)
        hidden = torch.sin(torch.einsum("oc,bchw->bohw", self.w1, inputs) + self.b1[:, None, None])
        hidden = torch.tanh(torch.einsum("oc,bchw->bohw", self.w2, hidden))
        return torch.sigmoid(torch.einsum("oc,bchw->bohw", self.w3, hidden))

    @staticmethod
    def field(z: torch.Tensor, cells: int, size: tuple[int, int]) -> torch.Tensor:
        """The latent averaged onto a ``cells``-square grid (≈ unit std for a seed), upsampled to ``size``."""
        h, w = z.shape[-2:]
        grid = F.adaptive_avg_pool2d(z, (min(cells, h), min(cells, w)))
        grid = grid * math.sqrt(h * w / (grid.shape[-2] * grid.shape[-1]))
        return F.interpolate(soft_bound(grid), size=size, mode="bicubic", align_corners=False)


def soft_bound(x: torch.Tensor) -> torch.Tensor:
    """About x for |x| < 1, never beyond ±2: an encoded image's smooth latent (far from a seed's white noise,
    so its coarse means are large) must not wind the warp into ripples."""
    return 2 * torch.tanh(x / 2)


class ProceduralEncoder(nn.Module):
    """[B, 3, H, W] in [0, 1] -> [B, 4, H/8, W/8]: area average, then a fixed random colour projection."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed + 1)
        self.register_buffer("w", torch.randn(LATENT_CHANNELS, 3, generator=g) * 2.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cells = F.avg_pool2d(images, DOWNSCALE)
        return torch.einsum("oc,bchw->bohw", self.w, cells - 0.5)
