"""The CPU backend that decodes in a thread of its own, so that ``launch`` returns at once.

Why: a CPU decode takes longer than a display frame; while it runs, the render thread keeps showing
in-between frames (``framecache.Progressive``). torch releases the GIL inside its kernels, so the two
threads share the cores.
"""

from __future__ import annotations

import collections
import queue
import threading
import time

import torch

from instrument.accel.backend import SLOTS, Done
from instrument.accel.synchronous import HostFrame


class _Job:
    """One frame in flight: its latent (a copy: the caller may reuse its tensor), then its result."""

    def __init__(self, latent: torch.Tensor) -> None:
        self.latent = latent
        self.done = threading.Event()
        self.result = Done()


class BackgroundBackend:
    """``frame(latent)`` on a decode thread; ``seconds`` of a Done is the thread's own time for it, which the
    caller's waits do not change. Start it with ``start()``, stop it with ``close()``."""

    asynchronous = True

    def __init__(self, frame: HostFrame, latent_shape: tuple[int, ...]) -> None:
        self.frame = frame
        self._buffers = [torch.empty(latent_shape, dtype=torch.float32) for _ in range(SLOTS)]
        self._next = 0
        self._order: collections.deque[_Job] = collections.deque()
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="cpu-decode", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def launch(self, source: torch.Tensor) -> None:
        buffer = self._buffers[self._next]
        self._next = (self._next + 1) % SLOTS
        buffer.copy_(source)
        job = _Job(buffer)
        self._order.append(job)
        self._jobs.put(job)

    def ready(self) -> bool:
        return bool(self._order) and self._order[0].done.is_set()

    def collect(self) -> Done:
        job = self._order.popleft()
        job.done.wait()
        return job.result

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            began = time.perf_counter()
            try:
                frame, finite = self.frame(job.latent)
                job.result = Done(frame, finite)
            except Exception as exc:  # handed to collect(), which raises it in the caller's thread
                job.result = Done(error=exc)
            job.result.seconds = time.perf_counter() - began
            job.done.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._order.clear()
