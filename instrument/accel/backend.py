"""What a ``FastDecoder`` backend does: make frames in launch order, at most ``SLOTS`` in flight.

Three backends, one per way a device runs a frame beside the caller:

- ``cuda.CudaBackend``: stream-ordered on a CUDA device (through our CUDA graph where it has one);
- ``threaded.BackgroundBackend``: a CPU decode thread of its own;
- ``synchronous.SyncBackend``: the frame is made in ``launch`` (MPS, a CPU without the thread, and the
  plain fp32 path a decoder falls back to after a non-finite frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from instrument.latent.fast import Mix

SLOTS = 2  # frames in flight at most


@dataclass
class Done:
    """A finished frame: [H, W, 3] uint8 on the host and whether the decoder's output was finite, or the
    error that stopped it. ``seconds``: its time on the device (or the decode thread), where measured."""

    frame: np.ndarray | None = None
    finite: bool = True
    error: BaseException | None = None
    seconds: float | None = None


class Backend(Protocol):
    asynchronous: bool  # does launch() return before the frame is made?

    def launch(self, source: torch.Tensor | Mix) -> None:
        """Queue the frame of ``source`` (a latent of the decoder's shape, or a Mix where the backend sums
        one); never more than ``SLOTS`` uncollected."""

    def ready(self) -> bool:
        """Is the oldest queued frame done? Never blocks; False when none is queued."""

    def collect(self) -> Done:
        """Wait for the oldest queued frame and hand it over."""

    def close(self) -> None:
        """Stop whatever runs in the background (frames in flight are dropped)."""
