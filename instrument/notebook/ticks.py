"""Work on the notebook kernel's own event loop, so that every torch call stays in the kernel's main thread.

A Jupyter (or VS Code) kernel runs cells and widget messages on one asyncio loop in its main thread. The
widgets schedule their follow-up work there (a frame landing from the background decode, the full
decoder's redraw when the sliders rest, MIDI polling) instead of in a thread of their own. Outside a
kernel (a script, a test) there is no running loop: ``start`` says so and the caller does the work itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticks:
    """Calls ``work()`` on the running event loop every ``interval`` seconds for as long as it returns True.

    ``start()`` schedules the next call (if none is scheduled) and returns False where no loop runs;
    ``cancel()`` drops it. An exception in ``work`` is logged and ends the ticking.
    """

    def __init__(self, work: Callable[[], bool], interval: float) -> None:
        self.work = work
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> bool:
        if self._handle is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._handle = loop.call_later(self.interval, self._tick)
        return True

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = None
        try:
            again = self.work()
        except Exception:  # the loop is the kernel's: never let an error escape into it
            log.exception("notebook widget: %s failed", getattr(self.work, "__qualname__", self.work))
            return
        if again:
            self.start()
