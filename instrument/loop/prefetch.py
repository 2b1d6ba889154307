"""Prefetch: frames ahead along the controls' current motion decoded into the cache in spare time.

Continuing the position's last step, the next ``AHEAD`` frames' coordinates are predicted on a copy of the
performance; those not cached are decoded while the next frame's time has not come: one batch through the
frame pipeline's fixed-shape batch (a GPU), else at most ``PER_FRAME`` one at a time. Not on a CPU with
blends (its background decoder is busy with the frames being shown).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from instrument.loop.decoding import Decoding
from instrument.performance import Performance

AHEAD = 8  # frames predicted ahead
PER_FRAME = 2  # at most this many decoded one at a time in one frame's spare time


def prefetch(decoding: Decoding, performance: Performance, controls: dict[str, Any],
             before: dict[str, Any] | None, t: float, interval: float, deadline: float,
             now: Callable[[], float], stop: threading.Event) -> None:
    """Decode the next frames' coordinates ahead while ``now()`` is short of ``deadline``."""
    # Twice a decode's time must be left before each one: a prefetch that runs late makes the next frame
    # late, and a late frame skips past the frames that were fetched for it.
    budget = decoding.decode_seconds["fast"] * 2.0
    if not budget or deadline - now() < budget or decoding.progressive is not None:
        return
    performance = performance.copy()
    moving = dict(controls)
    step = 0.0 if before is None else controls["position"] - before["position"]
    ahead = []
    for k in range(1, AHEAD + 1):
        moving["position"] = min(1.0, max(0.0, controls["position"] + step * k))
        coords = performance.step(moving, t + k * interval)
        if decoding.key(coords, "fast") not in decoding.cache and coords not in ahead:
            ahead.append(coords)
    pipeline = decoding.fast_frames
    batch = pipeline.options.prefetch if pipeline is not None else 1
    if batch > 1 and len(ahead) >= 2 and deadline - now() >= budget * batch:
        with contextlib.suppress(Exception):  # the frames themselves will report it
            decoding.prefetch(ahead[:batch])
        return
    for coords in ahead[:PER_FRAME]:
        if deadline - now() < budget or stop.is_set():
            return
        try:
            decoding.image(coords, "fast")
        except Exception:
            return  # the frame itself will report it
