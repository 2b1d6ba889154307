"""The backend that makes each frame in ``launch``, in the caller's thread."""

from __future__ import annotations

import collections
from collections.abc import Callable

import numpy as np
import torch

from instrument.accel.backend import Done

HostFrame = Callable[[torch.Tensor], tuple[np.ndarray, bool]]


class SyncBackend:
    """``frame(latent) -> ([H, W, 3] uint8, finite)`` run at launch; collect hands the results back in order.

    On MPS the device still works asynchronously until the copy to the host inside ``frame``."""

    asynchronous = False

    def __init__(self, frame: HostFrame) -> None:
        self.frame = frame
        self._done: collections.deque[Done] = collections.deque()

    def launch(self, source: torch.Tensor) -> None:
        try:
            frame, finite = self.frame(source)
            self._done.append(Done(frame, finite))
        except Exception as exc:  # raised by collect(), in order, so that the frame's slot is freed there
            self._done.append(Done(error=exc))

    def ready(self) -> bool:
        return bool(self._done)

    def collect(self) -> Done:
        return self._done.popleft()

    def close(self) -> None:
        self._done.clear()
