"""Drawing frames: a run of the plan's frames decoded and written as PNG files, the same bits every time.

A render split over processes is byte-identical to one process only if each frame's picture depends on its
coordinates alone: the decode path must pick the same kernels in every process and on every run.
``same_bits`` asks torch for that on CUDA (convolutions chosen by cuDNN's heuristics, not by timing; the
compiler's deterministic mode). On the CPU the convolutions' rounding follows the number of threads, so
renders there are byte-identical between runs with the same threads per process (``render --threads``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from instrument.loop.output import dim
from instrument.loop.sculpting import write_step_frames
from instrument.recorder import atomic_write, encode_png
from instrument.render_job.plan import PlannedFrame


def same_bits(device: torch.device) -> None:
    """Make this process's decodes on ``device`` repeatable across runs and processes (CUDA; before the
    decoders are built). A GPU render is a little slower for it."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(True, warn_only=True)  # (accel leaves cuDNN's timing choice off)
    import torch._inductor.config as inductor

    if hasattr(inductor, "deterministic"):  # (torch 2.6 and later)
        inductor.deterministic = True  # no timing-based choices that change the rounding


def draw_frames(decoding: Any, frames: Sequence[PlannedFrame], folder: Path, decoder: str,
                done: Callable[[int, PlannedFrame], None] = lambda count, frame: None, *,
                step_frames: bool = False) -> float:
    """Decode ``frames`` with ``decoding`` (a ``loop.decoding.Decoding``; ``decoder`` "fast" or "full"),
    sculpted as each one's view says and dimmed to its level, and write each to ``folder/frame_NNNNNN.png``
    atomically (with
    ``step_frames``, every sculpt step's pictures too); ``done(count, frame)`` after each. Returns the
    seconds it took."""
    began = time.perf_counter()
    for count, frame in enumerate(frames, 1):
        image = decoding.render(frame.coords, decoder, frame.view)
        if frame.level is not None:
            image = dim(image, frame.level)
        atomic_write(folder / frame.file, encode_png(image))
        if step_frames and frame.view is not None:
            write_step_frames(decoding.sculpting, folder, frame.file, frame.coords, decoder, frame.view)
        done(count, frame)
    return time.perf_counter() - began
