"""Stream batch: a k-step sculpt at the cost of one UNet call a frame, k - 1 frames late (StreamDiffusion).

A sculpt of k steps calls the UNet k times for one frame. The live loop sculpts a new frame every frame, so
the calls of k consecutive frames can be one call of a batch of k: each call carries the newest frame at
step 1 and the k - 1 frames before it at steps 2..k. The frame that finishes step k is the one shown; the
picture is that many frames (k - 1) behind the controls. A batched call costs far less than k calls of one
on a GPU, whose UNet at batch 1 is bound by its launches and its weights' memory traffic, not arithmetic.

Each row is its own frame's sculpt, the same math as ``Sculptor`` one frame at a time: its own timestep and
coefficients (``make_step`` per row, from its own ``schedule.step_table``), its own noise and text
embedding. So a frame's sculpt does not depend on its neighbours (up to the float rounding of a batched
call), and the controls that change from frame to frame (strength, noise, prompt mix, guidance scale) ride
in their rows. Only the shape of the call flushes the rows in flight: the number of steps (k rows), guidance
turning on or off (2k rows), and the UNet falling back to fp32 (a runner of its own). Before a flush their
pictures would be of settings that no longer hold; the new rows refill from the next frame.

Refill: the first frame after a flush is sculpted whole, its k steps one call each (``Sculptor.begin``), and
shown at once: the sculpt the sequential path gives. Its intermediate latents fill the rows of steps 2..k,
so the calls that follow are full batches at once; while those rows finish they show that same frame's
sculpt again (the frames before it were never in the stream). From the k-th frame on, frame n shows the
sculpt of frame n - k + 1. At rest on a point the loop's frame cache serves the frame and no UNet runs; the
picture it keeps is the stream's last, which is that point's sculpt.

``StreamBatch.push(latent, settings, tag) -> (job, tag of the frame it shows)``: the job is a
``SculptJob`` of the frame shown (its settings and input latent), finished, viewed and made again in fp32
by the Sculptor like any other. A sculpt that the stream cannot carry (fewer than 2 steps, strength 0) is
made whole and flushes it, as ``flush()`` does (the caller's sequential sculpts of step views, and a frame
from the cache, which is newer than the rows in flight).

On CUDA the batch of k is one compiled function and one CUDA graph per k (``Sculptor.runner(k, guided,
per_row=True)``), captured on first use or by ``warmup``; its inputs are written in place: the new frame's
latent and the rows carried from the last call (two copies a frame), and a row's noise, embedding,
timestep and coefficients only where they changed.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any

import torch
from torch import Tensor

from instrument.sculpt.sculptor import SculptJob, Sculptor
from instrument.sculpt.settings import SculptSettings


@dataclasses.dataclass(eq=False)
class _Row:
    """One frame in the stream: its tag, its input ``latent`` [C, h, w], ``Sculptor.inputs`` of it, and each
    call's x_t and x0 of its row so far (step 1 first). A refill's row carries the whole sculpt it shows
    (``outputs``)."""

    tag: Any
    latent: Tensor
    settings: SculptSettings
    inputs: tuple
    outputs: tuple[Tensor, Tensor, Tensor] | None = None
    xts: list[Tensor] = dataclasses.field(default_factory=list)
    x0s: list[Tensor] = dataclasses.field(default_factory=list)


class StreamBatch:
    """The stream batch of one ``Sculptor`` (see the module docstring); used by the render thread only."""

    def __init__(self, sculptor: Sculptor) -> None:
        if sculptor.asynchronous and sculptor.device.type != "cuda":
            raise ValueError("a stream batch needs the sculpt steps queued on the device or made in the "
                             "caller's thread, not the CPU's sculpt thread")
        self.sculptor = sculptor
        self.refills = 0  # frames sculpted whole to refill the stream
        self.calls = 0  # batched UNet calls
        self._shape: tuple | None = None  # (steps, guided, fallbacks) of the rows in flight
        self._rows: list[_Row] = []  # the frames in flight, newest first: rows 1..k-1 of the next call
        self._carry: Tensor | None = None  # [k - 1, C, h, w]: their latents, the next call's rows 1..k-1
        self._loaded: list[Any] = []  # per row of the runner: whose noise/emb/t/coef its buffers hold
        self._finite: collections.deque[Tensor] = collections.deque()  # the last k calls' finite flags

    @property
    def delay(self) -> int:
        """Frames the picture is behind the controls while the stream runs (0 when flushed)."""
        return len(self._rows)

    def flush(self) -> None:
        """Drop the frames in flight: the next push refills."""
        self._rows, self._carry = [], None
        self._finite.clear()

    def push(self, latent: Tensor, settings: SculptSettings, tag: Any) -> tuple[SculptJob, Any]:
        """Add the frame of ``latent`` ([C, h, w] float on the sculptor's device) and ``tag`` (anything:
        what the caller needs to name the frame) -> (``SculptJob`` of the frame shown now, its tag)."""
        sculptor = self.sculptor
        if not settings.active or settings.steps < 2:
            self.flush()
            return sculptor.begin(latent, settings), tag
        inputs = sculptor.inputs(latent, settings)
        shape = (settings.steps, inputs[5], sculptor.fallbacks)
        if shape != self._shape:
            self.flush()
            self._shape, self._loaded = shape, [None] * settings.steps
        if not self._rows:
            return self._refill(latent, settings, tag)
        return self._call(_Row(tag, latent, settings, inputs))

    def warmup(self, steps: int) -> None:
        """Compile and capture the batch of ``steps`` now (the first frame at that step count would)."""
        settings = SculptSettings(strength=0.5, steps=steps)
        for _ in range(2):  # (a refill, then a batched call)
            self.sculptor.finish(self.push(torch.zeros(self.sculptor.latent_shape), settings, None)[0])
        self.flush()
        self.refills = self.calls = 0  # (they count the frames played)

    def _refill(self, latent: Tensor, settings: SculptSettings, tag: Any) -> tuple[SculptJob, Any]:
        job = self.sculptor.begin(latent, settings)
        xts = job.outputs[0]  # [k, 1, C, h, w]: the latent each step started from
        self._rows = [_Row(tag, latent, settings, job.inputs, job.outputs) for _ in range(settings.steps - 1)]
        self._carry = xts[1:, 0]
        self.refills += 1
        return job, tag

    def _call(self, new: _Row) -> tuple[SculptJob, Any]:
        sculptor = self.sculptor
        rows = [new, *self._rows]
        k, guided = len(rows), new.inputs[5]
        with torch.no_grad():
            runner = sculptor.runner(k, guided, per_row=True)
            runner.x[0].copy_(new.inputs[0][0])
            runner.x[1:].copy_(self._carry)
            for j, row in enumerate(rows):
                self._load(runner, j, row)
            began = time.perf_counter()
            events = None
            if sculptor.device.type == "cuda":
                events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                events[0].record()
            x_t, x0, following, finite = runner.once()
            xts, x0s = x_t.clone(), x0.clone()  # (a graph's outputs are rewritten by its next replay)
        self._carry = following[:-1]  # (read by the next call before it replays)
        self._finite.append(finite)
        while len(self._finite) > k:
            self._finite.popleft()
        for j, row in enumerate(rows):
            if row.outputs is None:
                row.xts.append(xts[j])
                row.x0s.append(x0s[j])
        done, self._rows = rows[-1], rows[:-1]
        self.calls += 1
        outputs = done.outputs or (torch.stack(done.xts)[:, None], torch.stack(done.x0s)[:, None],
                                   torch.stack(list(self._finite)).all())
        job = SculptJob(done.settings, done.latent, inputs=done.inputs, outputs=outputs, events=events)
        if events is not None:  # (the flag read from pinned memory: see Sculptor._launch)
            job.finite = torch.empty((), dtype=torch.bool, pin_memory=True)
            job.finite.copy_(outputs[2], non_blocking=True)
            events[1].record()
        job.seconds = time.perf_counter() - began
        return job, done.tag

    def _load(self, runner: Any, j: int, row: _Row) -> None:
        """Row ``j`` of the runner's buffers: ``row``'s noise, embedding, and its step j's timestep and
        coefficients (written only when another frame's settings are there)."""
        if self._loaded[j] == row.settings:
            return
        _, noise, emb, ts, coefs, _ = row.inputs
        runner.noise[j].copy_(noise[0])
        runner.emb.unflatten(0, (-1, len(self._loaded)))[:, j].copy_(emb)  # (guided: [empty; prompt] rows)
        runner.t[j].copy_(ts[j])
        runner.coef[j].copy_(coefs[j])
        self._loaded[j] = row.settings
