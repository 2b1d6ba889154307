"""The loop's time: ``now()`` and ``sleep_until(t)``. Frames are scheduled at ``start + n * interval``.

``WallClock`` is the live one (``time.monotonic``, waits that a stop flag cuts short). ``SteppedClock`` is for
driving the loop without a thread: time moves only when the loop asks to wait for a frame's time, so a test
or an offline run steps through frames at once and still sees each frame at its own time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float, stop: threading.Event) -> bool:
        """Wait until ``t``; False if ``stop`` was set meanwhile."""
        ...


class WallClock:
    """``time.monotonic``: the clock control events are stamped with."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float, stop: threading.Event) -> bool:
        wait = t - time.monotonic()
        return not (wait > 0 and stop.wait(wait)) and not stop.is_set()


class SteppedClock:
    """Time that jumps to whatever the loop waits for; ``advance(seconds)`` moves it by hand."""

    def __init__(self, start: float | None = None) -> None:
        self.time = time.monotonic() if start is None else float(start)

    def now(self) -> float:
        return self.time

    def sleep_until(self, t: float, stop: threading.Event) -> bool:
        self.time = max(self.time, t)
        return not stop.is_set()

    def advance(self, seconds: float) -> None:
        self.time += seconds
