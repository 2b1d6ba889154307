"""The CUDA backend: a frame is queued on the device's stream and ``launch`` returns at once.

The latent goes up through pinned memory (or, with our CUDA graph, a ``Mix``'s few weights), the graph or
the compiled frame runs, and the uint8 frame comes back to pinned host memory with an asynchronous copy:
a frame crosses to the host once, as uint8. CUDA events time each frame on the device itself, so that the
caller's own waits do not count.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import torch

from instrument.accel.backend import SLOTS, Done
from instrument.accel.pipeline import Pipeline
from instrument.latent.fast import MIX_TERMS, Mix


class _Slot:
    """Pinned host buffers and events of one frame in flight, allocated once."""

    def __init__(self, out_size: tuple[int, int], latent_shape: tuple[int, ...]) -> None:
        self.frame = torch.empty((out_size[1], out_size[0], 3), dtype=torch.uint8, pin_memory=True)
        self.finite = torch.empty((), dtype=torch.bool, pin_memory=True)
        self.latent = torch.empty(latent_shape, dtype=torch.float32, pin_memory=True)
        self.weights = torch.empty(MIX_TERMS, dtype=torch.float32, pin_memory=True)
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)


class CudaBackend:
    """Stream-ordered frames through the batch-1 pipeline that ``pipe()`` returns (built on first use).
    ``graphed``: the pipeline is our CUDA graph, which takes a ``Mix`` as it is."""

    asynchronous = True

    def __init__(self, pipe: Callable[[], Pipeline], out_size: tuple[int, int],
                 latent_shape: tuple[int, ...], graphed: bool) -> None:
        self.pipe = pipe
        self.graphed = graphed
        self._slots = [_Slot(out_size, latent_shape) for _ in range(SLOTS)]
        self._next = 0
        self._order: collections.deque[_Slot] = collections.deque()

    def launch(self, source: torch.Tensor | Mix) -> None:
        slot = self._slots[self._next]
        self._next = (self._next + 1) % SLOTS
        with torch.no_grad():
            pipe = self.pipe()
            slot.start.record()
            if self.graphed:  # (pinned staging: the uploads do not wait for the device)
                pipe.load(source, slot.weights, slot.latent)
            elif source.device.type == "cpu":  # stage in pinned memory so that the upload is asynchronous
                slot.latent.copy_(source)
                pipe.static_in[0].copy_(slot.latent, non_blocking=True)
            else:
                pipe.static_in[0].copy_(source)
            frames, finite = pipe.run()
            slot.frame.copy_(frames[0], non_blocking=True)
            slot.finite.copy_(finite, non_blocking=True)
            slot.end.record()
        self._order.append(slot)

    def ready(self) -> bool:
        return bool(self._order) and self._order[0].end.query()

    def collect(self) -> Done:
        slot = self._order.popleft()
        slot.end.synchronize()
        seconds = slot.start.elapsed_time(slot.end) / 1000
        return Done(slot.frame.numpy().copy(), bool(slot.finite), seconds=seconds)

    def close(self) -> None:
        self._order.clear()
