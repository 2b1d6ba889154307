"""Small drawing helpers shared by the lab's pictures: a hand-made colormap, fonts, tensor <-> PIL."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from instrument.pixels import pixels_to_uint8

# Key colours of matplotlib's perceptually uniform maps, sampled at 9 even steps (0, 1/8, ..., 1).
# Linear interpolation between them keeps lightness monotonic, which is what makes the map readable.
COLORMAPS: dict[str, list[tuple[int, int, int]]] = {
    "magma": [(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
              (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)],
    "viridis": [(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)],
}

# Distinct frame colours for clusters (the Okabe-Ito set, readable by colour-blind viewers, ordered so that
# the first few differ most), then a few more.
CLUSTER_COLORS: list[tuple[int, int, int]] = [
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (204, 121, 167), (240, 228, 66), (0, 114, 178),
    (213, 94, 0), (255, 255, 255), (150, 150, 150), (120, 80, 40),
]


def colormap(values: np.ndarray, name: str = "magma") -> np.ndarray:
    """Values in [0, 1] (any shape, clipped) -> uint8 RGB of shape ``values.shape + (3,)``."""
    try:
        table = np.asarray(COLORMAPS[name], dtype=np.float64)
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; known: {', '.join(COLORMAPS)}") from None
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(table) - 1)
    low = np.minimum(np.floor(x).astype(int), len(table) - 2)
    frac = (x - low)[..., None]
    rgb = table[low] * (1 - frac) + table[low + 1] * frac
    return np.round(rgb).astype(np.uint8)


def cluster_color(index: int) -> tuple[int, int, int]:
    return CLUSTER_COLORS[index % len(CLUSTER_COLORS)]


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def to_pil(pixels: torch.Tensor) -> Image.Image:
    """Tensor[3,H,W] in [0, 1] -> RGB image."""
    return Image.fromarray(pixels_to_uint8(pixels.detach()).cpu().numpy(), "RGB")


def label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int = 14,
          fill: tuple[int, int, int] = (255, 255, 255), anchor: str = "la") -> None:
    """Text with a dark outline, readable on any background."""
    draw.text(xy, text, font=font(size), fill=fill, anchor=anchor, stroke_width=2, stroke_fill=(0, 0, 0))
