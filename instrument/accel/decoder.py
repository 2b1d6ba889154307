"""``FastDecoder``: latent in, uint8 picture on the host out, through a fixed-shape device pipeline.

It builds the frame function (``pipeline``) with the speed switches of its ``AccelOptions``, picks the
backend that runs it beside the caller (``cuda``, ``threaded`` or ``synchronous``), and keeps a frame
honest: a non-finite frame sends the decoder to the plain fp32 path for good.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import sys
from typing import Any

import numpy as np
import torch

from instrument.accel.backend import SLOTS, Backend, Done
from instrument.accel.cuda import CudaBackend
from instrument.accel.options import DTYPE_NAMES, AccelOptions, default_options, options_from_config
from instrument.accel.pipeline import Pipeline, frame_function
from instrument.accel.synchronous import SyncBackend
from instrument.accel.threaded import BackgroundBackend
from instrument.decoders.subpixel import fold_upsampling
from instrument.latent.fast import MIX_TERMS, Mix
from instrument.pixels import pixels_to_uint8

log = logging.getLogger(__name__)


def _return_freed_memory() -> None:
    """glibc: give every allocation of 128 KiB or more a mapping of its own (this turns off glibc's adaptive
    threshold, which otherwise rises to the size of the decoder's activations).

    Why: on a CPU, decoded frames (long-lived, ~200 KB each, kept by the frame cache) and the decoder's
    activations (short-lived, megabytes) then no longer share the heap, whose holes cannot go back to the
    system: without this a long CPU sweep's RSS grew to several times the frame cache's size
    (benchmarks/README.md, "Memory"). Linux with glibc only; elsewhere nothing happens.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # -3: M_MMAP_THRESHOLD


def running_mean(old: float, new: float) -> float:
    """A running estimate of a duration: the first sample, then an exponential mean (new weighs 0.2)."""
    return new if not old else 0.8 * old + 0.2 * new


class FastDecoder:
    """Latent -> uint8 picture on the host through a fixed-shape device pipeline. See ``instrument.accel``."""

    SLOTS = SLOTS  # frames in flight at most

    def __init__(self, ae: Any, out_size: tuple[int, int], options: AccelOptions | None = None, *,
                 size: tuple[int, int] | None = None) -> None:
        self.ae = ae
        self.device = torch.device(ae.device)
        self.options = options or default_options(self.device, ae.arch)
        if self.options.compile != "off" and self.device.type == "cpu":
            log.info("torch.compile on the CPU: the first frame will take a while (C++ compilation)")
        self.out_size = tuple(out_size)
        self.latent_shape = tuple(ae.latent_shape(tuple(size or out_size)))
        self.frames = 0
        self.fallbacks = 0
        self.device_seconds = 0.0  # running estimate of a frame's time on the device (or decode thread)
        self._cuda = self.device.type == "cuda"
        self._graphed = self._cuda and self.options.cuda_graphs
        self._background = self.options.background and self.device.type == "cpu"
        self._fn = None
        self._pipes: dict[int, Pipeline] = {}
        self._plain = False  # after a non-finite frame: Autoencoder.decode + eager conversion, fp32
        self._backend: Backend | None = None
        self._flight: collections.deque[tuple[Backend, torch.Tensor | Mix]] = collections.deque()

    # -- building ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        if self._fn is not None:
            return
        opts = self.options
        if self._cuda:
            # Fixed shapes: pick the fastest convolution once; unless the caller asked for the same bits on
            # every run (an offline render), which timing-based picks cannot promise.
            torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
        module = fold_upsampling(self.ae.decoder_module) if opts.subpixel else self.ae.decoder_module
        if opts.channels_last:
            module.to(memory_format=torch.channels_last)  # shared parameters: the Autoencoder's too
        if self.device.type == "cpu":
            _return_freed_memory()
        fn = frame_function(self.ae, module, self.out_size, opts.channels_last)
        if opts.compile != "off":
            mode = opts.compile
            if opts.cuda_graphs and mode == "max-autotune":
                mode = "max-autotune-no-cudagraphs"  # the graph is ours
            fn = torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)
        self._fn = fn
        self._backend = self._make_backend()

    def _make_backend(self) -> Backend:
        if self._cuda:
            return CudaBackend(lambda: self._pipe(1), self.out_size, self.latent_shape, self._graphed)
        if self._background:
            backend = BackgroundBackend(self._device_frame, self.latent_shape)
            backend.start()
            return backend
        return SyncBackend(self._device_frame)

    def _pipe(self, batch: int) -> Pipeline:
        pipe = self._pipes.get(batch)
        if pipe is None:
            graphs = self.options.cuda_graphs
            terms = MIX_TERMS if graphs and batch == 1 else 0  # (launch's frames: see Mix)
            with torch.no_grad():
                pipe = Pipeline(self._fn, batch, self.latent_shape, self.device, graphs, terms)
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

    # -- frames --------------------------------------------------------------------------------------------

    def __call__(self, latent: torch.Tensor | Mix) -> np.ndarray:
        if self._flight:  # collect() would hand back the oldest frame, not this one
            raise RuntimeError("FastDecoder: a frame is in flight; collect() it before a frame in one call")
        self.launch(latent)
        return self.collect()

    @property
    def asynchronous(self) -> bool:
        """Does ``launch`` return before the frame is made? (CUDA: stream-ordered; CPU: the decode thread.)"""
        return not self._plain and (self._cuda or self._background)

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    def launch(self, latent: torch.Tensor | Mix) -> None:
        """Queue the frame of ``latent`` ([C, h, w] or [1, C, h, w], or a ``Mix``, which a CUDA graph sums
        on the device); returns without waiting for it."""
        self._build()
        if len(self._flight) >= self.SLOTS:
            raise RuntimeError(f"FastDecoder: {self.SLOTS} frames in flight; collect() one first")
        if isinstance(latent, Mix) and (self._plain or not self._graphed):
            latent = latent.latent()
        if not isinstance(latent, Mix):
            latent = latent.detach().reshape(self.latent_shape)
        self._backend.launch(latent)
        self._flight.append((self._backend, latent))

    def ready(self) -> bool:
        """Is the oldest launched frame finished? Never blocks. False when nothing is in flight."""
        return bool(self._flight) and self._flight[0][0].ready()

    def collect(self) -> np.ndarray:
        """Wait for the oldest launched frame; [H, W, 3] uint8, a fresh array."""
        if not self._flight:
            raise RuntimeError("FastDecoder.collect: nothing was launched")
        backend, source = self._flight.popleft()
        done: Done = backend.collect()
        if backend is not self._backend and all(b is not backend for b, _ in self._flight):
            backend.close()  # the fast path's last frame after a fall back
        if done.seconds is not None:
            self.device_seconds = running_mean(self.device_seconds, done.seconds)
        if done.error is not None:
            raise done.error
        frame = done.frame if done.finite else self._fall_back(source)
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

    def _device_frame(self, latent: torch.Tensor) -> tuple[np.ndarray, bool]:
        """One frame through the batch-1 pipeline, to the host (the synchronous and threaded backends)."""
        with torch.no_grad():
            pipe = self._pipe(1)
            pipe.static_in[0].copy_(latent)
            frames, finite = pipe.run()
            return frames[0].cpu().numpy(), bool(finite)

    def _plain_frame(self, latent: torch.Tensor) -> tuple[np.ndarray, bool]:
        """``Autoencoder.decode`` (which raises NonFiniteDecode rather than give NaN) and the conversion."""
        with torch.no_grad():
            pixels = self.ae.decode(latent[None].float())
            return pixels_to_uint8(pixels, self.out_size)[0].cpu().numpy(), True

    def _fall_back(self, latent: torch.Tensor | Mix) -> np.ndarray:
        """A non-finite fast frame: decode again through Autoencoder.decode, which moves the decoder to fp32
        for good (or raises NonFiniteDecode); later frames take that plain path too."""
        log.warning("%s: non-finite frame on the fast path; using the plain fp32 path from now on",
                    self.ae.label)
        self.fallbacks += 1
        if not self._plain:
            self._plain = True
            self._pipes.clear()
            if all(b is not self._backend for b, _ in self._flight):
                self._backend.close()
            self._backend = SyncBackend(self._plain_frame)
        return self._plain_frame(latent.latent() if isinstance(latent, Mix) else latent)[0]

    def close(self) -> None:
        """Stop the CPU decode thread (frames in flight are dropped); frames asked for later are made in the
        caller's thread."""
        for backend in {id(b): b for b, _ in self._flight}.values():
            backend.close()
        self._flight.clear()
        if isinstance(self._backend, BackgroundBackend):
            self._backend.close()
            self._backend = SyncBackend(self._device_frame)
            self._background = False


def make_frame_fn(ae: Any, out_size: tuple[int, int], config: Any = None, *,
                  size: tuple[int, int] | None = None) -> FastDecoder:
    """A ``FastDecoder`` for ``ae`` with ``config``'s speed switches ("auto" where missing)."""
    options = options_from_config(config, ae.device, ae.arch)
    if size is None and config is not None and getattr(config, "size", None):
        size = tuple(config.size)
    return FastDecoder(ae, out_size, options, size=size)
