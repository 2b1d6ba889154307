"""``SinkFeed``: one frame sink fed from the mailbox by a thread of its own.

The thread waits for a frame newer than the last it took (``Mailbox.wait``), takes the newest (``peek``: the
display's ``latest`` is left alone) and sends it. Frames published while the sink was busy are never sent:
they are counted as dropped, so a slow sink shows on the HUD and the render loop never waits for it. The
sink opens at the first frame, at that frame's size (and again if the size changes). A sink that cannot
open says why in one line and stays off; a frame it fails to send is counted, and the next one is tried.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from instrument.mailbox import Mailbox
from instrument.sinks import FrameSink

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how soon the thread notices stop() while no frame comes


class SinkFeed:
    """Feeds ``sink`` the mailbox's frames: ``start()``, then ``stop()`` (joins, closes the sink)."""

    def __init__(self, sink: FrameSink, mailbox: Mailbox, fps: float) -> None:
        self.sink = sink
        self.mailbox = mailbox
        self.fps = fps
        self.sent = 0
        self.dropped = 0  # frames published while the sink was busy, never sent
        self.failed = 0  # frames the sink could not send
        self.state = "waiting for the first frame"
        self._size: tuple[int, int] | None = None  # (w, h) open at; None: closed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.sink.name

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sink {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            self._thread = None

    def status(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.state}; {self.sent} sent, {self.dropped} dropped{failed}"

    def _run(self) -> None:
        seen = self.mailbox.count  # frames before the feed began are not its drops
        try:
            while not self._stop.is_set():
                if not self.mailbox.wait(seen, POLL_SECONDS):
                    continue
                count = self.mailbox.count  # (read before the frame: the frame is at least this new)
                frame = self.mailbox.peek()
                self.dropped += max(0, count - seen - 1)
                seen = count
                if frame is not None and not self._deliver(frame.image):
                    return
        finally:
            self._close()

    def _deliver(self, image: np.ndarray) -> bool:
        """Send one picture, opening the sink first where needed; False when it cannot open (off)."""
        size = (image.shape[1], image.shape[0])
        if size != self._size:
            self._close()
            try:
                where = self.sink.open(size[0], size[1], self.fps)
            except Exception as exc:  # no device, no server, a library that fails at run time
                self.state = f"off: {type(exc).__name__}: {exc}"
                log.error("--sink %s could not start: %s; playing without it", self.name, exc)
                return False
            self._size = size
            self.state = where
            log.info("--sink %s: %s", self.name, where)
        try:
            self.sink.send(image)
        except Exception as exc:  # one failed frame (a receiver gone, a busy device): the next is tried
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.warning("--sink %s: a frame failed (%s: %s); %d so far", self.name, type(exc).__name__,
                            exc, self.failed)
            return True
        self.sent += 1
        return True

    def _close(self) -> None:
        if self._size is None:
            return
        self._size = None
        try:
            self.sink.close()
        except Exception as exc:
            log.warning("--sink %s did not close cleanly: %s", self.name, exc)
