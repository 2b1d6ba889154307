"""The output stage: master fade and blackout on the picture shown (the screen and the frame sinks).

Takes record the picture before this stage, so a take renders with it or without it (``render --master``).
``Output.level(values, t)`` is the picture's brightness at frame time ``t``: ``master * fade``, where
``fade`` runs from 1 to 0 over ``blackout_time`` seconds while ``blackout`` is on, and back when it is off,
on straight lines in frame time. ``dim(image, level)`` applies it; ``Output(image, values, t)`` does both.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def dim(image: np.ndarray, level: float) -> np.ndarray:
    """``image`` [H, W, 3] uint8 scaled by ``level`` in [0, 1]: the same array at full brightness, else a
    new one (never changed in place: the frame cache and the take hold it)."""
    if level >= 1.0:
        return image
    if level <= 0.0:
        return np.zeros_like(image)
    table = np.round(np.arange(256, dtype=np.float32) * level).astype(np.uint8)
    return table[image]


class Output:
    """Master and blackout for one stream of frames (live, or one re-render's plan), fed in frame order."""

    def __init__(self) -> None:
        self.fade = 1.0
        self.time: float | None = None

    def level(self, values: dict[str, Any], t: float) -> float:
        """The picture's brightness at frame time ``t`` in [0, 1] (advances the blackout fade to ``t``)."""
        target = 0.0 if values.get("blackout") else 1.0
        seconds = float(values.get("blackout_time", 0.0))
        if self.time is None or seconds <= 0:
            self.fade = target
        elif t > self.time:
            step = (t - self.time) / seconds
            self.fade = min(self.fade + step, target) if target > self.fade else max(self.fade - step, target)
        self.time = t if self.time is None else max(self.time, t)
        return min(max(float(values.get("master", 1.0)), 0.0), 1.0) * self.fade

    def __call__(self, image: np.ndarray, values: dict[str, Any], t: float) -> np.ndarray:
        return dim(image, self.level(values, t))
