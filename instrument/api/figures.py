"""Pictures of results for notebooks and reports, drawn with Pillow (no plotting library needed):
``sheet`` lays pictures out in a grid, ``chart`` draws lines of numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from instrument.lab.draw import cluster_color, font, label

BACKGROUND = (24, 24, 28)
INK = (230, 230, 230)
GRID = (70, 70, 78)


def sheet(pictures: Sequence[Image.Image | np.ndarray], columns: int = 0, *, labels: Sequence[str] = (),
          width: int = 0, gap: int = 4) -> Image.Image:
    """Pictures (PIL images or uint8 arrays [H, W, 3]) in a grid, left to right then down, each
    ``width`` pixels wide (default: the first picture's width), ``columns`` to a row (0: all in one row),
    with an optional caption under each."""
    if not pictures:
        raise ValueError("a sheet needs at least one picture")
    images = [p if isinstance(p, Image.Image) else Image.fromarray(np.asarray(p)) for p in pictures]
    width = width or images[0].width
    height = round(width * images[0].height / images[0].width)
    columns = columns or len(images)
    rows = math.ceil(len(images) / columns)
    caption = 18 if labels else 0
    canvas = Image.new("RGB", (columns * (width + gap) + gap, rows * (height + caption + gap) + gap),
                       BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for k, image in enumerate(images):
        x = gap + (k % columns) * (width + gap)
        y = gap + (k // columns) * (height + caption + gap)
        canvas.paste(image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS), (x, y))
        if k < len(labels):
            draw.text((x + width / 2, y + height + 2), str(labels[k]), font=font(12), fill=INK, anchor="ma")
    return canvas


def chart(series: Mapping[str, Sequence[float] | torch.Tensor], *, title: str = "", xlabel: str = "",
          ylabel: str = "", size: tuple[int, int] = (640, 320)) -> Image.Image:
    """Lines of numbers, one per entry of ``series`` (name -> values, plotted against their index), on
    shared axes from 0 to the largest value, with a legend: e.g. a path's profile, even vs paced."""
    lines = {name: torch.as_tensor(values, dtype=torch.float64).numpy() for name, values in series.items()}
    if not lines or not any(len(v) for v in lines.values()):
        raise ValueError("a chart needs at least one series with values")
    top = max(float(np.nanmax(v)) for v in lines.values() if len(v)) or 1.0
    longest = max(len(v) for v in lines.values())
    width, height = size
    left, right, upper, lower = 64, 16, 56, 44
    canvas = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    plot_w, plot_h = width - left - right, height - upper - lower

    def point(i: float, value: float) -> tuple[float, float]:
        return left + plot_w * i / max(longest - 1, 1), upper + plot_h * (1 - value / top)

    for j in range(5):  # horizontal grid lines with their values
        value = top * j / 4
        _, y = point(0, value)
        draw.line([left, y, width - right, y], fill=GRID)
        draw.text((left - 6, y), f"{value:.3g}", font=font(11), fill=INK, anchor="rm")
    for k, (name, values) in enumerate(lines.items()):
        xy = [point(i, float(v)) for i, v in enumerate(values)]
        if len(xy) > 1:
            draw.line(xy, fill=cluster_color(k), width=2)
        for x, y in xy if len(xy) <= 64 else ():
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=cluster_color(k))
        x = left + 8 + 150 * k
        draw.rectangle([x, height - 18, x + 12, height - 8], fill=cluster_color(k))
        draw.text((x + 18, height - 13), name, font=font(12), fill=INK, anchor="lm")
    label(draw, (left, 10), title, 15)
    draw.text((width - right, upper + plot_h + 6), xlabel, font=font(11), fill=INK, anchor="ra")
    draw.text((8, upper - 20), ylabel, font=font(11), fill=INK)
    return canvas
