"""The render path near the hardware's limit: latent in, uint8 picture on the host out, with fixed shapes.

API (for the render thread; build and call it from that one thread):

- ``make_frame_fn(ae, out_size, config, *, size=None) -> FastDecoder``: the frame pipeline for an
  ``Autoencoder`` with the speed switches of ``config`` (``channels_last``, ``subpixel``, ``compile``,
  ``cuda_graphs``, ``prefetch``; "auto" = the measured best for the device, see ``default_options``).
  ``out_size`` = (W, H) of the frames handed out; ``size`` = (W, H) decoded (default ``config.size``),
  resized on the device.
- ``FastDecoder`` (the returned object):
  - ``fd(latent) -> np.ndarray [H, W, 3] uint8``: one frame, synchronously. ``latent``: ``[C, h, w]`` or
    ``[1, C, h, w]`` diffusion-space latent, any float dtype, on the CPU or the decoder's device.
  - two phases, so that the caller can work while the device decodes: ``launch(latent)`` queues a frame
    and returns at once (CUDA: stream-ordered; CPU: a background decode thread; up to 2 in flight;
    ``asynchronous`` says whether it does); ``ready() -> bool`` says if the oldest launched frame is done
    (never blocks); ``collect() -> ndarray`` waits for it and returns it (a fresh array the caller owns).
    ``in_flight`` counts launched frames; ``device_seconds`` is a running estimate of one frame's time on
    the device (CUDA events; the decode thread's clock), which the caller's own waits do not change.
  - ``latent`` may also be a ``Mix`` (below): with a CUDA graph the sum is computed inside the graph.
  - ``decode_batch(latents [B, C, h, w]) -> ndarray [B, H, W, 3]``: several frames in one pass (prefetch;
    faster per frame for TAESD on a GPU, see benchmarks/README.md).
  - ``warmup()``: compile and capture now (the first call would otherwise do it: seconds on a GPU).
  - ``describe() -> str`` for the HUD ("cuda fp16 channels_last compile=default cuda_graph"), ``options``,
    ``close()`` (stops the CPU decode thread; call it in a ``finally``).
  A frame is never NaN/Inf: a non-finite frame in fp16 sends this decoder to the plain fp32 path for good
  (``Autoencoder.decode`` switches and warns) and the frame is decoded again there.
- ``FastLatents(anchors, seed=, std=)``: ``fl(coords) -> [C, h, w]``, the same function as
  ``performance.latent_at`` (equal within float32 rounding) at a fraction of its cost: on a GPU, latent_at
  took 1.26 ms a frame in the live loop on an H200 host (more than the fast decode, 0.92 ms);
  FastLatents 0.12 ms (benchmarks/results/bench-cuda-h200-latents.md). ``fl.mix(coords)`` gives the same
  point as a ``Mix``: weights for at most ``MIX_TERMS`` fixed device vectors, which a CUDA-graph
  ``FastDecoder`` sums inside its graph (0.03 ms of a live frame on an H100,
  benchmarks/results/raw/bench-cuda-h100-mix-vs-eager.md).

Why each piece (numbers: one H100, fp16, 512x512, random weights; benchmarks/results/gpu-probe-h100.*):
- ``torch.compile`` fuses the decoder's elementwise work (GroupNorm+SiLU in the KL VAE) and the picture's
  conversion; with a hand-captured CUDA graph the launch gaps go too. TAESD 2.03 -> 0.79 ms, KL VAE
  22.0 -> 7.96 ms. "max-autotune" gives 0.71 / 7.19 ms but compiles for ~30 s / ~3 min on first start, so it
  is a switch, not the default.
- channels_last helps TAESD eagerly (2.06 -> 1.47 ms) but hurts the KL VAE eagerly (22 -> 28 ms: its
  GroupNorms); inside a compiled graph the layout is the compiler's to choose.
- Sub-pixel upsampling (``decoders.subpixel``: nearest 2x + 3x3 conv as one 2x2 conv at the low resolution)
  takes the compiled KL VAE from 8.23 to 7.10 ms (768: 22.0 -> 19.3; benchmarks/results/bench-cuda-h100.md);
  TAESD, whose upsampling is a smaller share, gains nothing measurable, so it is on for the KL VAE only.
- Resize and uint8 conversion happen on the device, and a frame crosses to the host once, as uint8, through
  pinned memory with an asynchronous copy: 0.03 ms of a frame's time.
- Fixed shapes and buffers allocated once: a CUDA graph needs them, and MPS grows memory with every new
  shape.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from instrument.decoders.subpixel import fold_upsampling

log = logging.getLogger(__name__)

COMPILE_MODES = ("off", "default", "max-autotune", "reduce-overhead")
DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


@dataclass(frozen=True)
class AccelOptions:
    """Resolved speed switches (no "auto" left)."""

    channels_last: bool = False
    subpixel: bool = False  # upsample + 3x3 conv as one low-resolution 2x2 conv (decoders.subpixel)
    compile: str = "off"  # one of COMPILE_MODES
    cuda_graphs: bool = False  # our own capture of the whole frame (CUDA only)
    prefetch: int = 1  # batch size of decode_batch's fixed-shape pipeline
    background: bool = False  # CPU: decode in a thread of its own so that launch() returns at once

    def describe(self) -> str:
        parts = []
        if self.channels_last:
            parts.append("channels_last")
        if self.subpixel:
            parts.append("subpixel")
        if self.compile != "off":
            parts.append(f"compile={self.compile}")
        if self.cuda_graphs:
            parts.append("cuda_graph")
        return " ".join(parts) or "eager"


def default_options(device: torch.device | str, arch: str = "taesd") -> AccelOptions:
    """The measured best for a device type and decoder architecture ("taesd", "kl", ...).

    CUDA: compile (default mode) + our CUDA graph; channels_last for TAESD (the compiler picks the KL
    VAE's layout); sub-pixel upsampling for the KL VAE (-14% there, nothing for TAESD). MPS: eager,
    channels_last off: torch.compile on MPS is young and was not measured faster (run
    ``latent-instrument bench --devices mps`` and set the switches if it is on your Mac). CPU: eager fp32
    with channels_last for TAESD (oneDNN), sub-pixel upsampling for the KL VAE (-9%; it slows channels_last
    TAESD), a background decode thread; compile is off because its first start takes minutes on a small CPU.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return AccelOptions(channels_last=arch == "taesd", subpixel=arch != "taesd", compile="default",
                            cuda_graphs=True, prefetch=4)
    if kind == "mps":
        return AccelOptions(prefetch=1)
    return AccelOptions(channels_last=arch == "taesd", subpixel=arch != "taesd", prefetch=1, background=True)


def _switch(value: Any, default: bool, name: str) -> bool:
    text = str(value).strip().lower()
    if text == "auto":
        return default
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"config {name}: {value!r} is not auto, on or off")


def options_from_config(config: Any, device: torch.device | str, arch: str) -> AccelOptions:
    """Read the speed switches of a ``Config`` (missing fields count as "auto") for a device and arch."""
    best = default_options(device, arch)
    mode = str(getattr(config, "compile", "auto")).strip().lower()
    if mode == "auto":
        mode = best.compile
    if mode not in COMPILE_MODES:
        raise ValueError(f"config compile: {mode!r} is not one of auto, {', '.join(COMPILE_MODES)}")
    is_cuda = torch.device(device).type == "cuda"
    graphs = _switch(getattr(config, "cuda_graphs", "auto"), best.cuda_graphs, "cuda_graphs") and is_cuda
    if mode == "reduce-overhead":
        graphs = False  # the compiler captures its own graphs then
    return replace(
        best,
        channels_last=_switch(getattr(config, "channels_last", "auto"), best.channels_last, "channels_last"),
        subpixel=_switch(getattr(config, "subpixel", "auto"), best.subpixel, "subpixel"),
        compile=mode,
        cuda_graphs=graphs,
        prefetch=max(1, int(getattr(config, "prefetch", best.prefetch) or 1)),
    )


def _frame_fn(ae: Any, module: torch.nn.Module, out_hw: tuple[int, int], channels_last: bool):
    """The whole frame as one function of fixed shape, for the compiler and the CUDA graph:
    diffusion latents [B, C, h, w] float32 -> (frames [B, H, W, 3] uint8, finite: bool scalar tensor).
    ``module``: ``ae.decoder_module`` or a rewrite of it that computes the same."""
    scale, shift = float(ae.latent_scale), float(ae.latent_shift)
    low, high = (float(v) for v in ae.pixel_range)
    dtype = ae.dtype

    def frame(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model_latents = (latents / scale + shift).to(dtype)
        if channels_last:
            model_latents = model_latents.contiguous(memory_format=torch.channels_last)
        pixels = module(model_latents)
        finite = torch.isfinite(pixels).all()
        x = ((pixels.float() - low) / (high - low)).clamp(0, 1)
        if tuple(x.shape[-2:]) != out_hw:
            downscale = x.shape[-2] > out_hw[0] or x.shape[-1] > out_hw[1]
            x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=downscale)
        frames = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return frames, finite

    return frame


def _return_freed_memory() -> None:
    """glibc: give every allocation of 128 KiB or more a mapping of its own (this turns off glibc's adaptive
    threshold, which otherwise rises to the size of the decoder's activations).

    Why: on a CPU, decoded frames (long-lived, ~200 KB each, kept by the frame cache) and the decoder's
    activations (short-lived, megabytes) then no longer share the heap, whose holes cannot go back to the
    system: without this a 10-minute CPU sweep grew RSS by about 5x the frame cache's size. Linux with glibc
    only; elsewhere nothing happens.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # -3: M_MMAP_THRESHOLD


class Mix(NamedTuple):
    """A latent as a weighted sum of fixed vectors: ``sum(weights[k] * vectors[k])``, shaped ``shape``.

    ``vectors``: float32 [C*h*w] tensors on the decoder's device that never change once made (a CUDA graph
    keeps a copy of each and copies again only when a different tensor comes). ``FastLatents.mix`` gives a
    frame's point this way so that a CUDA-graph ``FastDecoder`` can do the sum inside its graph: a frame
    then costs one upload of a few weights from pinned memory instead of a kernel launch per term.
    """

    vectors: tuple[torch.Tensor, ...]
    weights: tuple[float, ...]
    shape: tuple[int, ...]

    def latent(self) -> torch.Tensor:
        """The sum, eagerly: float32 ``shape`` on the vectors' device."""
        out = self.vectors[0] * self.weights[0]
        for vector, weight in zip(self.vectors[1:], self.weights[1:], strict=True):
            out.add_(vector, alpha=weight)
        return out.reshape(self.shape)


MIX_TERMS = 6  # the most a Mix of FastLatents holds: two for the SLERP, four wander keyframes


class _Pipeline:
    """One fixed batch size: static device buffers, the (compiled) frame function, maybe a CUDA graph.

    ``terms`` > 0 (batch 1 with a CUDA graph): the input is a ``Mix`` of that many terms, summed inside
    the graph from ``basis`` [terms, C*h*w] and ``weights`` [terms] (see ``load``); else ``static_in``."""

    def __init__(self, fn, batch: int, latent_shape: tuple[int, int, int], device: torch.device,
                 graphs: bool, terms: int = 0) -> None:
        self.latent_shape = latent_shape
        self.basis: torch.Tensor | None = None
        self.static_in: torch.Tensor | None = None
        if terms:
            self.basis = torch.randn((terms, math.prod(latent_shape)), device=device)  # warm-up runs on it
            self.weights = torch.full((terms,), 1 / terms, device=device)
            self.rows: list[torch.Tensor | None] = [None] * terms  # the Mix vector in each basis row
        else:
            self.static_in = torch.randn((batch, *latent_shape), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.fn = fn
        if graphs:
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):  # warm-up (compilation, cuDNN choices) off the capture
                for _ in range(3):
                    fn(self._input())
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.static_out = fn(self._input())
        else:
            self.static_out = fn(self._input())

    def _input(self) -> torch.Tensor:
        if self.basis is None:
            return self.static_in
        # Multiply and sum, not a matrix product: exact for a single term of weight 1 (a plain latent),
        # and no TF32 whatever the process's matmul precision.
        return (self.weights[:, None] * self.basis).sum(0).view(1, *self.latent_shape)

    def load(self, source: torch.Tensor | Mix, pinned_weights: torch.Tensor,
             pinned_latent: torch.Tensor) -> None:
        """Put one frame's input in place (``terms`` > 0), stream-ordered, without waiting for the device.

        A ``Mix``: vectors not already in their rows are copied there (the rest of a frame's rows keep
        finite vectors of earlier mixes, weighted 0); a latent is row 0 with weight 1 (from the CPU through
        ``pinned_latent``). The weights go up through ``pinned_weights``. The pinned buffers must stay
        untouched until the frame is collected."""
        if isinstance(source, Mix):
            for row, vector in enumerate(source.vectors):
                if self.rows[row] is not vector:
                    self.basis[row].copy_(vector)
                    self.rows[row] = vector
            weights = source.weights
        else:
            if source.device.type == "cpu":
                pinned_latent.copy_(source)
                source = pinned_latent
            self.basis[0].copy_(source.reshape(-1), non_blocking=True)
            self.rows[0] = None
            weights = (1.0,)
        host = pinned_weights.numpy()
        host[:] = 0.0
        host[: len(weights)] = weights
        self.weights.copy_(pinned_weights, non_blocking=True)

    def run(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame(s) of the input in place; the returned tensors are reused by the next run."""
        if self.graph is not None:
            self.graph.replay()
            return self.static_out
        return self.fn(self._input())


class FastDecoder:
    """Latent -> uint8 picture on the host through a fixed-shape device pipeline. See the module docstring."""

    SLOTS = 2  # frames in flight at most

    def __init__(self, ae: Any, out_size: tuple[int, int], options: AccelOptions | None = None, *,
                 size: tuple[int, int] | None = None) -> None:
        self.ae = ae
        self.device = torch.device(ae.device)
        self.options = options or default_options(self.device, ae.arch)
        if self.options.compile != "off" and self.device.type == "cpu":
            log.info("torch.compile on the CPU: the first frame will take a while (C++ compilation)")
        self.out_size = tuple(out_size)
        size = tuple(size or out_size)
        self.latent_shape = tuple(ae.latent_shape(size))
        self.frames = 0
        self.fallbacks = 0
        self.device_seconds = 0.0  # running estimate of a frame's time on the device (or decode thread)
        self._fn = None
        self._pipes: dict[int, _Pipeline] = {}
        self._plain = False  # after a non-finite frame: Autoencoder.decode + eager conversion, fp32
        self._slots: list[dict[str, Any]] = []
        self._order: list[int] = []  # slots in flight, oldest first
        self._next = 0
        self._cuda = self.device.type == "cuda"
        self._worker: threading.Thread | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    # -- building ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        if self._fn is not None:
            return
        opts = self.options
        if self._cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution once
        module = fold_upsampling(self.ae.decoder_module) if opts.subpixel else self.ae.decoder_module
        if opts.channels_last:
            module.to(memory_format=torch.channels_last)  # shared parameters: the Autoencoder's too
        if self.device.type == "cpu":
            _return_freed_memory()
        out_hw = (self.out_size[1], self.out_size[0])
        fn = _frame_fn(self.ae, module, out_hw, opts.channels_last)
        if opts.compile != "off":
            mode = opts.compile
            if opts.cuda_graphs and mode == "max-autotune":
                mode = "max-autotune-no-cudagraphs"  # the graph is ours
            fn = torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)
        self._fn = fn
        pinned = self._cuda
        for _ in range(self.SLOTS):
            slot: dict[str, Any] = {
                "frame": torch.empty((self.out_size[1], self.out_size[0], 3), dtype=torch.uint8,
                                     pin_memory=pinned),
                "finite": torch.empty((), dtype=torch.bool, pin_memory=pinned),
                "latent": torch.empty(self.latent_shape, dtype=torch.float32, pin_memory=pinned),
                "weights": torch.empty(MIX_TERMS, dtype=torch.float32, pin_memory=pinned),
                # (timed: the device's own time per frame, which host-side waits do not distort)
                "start": torch.cuda.Event(enable_timing=True) if self._cuda else None,
                "event": torch.cuda.Event(enable_timing=True) if self._cuda else None,
                "result": None,
            }
            self._slots.append(slot)
        if opts.background and not self._cuda and self.device.type == "cpu":
            self._worker = threading.Thread(target=self._work, name="cpu-decode", daemon=True)
            self._worker.start()

    def _pipe(self, batch: int) -> _Pipeline:
        pipe = self._pipes.get(batch)
        if pipe is None:
            graphs = self.options.cuda_graphs
            terms = MIX_TERMS if graphs and batch == 1 else 0  # (launch's frames: see Mix)
            with torch.no_grad():
                pipe = _Pipeline(self._fn, batch, self.latent_shape, self.device, graphs, terms)
            self._pipes[batch] = pipe
        return pipe

    def warmup(self) -> None:
        """Compile and capture now, and run one frame."""
        self._build()
        self._pipe(1)
        self(torch.randn(self.latent_shape))

    def describe(self) -> str:
        dtype = DTYPE_NAMES.get(self.ae.dtype, str(self.ae.dtype))
        text = f"{self.device.type} {dtype} {self.options.describe()}"
        return text + (" (fp32 fallback)" if self._plain else "")

    # -- one frame -----------------------------------------------------------------------------------------

    def __call__(self, latent: torch.Tensor | Mix) -> np.ndarray:
        if self._order:  # collect() would hand back the oldest frame, not this one
            raise RuntimeError("FastDecoder: a frame is in flight; collect() it before a frame in one call")
        self.launch(latent)
        return self.collect()

    @property
    def asynchronous(self) -> bool:
        """Does ``launch`` return before the frame is made? (CUDA: stream-ordered; CPU: the decode thread.)"""
        return self._cuda or (self.options.background and self.device.type == "cpu")

    @property
    def in_flight(self) -> int:
        return len(self._order)

    def launch(self, latent: torch.Tensor | Mix) -> None:
        """Queue the frame of ``latent`` ([C, h, w] or [1, C, h, w], or a ``Mix``, which a CUDA graph sums
        on the device); returns without waiting for it."""
        self._build()
        if len(self._order) >= self.SLOTS:
            raise RuntimeError(f"FastDecoder: {self.SLOTS} frames in flight; collect() one first")
        graphed = self._cuda and self.options.cuda_graphs and not self._plain
        if isinstance(latent, Mix) and not graphed:
            latent = latent.latent()
        if not isinstance(latent, Mix):
            latent = latent.detach().reshape(self.latent_shape)
        index = self._next
        self._next = (self._next + 1) % self.SLOTS
        slot = self._slots[index]
        self._order.append(index)
        slot["source"] = latent
        if self._plain:
            try:
                slot["result"] = self._plain_frame(latent)
            except Exception as exc:  # handed to collect(), so that the slot is freed there
                slot["result"] = exc
        elif self._worker is not None:
            slot["done"] = done = threading.Event()
            slot["latent"].copy_(latent)
            self._jobs.put((index, done))
        elif self._cuda:
            with torch.no_grad():
                pipe = self._pipe(1)
                slot["start"].record()
                if graphed:  # (pinned staging: the uploads do not wait for the device)
                    pipe.load(latent, slot["weights"], slot["latent"])
                elif latent.device.type == "cpu":  # stage in pinned memory so that the upload is asynchronous
                    slot["latent"].copy_(latent)
                    pipe.static_in[0].copy_(slot["latent"], non_blocking=True)
                else:
                    pipe.static_in[0].copy_(latent)
                frames, finite = pipe.run()
                slot["frame"].copy_(frames[0], non_blocking=True)
                slot["finite"].copy_(finite, non_blocking=True)
                slot["event"].record()
        else:  # CPU in this thread, or MPS (asynchronous until the copy to the host)
            slot["result"] = self._device_frame(latent)

    def ready(self) -> bool:
        """Is the oldest launched frame finished? Never blocks. False when nothing is in flight."""
        if not self._order:
            return False
        slot = self._slots[self._order[0]]
        if slot["result"] is not None:
            return True
        if "done" in slot:
            return slot["done"].is_set()
        return slot["event"].query() if self._cuda else True

    def collect(self) -> np.ndarray:
        """Wait for the oldest launched frame; [H, W, 3] uint8, a fresh array."""
        if not self._order:
            raise RuntimeError("FastDecoder.collect: nothing was launched")
        slot = self._slots[self._order.pop(0)]
        if "done" in slot:
            slot.pop("done").wait()
        result, slot["result"] = slot["result"], None
        if result is None:  # CUDA: the frame is on its way to the pinned buffer
            slot["event"].synchronize()
            result = (slot["frame"].numpy().copy(), bool(slot["finite"]))
            self._timed(slot["start"].elapsed_time(slot["event"]) / 1000)
        elif "seconds" in slot:  # the decode thread's
            self._timed(slot.pop("seconds"))
        if isinstance(result, BaseException):
            raise result
        frame, finite = result
        if not finite:
            source = slot["source"]
            frame = self._fall_back(source.latent() if isinstance(source, Mix) else source)
        self.frames += 1
        return frame

    def decode_batch(self, latents: torch.Tensor) -> np.ndarray:
        """[B, C, h, w] latents -> [B, H, W, 3] uint8, through a fixed-batch pipeline (``options.prefetch``
        frames at a time; a shorter tail is padded so that shapes stay fixed)."""
        self._build()
        latents = latents.detach().reshape(-1, *self.latent_shape)
        if self._plain or self.options.prefetch <= 1:
            return np.stack([self(z) for z in latents])
        batch = self.options.prefetch
        out = []
        with torch.no_grad():
            pipe = self._pipe(batch)
            for start in range(0, latents.shape[0], batch):
                chunk = latents[start:start + batch]
                pipe.static_in[: len(chunk)].copy_(chunk)
                frames, finite = pipe.run()
                host = frames[: len(chunk)].cpu().numpy()
                if not bool(finite):
                    host = np.stack([self._fall_back(z) for z in chunk])
                out.append(host)
        self.frames += latents.shape[0]
        return np.concatenate(out)

    # -- the paths -----------------------------------------------------------------------------------------

    def _device_frame(self, latent: torch.Tensor) -> tuple[np.ndarray, bool] | BaseException:
        try:
            with torch.no_grad():
                pipe = self._pipe(1)
                pipe.static_in[0].copy_(latent)
                frames, finite = pipe.run()
                return frames[0].cpu().numpy(), bool(finite)
        except Exception as exc:  # handed to collect(), which raises it in the caller's thread
            return exc

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                index, done = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            slot = self._slots[index]
            began = time.perf_counter()
            slot["result"] = self._device_frame(slot["latent"])
            slot["seconds"] = time.perf_counter() - began
            done.set()

    def _timed(self, seconds: float) -> None:
        self.device_seconds = running_mean(self.device_seconds, seconds)

    def _plain_frame(self, latent: torch.Tensor) -> tuple[np.ndarray, bool]:
        with torch.no_grad():
            pixels = self.ae.decode(latent[None].float())
            x = pixels.float()
            out_hw = (self.out_size[1], self.out_size[0])
            if tuple(x.shape[-2:]) != out_hw:
                x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
            frame = (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
            return frame.cpu().numpy(), True

    def _fall_back(self, latent: torch.Tensor) -> np.ndarray:
        """A non-finite fast frame: decode again through Autoencoder.decode, which moves the decoder to fp32
        for good (or raises NonFiniteDecode); later frames take that plain path too."""
        log.warning("%s: non-finite frame on the fast path; using the plain fp32 path from now on",
                    self.ae.label)
        self.fallbacks += 1
        self._plain = True
        self._pipes.clear()
        return self._plain_frame(latent)[0]

    def close(self) -> None:
        """Stop the CPU decode thread (frames in flight are dropped)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None


def running_mean(old: float, new: float) -> float:
    """A running estimate of a duration: the first sample, then an exponential mean (new weighs 0.2)."""
    return new if not old else 0.8 * old + 0.2 * new


def make_frame_fn(ae: Any, out_size: tuple[int, int], config: Any = None, *,
                  size: tuple[int, int] | None = None) -> FastDecoder:
    """A ``FastDecoder`` for ``ae`` with ``config``'s speed switches ("auto" where missing)."""
    options = options_from_config(config, ae.device, ae.arch)
    if size is None and config is not None and getattr(config, "size", None):
        size = tuple(config.size)
    return FastDecoder(ae, out_size, options, size=size)


class FastLatents:
    """``performance.latent_at`` for the render loop, with the per-segment work done once per anchor pair.

    Why: on a GPU ``latent_at`` issues a few hundred tiny kernels and host round trips per frame (the
    general, batched geometry), about 1.2 ms on an H100-class machine: more than the fast decoder's
    0.9 ms frame. Anchors do not change while playing, so for a SLERP segment (the ``slerp`` and ``walk``
    paths) the unit vectors, norms and angle are fixed; a frame's point is then two scalars (from Python
    floats) times two fixed vectors, and the random walk's wander is four device-resident keyframes mixed
    with four scalars: a ``Mix`` of at most ``MIX_TERMS`` terms. Anything else (glides in progress,
    offsets, locks, lerp / spline / loop paths, atlas coordinates with the ``atlas`` attribute, the geodesic
    path with the ``routes`` attribute) is passed to ``latent_at`` itself, so results are the same function
    of the coordinates.

    ``FastLatents(anchors [N, C, h, w], seed=..., std=...)``; ``fl(coords) -> [C, h, w]`` on the anchors'
    device and dtype; ``fl.mix(coords) -> Mix | None`` (None: ``latent_at`` serves these coordinates).
    Equal to ``latent_at`` within float32 rounding (tests/speed/test_accel.py).
    """

    def __init__(self, anchors: torch.Tensor, *, seed: int = 0, std: float = 1.0) -> None:
        self.anchors = anchors
        self.seed = seed
        self.std = std
        self.atlas = None  # lab.atlas.Atlas for coordinates in atlas mode (latent_at places them)
        self.routes = None  # [N - 1, K, C, h, w] for the geodesic path (set by lab.live.LiveLab)
        self.fast_calls = 0
        self._segments: dict[int, tuple] = {}
        self._keyframes: dict[int, torch.Tensor] = {}

    def __call__(self, coords: Any) -> torch.Tensor:
        mix = self.mix(coords)
        if mix is None:
            from instrument.performance import latent_at

            return latent_at(self.anchors, coords, seed=self.seed, std=self.std, atlas=self.atlas,
                             routes=self.routes)
        with torch.no_grad():
            return mix.latent().to(self.anchors.dtype)

    def mix(self, coords: Any) -> Mix | None:
        """The point at ``coords`` as a ``Mix``, or None where only ``latent_at`` computes it."""
        simple = (coords.path in ("slerp", "walk") and coords.glide >= 1.0 and coords.offset == 0
                  and coords.lock_channels <= 0 and coords.lock_region == "none"
                  and not getattr(coords, "atlas", False) and self.anchors.shape[0] > 1)
        if not simple:
            return None
        self.fast_calls += 1
        vectors, weights = self._slerp_terms(float(coords.s))
        if coords.noise > 0:
            self._wander_terms(float(coords.walk_t), float(coords.noise) * self.std, vectors, weights)
        return Mix(tuple(vectors), tuple(weights), tuple(self.anchors.shape[1:]))

    def _segment(self, i: int) -> tuple:
        """Constants of the SLERP from anchor i to i + 1, as geometry.slerp computes them."""
        seg = self._segments.get(i)
        if seg is None:
            from instrument.latent import geometry

            work = torch.promote_types(self.anchors.dtype, torch.float32)
            with torch.no_grad():
                a = self.anchors[i].reshape(-1).to(work)
                b = self.anchors[i + 1].reshape(-1).to(work)
                na, nb = float(a.norm()), float(b.norm())
                ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
                theta = 2 * math.atan2(float((ua - ub).norm()), float((ua + ub).norm()))
                if theta <= math.pi / 2:
                    other = ub
                else:  # the far branch turns toward a tangent with geometry's own antipode handling
                    half = geometry.slerp(self.anchors[i], self.anchors[i + 1], 0.5).reshape(-1).to(work)
                    other = (half / ((na + nb) / 2) - math.cos(theta / 2) * ua) / math.sin(theta / 2)
            seg = (a, b, ua, other, na, nb, theta)
            self._segments[i] = seg
        return seg

    def _slerp_terms(self, s: float) -> tuple[list[torch.Tensor], list[float]]:
        n = self.anchors.shape[0]
        x = min(max(s, 0.0), 1.0) * (n - 1)
        i = int(min(max(math.floor(x), 0), n - 2))
        t = min(max(x - i, 0.0), 1.0)
        a, b, ua, other, na, nb, theta = self._segment(i)
        if t == 0.0:
            return [a], [1.0]
        if t == 1.0:
            return [b], [1.0]
        scale = (1 - t) * na + t * nb
        if theta <= math.pi / 2:
            sinc = _sinc(theta / math.pi)
            ca = (1 - t) * _sinc((1 - t) * theta / math.pi) / sinc
            cb = t * _sinc(t * theta / math.pi) / sinc
        else:
            ca, cb = math.cos(t * theta), math.sin(t * theta)
        return [ua, other], [scale * ca, scale * cb]

    def _wander_terms(self, walk_t: float, amount: float, vectors: list[torch.Tensor],
                      weights: list[float]) -> None:
        """Append ``amount * geometry.walk_offset(walk_t, seed, shape)`` as four keyframes on the device."""
        from instrument.latent import geometry

        k = math.floor(walk_t)
        u = walk_t - k
        u2, u3 = u * u, u * u * u
        spline = [0.5 * (-u3 + 2 * u2 - u), 0.5 * (3 * u3 - 5 * u2 + 2), 0.5 * (-3 * u3 + 4 * u2 + u),
                  0.5 * (u3 - u2)]
        norm = math.sqrt(sum(w * w for w in spline))
        shape = tuple(self.anchors.shape[1:])
        work = torch.promote_types(self.anchors.dtype, torch.float32)
        for j, w in zip(range(-1, 3), spline, strict=True):
            key = k + j
            frame = self._keyframes.get(key)
            if frame is None:
                # geometry's own keyframe (its private cache) so that live and offline agree bit for bit
                frame = geometry._keyframe(self.seed, key, shape).reshape(-1).to(self.anchors.device, work)
                self._keyframes[key] = frame
                for old in [x for x in self._keyframes if abs(x - key) > 4]:
                    del self._keyframes[old]
            vectors.append(frame)
            weights.append(amount * w / norm)


def _sinc(x: float) -> float:
    return 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
