"""Phase boundaries: where along a path the picture changes kind.

Frames decoded along a path are summarised by small *features* (the picture averaged down to 8×8 in colour,
and where its edges are, averaged the same way), and the sequence of features is cut by binary segmentation:
each run of frames is split where the two halves are best separated (least squared distance of each frame
to its half's mean), as long as the two halves' mean features lie at least ``SEPARATION`` times ``scale``
apart, where ``scale`` is how far apart neighbouring anchors' features are (the median over the path). The
frames between two boundaries are one *phase*: they look alike; crossing a boundary, the picture turns into
something else. A morph between two pictures has one boundary, where it tips from one to the other; a path
through anchors that look alike has none between them; a morph that passes through a third kind of picture
has two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

GRID = 8  # features: the picture and its edges averaged down to GRID × GRID
SEPARATION = 0.45  # two phases' mean features differ by this fraction of neighbouring anchors' or more
MIN_RUN = 2  # frames in a phase, at least


def features(frames: torch.Tensor) -> torch.Tensor:
    """Frames Tensor[B, 3, H, W] in [0, 1] -> Tensor[B, 4 · GRID²] float32 (colour, then edge strength)."""
    frames = frames.float()
    grey = frames.mean(1, keepdim=True)
    corner = grey[..., :-1, :-1]
    edges = (grey[..., 1:, :-1] - corner).abs() + (grey[..., :-1, 1:] - corner).abs()
    colour = F.adaptive_avg_pool2d(frames, GRID).flatten(1)
    return torch.cat([colour, F.adaptive_avg_pool2d(edges, GRID).flatten(1)], 1).cpu()


def _cost(x: torch.Tensor) -> float:
    return float((x - x.mean(0)).pow(2).sum()) if len(x) else 0.0


def change_points(feats: torch.Tensor, knots: Sequence[int] = (), *, separation: float = SEPARATION,
                  min_run: int = MIN_RUN) -> list[int]:
    """Feature rows Tensor[T, D] along a path -> sorted indices i at which a new phase begins (rows i - 1
    and i fall in different phases); [] when the path is one phase. ``knots``: the rows of the anchors
    (default: the first and the last), whose neighbours' distances set the scale."""
    ends = feats[list(knots) if len(knots) >= 2 else [0, len(feats) - 1]]
    scale = float((ends[1:] - ends[:-1]).norm(dim=1).median())
    if scale <= 0:
        return []
    cuts: list[int] = []
    runs = [(0, len(feats))]
    while runs:
        start, end = runs.pop()
        splits = range(start + min_run, end - min_run + 1)
        if not splits:
            continue
        where = min(splits, key=lambda i: _cost(feats[start:i]) + _cost(feats[i:end]))
        apart = float((feats[start:where].mean(0) - feats[where:end].mean(0)).norm())
        if apart >= separation * scale:
            cuts.append(where)
            runs += [(start, where), (where, end)]
    return sorted(cuts)
