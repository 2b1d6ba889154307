"""The sculpt stage: a played latent in, the same latent noised and denoised in k UNet steps out.

API (for the render thread; build and call it from that one thread):

- ``Sculptor(model, latent_shape, family=..., options=..., prompt_cache_dir=...)``: ``latent_shape`` is the
  decoder's (C, h, w); ``family`` (the decoder's) must be the model's, else ModelLoadError.
- ``begin(latent, settings) -> SculptJob``: starts a sculpt of ``latent`` (float32 [C, h, w], or
  [B, C, h, w]: B frames, one UNet call per step for all of them) and returns at once where the device
  allows it (CUDA: stream-ordered; CPU: a background thread, ``asynchronous``); ``ready(job)`` never blocks;
  ``finish(job) -> SculptResult`` waits; ``drop(job)`` abandons one the controls have moved past (a CPU
  job stops at the UNet layer it is in). ``sculptor(latent, settings)`` is begin + finish. Settings that are
  not ``active`` (strength 0) finish at once with the input itself: no UNet call.
- ``queued_view(job, step, noisy)``: where the steps run on the device's stream (CUDA; or in the caller's
  thread), the latent ``result.view(step, noisy)`` will be, already, as a tensor that later work on the same
  stream may read (a decode queued behind the steps); None for a job of the CPU thread.
- ``warmup(settings)``: compile and capture now; ``describe()`` for the HUD; ``close()`` (in a finally).
- For ``sculpt.stream.StreamBatch`` (several frames' steps in one UNet call): ``inputs(latent, settings)``,
  a sculpt's tensors on the device, and ``runner(batch, guided, per_row)``, the step runner of a shape.

A result is never NaN/Inf: a non-finite sculpt in fp16/bf16 moves the UNet to fp32 for good (with a warning)
and is sculpted again; in fp32 it raises NonFiniteSculpt (the loop shows the unsculpted frame).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from instrument.accel import DTYPE_NAMES, running_mean
from instrument.decoders.families import Family
from instrument.sculpt.models import SculptModel, require_family
from instrument.sculpt.noise import noise_at
from instrument.sculpt.prompts import PromptBook
from instrument.sculpt.schedule import COEFFICIENTS, step_table
from instrument.sculpt.settings import SculptResult, SculptSettings
from instrument.sculpt.steps import StepRunner, make_step

log = logging.getLogger(__name__)

COMPILE_MODES = ("off", "default", "max-autotune")
CACHED = 24  # noises, embeddings and step tables kept on the device (a knob in motion makes new ones)


class NonFiniteSculpt(RuntimeError):
    """A sculpt gave NaN or Inf even in fp32."""


class Dropped(RuntimeError):
    """A CPU sculpt stopped inside the UNet because its job was dropped."""


@dataclass(frozen=True)
class SculptOptions:
    """Speed switches: ``compile`` (one of COMPILE_MODES), ``cuda_graphs`` (our capture of one step),
    ``channels_last`` (the UNet's memory layout), ``background`` (CPU: sculpt in a thread of its own),
    ``stream`` (the live loop's inline sculpts of k >= 2 steps as a stream batch: ``sculpt.stream``)."""

    compile: str = "off"
    cuda_graphs: bool = False
    channels_last: bool = False
    background: bool = False
    stream: bool = False

    def describe(self) -> str:
        parts = [f"compile={self.compile}"] if self.compile != "off" else []
        parts += ["cuda_graph"] * self.cuda_graphs + ["channels_last"] * self.channels_last
        parts += ["stream_batch"] * self.stream
        return " ".join(parts) or "eager"


def default_sculpt_options(device: torch.device | str) -> SculptOptions:
    """CUDA: compiled and captured, live sculpts as a stream batch; MPS: eager (torch.compile there is young);
    CPU: eager, in the background (compiling takes minutes on a small CPU, and a sculpt takes longer than a
    frame)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return SculptOptions(compile="default", cuda_graphs=True, stream=True)
    return SculptOptions(background=kind == "cpu")


@dataclass(eq=False)
class SculptJob:
    """One sculpt in flight. Read ``settings``; the rest belongs to the Sculptor."""

    settings: SculptSettings
    latent: Tensor
    inputs: tuple = ()
    outputs: tuple[Tensor, Tensor, Tensor] | None = None
    result: SculptResult | BaseException | None = None
    done: threading.Event | None = None
    events: tuple[Any, Any] | None = None  # CUDA (start, end)
    finite: Tensor | None = None  # CUDA: the all-finite flag, copied to pinned host memory behind the steps
    cancelled: threading.Event = field(default_factory=threading.Event)
    seconds: float = 0.0


class Sculptor:
    """The sculpt stage for one latent shape on the model's device. See the module docstring."""

    def __init__(self, model: SculptModel, latent_shape: tuple[int, int, int], *,
                 family: Family | str | None = None, options: SculptOptions | None = None,
                 prompt_cache_dir: Any = None) -> None:
        if family is not None:
            require_family(model, family)
        channels, height, width = latent_shape
        multiple = 2 ** (len(model.unet.config.block_out_channels) - 1)  # the UNet's own downscale
        if channels != model.family.latent_channels or height % multiple or width % multiple:
            raise ValueError(f"{model.label} sculpts [{model.family.latent_channels}, h, w] latents, h and w "
                             f"multiples of {multiple}; not {list(latent_shape)}")
        self.model = model
        self.latent_shape = tuple(latent_shape)
        self.device = model.device
        self.options = options or default_sculpt_options(self.device)
        self.prompts = PromptBook(model.text, prompt_cache_dir)
        self.device_seconds = 0.0  # running estimate of one sculpt's time on the device (or its thread)
        self.fallbacks = 0
        self._cuda = self.device.type == "cuda"
        self._runners: dict[tuple[int, bool, bool], StepRunner] = {}
        self._cache: OrderedDict[tuple, Tensor | tuple[Tensor, Tensor]] = OrderedDict()
        self._built = False
        self._worker: threading.Thread | None = None
        self._jobs: queue.Queue[SculptJob] = queue.Queue()
        self._stop = threading.Event()
        self._running: SculptJob | None = None  # the CPU thread's job (its UNet layers check for a drop)
        self._hooks: list[Any] = []

    # -- the stage -----------------------------------------------------------------------------------------

    @property
    def asynchronous(self) -> bool:
        """Does ``begin`` return before the sculpt is done?"""
        return self._cuda or (self.options.background and self.device.type == "cpu")

    def begin(self, latent: Tensor, settings: SculptSettings) -> SculptJob:
        """Start sculpting ``latent`` ([C, h, w] or [B, C, h, w], float) with ``settings``; see the module."""
        job = SculptJob(settings, latent)
        shape_ok = tuple(latent.shape[-3:]) == self.latent_shape and latent.ndim in (3, 4)
        if not (shape_ok and latent.is_floating_point()):
            raise ValueError(f"expected a float latent {list(self.latent_shape)} (or a batch of them), "
                             f"got {latent.dtype} {list(latent.shape)}")
        if not settings.active:
            empty = latent.new_empty((0, *latent.shape))
            job.result = SculptResult(latent, empty, empty, settings)
            return job
        self._build()
        job.inputs = self.inputs(latent, settings)
        if self._worker is not None:
            job.done = threading.Event()
            self._jobs.put(job)
        else:
            self._launch(job)
        return job

    def ready(self, job: SculptJob) -> bool:
        """Is ``job`` finished? Never blocks."""
        if job.result is not None:
            return True
        if job.done is not None:
            return job.done.is_set()
        return job.events[1].query() if job.events is not None else True

    def finish(self, job: SculptJob) -> SculptResult:
        """Wait for ``job`` and return its result (raises what the sculpt raised)."""
        if job.cancelled.is_set():
            raise RuntimeError("Sculptor.finish: this job was dropped")
        if job.done is not None:
            job.done.wait()
        elif job.result is None:
            self._settle(job)
        if job.seconds:
            self.device_seconds = running_mean(self.device_seconds, job.seconds)
        if isinstance(job.result, BaseException):
            raise job.result
        return job.result

    def drop(self, job: SculptJob) -> None:
        """Abandon ``job``: its result will not be collected (a CPU job stops in the UNet layer it is in)."""
        job.cancelled.set()

    def queued_view(self, job: SculptJob, step: int = 0, noisy: bool = False) -> Tensor | None:
        """``result.view(step, noisy)`` of ``job`` before it is finished (see the module); None for a job of
        the CPU thread. A non-finite sculpt reads as zeros (a decoder meeting NaN would fall back for good);
        ``finish`` says whether it was finite, and makes it again in fp32, into a new result."""
        if job.result is not None:
            return job.result.view(step, noisy) if isinstance(job.result, SculptResult) else None
        if job.done is not None or job.outputs is None:
            return None
        xts, x0s, finite = job.outputs
        if job.latent.ndim == 3:
            xts, x0s = xts[:, 0], x0s[:, 0]
        view = SculptResult(x0s[-1], x0s, xts, job.settings).view(step, noisy)
        return torch.where(finite, view, torch.zeros((), device=view.device))  # (queued: no wait)

    def __call__(self, latent: Tensor, settings: SculptSettings) -> SculptResult:
        return self.finish(self.begin(latent, settings))

    def warmup(self, settings: SculptSettings | None = None) -> None:
        """Compile and capture now (the first sculpt would), with ``settings`` (default: 1 step at 0.5)."""
        settings = settings or SculptSettings(strength=0.5, steps=1)
        self(torch.zeros(self.latent_shape), settings)

    def describe(self) -> str:
        dtype = DTYPE_NAMES.get(self.model.dtype, str(self.model.dtype))
        text = f"{self.model.label}, {self.device.type} {dtype} {self.options.describe()}"
        return text + (" (fp32 fallback)" if self.fallbacks else "")

    def close(self) -> None:
        """Stop the CPU sculpt thread (jobs in flight are dropped)."""
        self._stop.set()
        if self._running is not None:
            self._running.cancelled.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    # -- inputs --------------------------------------------------------------------------------------------

    def inputs(self, latent: Tensor, settings: SculptSettings) -> tuple:
        """(latent [B, C, h, w], noise [B, C, h, w] (one noise, expanded), emb [B or 2B, L, D], ts [k],
        coefs [k, len(COEFFICIENTS)], guided) on the device, for a runner; the noise, the embedding and the
        step table are cached (the same settings give the same tensors)."""
        batch = latent.detach().reshape(-1, *self.latent_shape).to(self.device, torch.float32)
        guided = (not self.model.distilled) and settings.guidance > 1.0 and settings.prompted
        s = settings
        noise = self._cached(("noise", s.noise_seed, s.noise_mix),
                             lambda: noise_at(s.noise_seed, s.noise_mix, self.latent_shape).to(self.device))
        emb = self._cached(("emb", s.prompts, s.prompt_mix, guided), lambda: self._embedding(s, guided))
        table = (self.model.schedule, self.model.sampler, s.strength, s.steps, s.guidance)
        ts, coefs = self._cached(("table", *table[2:]),
                                 lambda: tuple(x.to(self.device) for x in step_table(*table)))
        rows = batch.shape[0]
        emb = emb.repeat_interleave(rows, dim=0) if rows > 1 else emb
        return batch, noise.expand_as(batch), emb, ts, coefs, guided

    def _embedding(self, settings: SculptSettings, guided: bool) -> Tensor:
        """float32 [1, L, D] (or [2, L, D] with guidance: the empty prompt's, then the prompt's); the runner's
        buffer casts it to the UNet's dtype."""
        rows = [self.prompts.mixed(settings.prompts, settings.prompt_mix)]
        if guided:
            rows.insert(0, self.prompts.embedding(""))
        return torch.stack(rows).to(self.device)

    def _cached(self, key: tuple, make: Callable[[], Any]) -> Any:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = make()
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return found

    # -- running -------------------------------------------------------------------------------------------

    def _build(self) -> None:
        if self._built:
            return
        self._built = True
        if self._cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution once
        if self.options.channels_last:
            self.model.unet.to(memory_format=torch.channels_last)
        if self.options.background and self.device.type == "cpu":
            self._worker = threading.Thread(target=self._work, name="cpu-sculpt", daemon=True)
            self._hooks = dropping_hooks(self)
            self._worker.start()

    def runner(self, batch: int, guided: bool, per_row: bool = False) -> StepRunner:
        """The step runner of ``batch`` rows (``per_row``: a timestep and coefficients per row), built (and on
        CUDA compiled and captured) on first use."""
        runner = self._runners.get((batch, guided, per_row))
        if runner is None:
            plain = self.fallbacks > 0  # after a non-finite sculpt: fp32, eager
            step = make_step(self.model.unet, self.model.dtype, guided, self.options.channels_last)
            if self.options.compile != "off" and not plain:
                mode = "max-autotune-no-cudagraphs" if self.options.compile == "max-autotune" else None
                step = torch.compile(step, mode=mode, dynamic=False)
            rows = batch * (2 if guided else 1)
            emb_shape = (rows, self.model.text.length, self.model.text.hidden_size)
            graphs = self.options.cuda_graphs and self._cuda and not plain
            with torch.no_grad():
                runner = StepRunner(step, (batch, *self.latent_shape), emb_shape, len(COEFFICIENTS),
                                    self.device, self.model.dtype, graphs, per_row)
            self._runners[(batch, guided, per_row)] = runner
        return runner

    def _launch(self, job: SculptJob) -> None:
        """Queue ``job``'s steps (CUDA, MPS: on the device's stream) or run them (CPU)."""
        latent, noise, emb, ts, coefs, guided = job.inputs
        with torch.no_grad():
            runner = self.runner(latent.shape[0], guided)  # (the first of a shape compiles: not timed)
            began = time.perf_counter()
            if self._cuda:
                job.events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                job.events[0].record()
            job.outputs = runner.run(latent, noise, emb, ts, coefs, job.cancelled.is_set)
            if job.events is not None:
                # Read after the end event, never from the device: a read there waits for the whole
                # stream, and the next frame's steps are often queued behind these (read ahead).
                job.finite = torch.empty((), dtype=torch.bool, pin_memory=True)
                job.finite.copy_(job.outputs[2], non_blocking=True)
                job.events[1].record()
        job.seconds = time.perf_counter() - began

    def _settle(self, job: SculptJob) -> None:
        """Turn ``job``'s outputs into its result, falling back to fp32 for a non-finite one."""
        try:
            if job.events is not None:
                job.events[1].synchronize()
                job.seconds = job.events[0].elapsed_time(job.events[1]) / 1000
            if job.outputs is None:
                raise RuntimeError("the sculpt was dropped")
            if not bool(job.finite if job.finite is not None else job.outputs[2]):
                self._fall_back(job)
            xts, x0s, _ = job.outputs
            if job.latent.ndim == 3:
                xts, x0s = xts[:, 0], x0s[:, 0]
            job.result = SculptResult(x0s[-1], x0s, xts, job.settings)
        except Exception as exc:  # handed to finish(), which raises it in the caller's thread
            job.result = exc

    def _fall_back(self, job: SculptJob) -> None:
        if self.model.dtype == torch.float32:
            raise NonFiniteSculpt(f"{self.model.label} sculpted NaN/Inf in fp32")
        log.warning("%s gave NaN/Inf in %s; switching the sculpt UNet to fp32", self.model.label,
                    self.model.dtype)
        self.fallbacks += 1
        self.model.unet.float()
        self.model.dtype = torch.float32
        self._runners.clear()
        job.events = job.finite = None
        self._launch(job)
        if not bool(job.outputs[2]):
            raise NonFiniteSculpt(f"{self.model.label} sculpted NaN/Inf even in fp32")

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            if not job.cancelled.is_set():
                self._running = job
                try:
                    self._launch(job)
                    self._settle(job)
                except Exception as exc:
                    job.result = exc
                finally:
                    self._running = None
            job.done.set()


def dropping_hooks(sculptor: Sculptor) -> list[Any]:
    """Hooks on every layer of the sculptor's UNet that stop its CPU thread's job inside the UNet once the
    job is dropped (a step takes seconds on a CPU: the cores go back to the loop at once)."""
    unet = sculptor.model.unet

    def check(_module: Any, _inputs: Any) -> None:
        job = sculptor._running
        if job is not None and job.cancelled.is_set() and threading.current_thread() is sculptor._worker:
            raise Dropped("the sculpt was dropped")

    return [m.register_forward_pre_hook(check) for m in unet.modules() if m is not unet]
