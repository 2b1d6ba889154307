"""Ways through latent space for the library: the geometry ``play`` and ``walk`` use, on tensors.

``slerp``, ``lerp``, ``blend``, ``random_walk``, ``walk_offset``, ``lock_mask``, ``apply_locks`` and
``add_offset`` are ``instrument.latent.geometry``'s own functions (see their docstrings: shapes, ranges and
the exact-endpoint guarantees). ``path`` and ``walk`` add ``Anchors`` and the ``walk`` command's frame
spacing; ``latent_at`` is where a frame of ``play`` sits, from its ``Coords``.
"""

from __future__ import annotations

import torch

from instrument.api.models import Anchors, latents_of
from instrument.latent.commands import path_positions
from instrument.latent.geometry import (
    add_offset,
    apply_locks,
    blend,
    lerp,
    lock_mask,
    path_point,
    random_walk,
    slerp,
    walk_offset,
)
from instrument.performance import Coords, latent_at

__all__ = ["Coords", "add_offset", "apply_locks", "blend", "latent_at", "lerp", "lock_mask", "path",
           "random_walk", "slerp", "walk", "walk_offset"]

WALK_KINDS = ("slerp", "lerp", "loop", "spline", "walk")


def path(anchors: Anchors | torch.Tensor, s: float | torch.Tensor, kind: str = "slerp") -> torch.Tensor:
    """The point at position ``s`` of a ``kind`` path through the anchors ([N, C, h, w] or ``Anchors``):
    a float gives [C, h, w], a Tensor[T] of positions gives [T, C, h, w].

    Kinds: "lerp" and "slerp" (segments from anchor to anchor), "spline" (a smooth curve through them),
    "loop" (a closed smooth curve; s wraps). Anchor i sits at s = i / (N - 1) (loop: i / N); s = 0 is the
    first anchor, exactly. See ``geometry.path_point``.
    """
    return path_point(latents_of(anchors), s, kind)


def walk(anchors: Anchors | torch.Tensor, steps: int = 60, kind: str = "slerp", *, seed: int = 0,
         step_size: float = 0.05, bound: float = 0.5, std: float | None = None) -> torch.Tensor:
    """The latents of ``latent-instrument walk``'s frames: [steps, C, h, w].

    ``kind``: a ``path`` kind, evenly spaced from the first anchor to the last (a loop stops one step
    short of its start, so that the frames cycle), or "walk": a seeded, bounded random walk from the first
    anchor, RMS ``step_size`` per frame and at most ``bound`` from the start, both in latent std (``std``:
    the family's, from ``Anchors``; 1 for a plain tensor unless given).
    """
    if kind not in WALK_KINDS:
        raise ValueError(f"unknown walk kind {kind!r}; known: {', '.join(WALK_KINDS)}")
    if steps < 1:
        raise ValueError(f"a walk needs at least one step, not {steps}")
    stack = latents_of(anchors)
    if kind == "walk":
        if std is None:
            std = anchors.family.latent_std if isinstance(anchors, Anchors) else 1.0
        return random_walk(stack[0], steps, seed, step_size * std, bound * std)
    return path_point(stack, torch.tensor(path_positions(steps, kind)), kind)
