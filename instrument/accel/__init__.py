"""The render path near the hardware's limit: latent in, uint8 picture on the host out, with fixed shapes.

API (for the render thread; build and call it from that one thread):

- ``make_frame_fn(ae, out_size, config, *, size=None) -> FastDecoder``: the frame pipeline for an
  ``Autoencoder`` with the speed switches of ``config`` (``channels_last``, ``subpixel``, ``compile``,
  ``cuda_graphs``, ``prefetch``; "auto" = the measured best for the device, see ``options``).
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
  - ``latent`` may also be a ``Mix`` (``latent.fast``): with a CUDA graph the sum is made inside the graph.
  - ``decode_batch(latents [B, C, h, w]) -> ndarray [B, H, W, 3]``: several frames in one pass (prefetch;
    faster per frame for TAESD on a GPU, see benchmarks/README.md).
  - ``warmup()``: compile and capture now (the first call would otherwise do it: seconds on a GPU).
  - ``describe() -> str`` for the HUD ("cuda fp16 channels_last compile=default cuda_graph"), ``options``,
    ``close()`` (stops the CPU decode thread; call it in a ``finally``).
  A frame is never NaN/Inf: a non-finite frame in fp16 sends this decoder to the plain fp32 path for good
  (``Autoencoder.decode`` switches and warns) and the frame is decoded again there.

Modules: ``options`` (the switches and their measured defaults), ``pipeline`` (the frame as one fixed-shape
function, its buffers and CUDA graph), ``decoder`` (``FastDecoder``), and its backends: ``cuda`` (stream-
ordered, through the graph), ``threaded`` (a CPU decode thread), ``synchronous`` (in the caller's thread).
``FastLatents`` and ``Mix`` live beside the geometry they speed up, in ``instrument.latent.fast``.
"""

from instrument.accel.decoder import FastDecoder, make_frame_fn, running_mean
from instrument.accel.options import (
    COMPILE_MODES,
    DTYPE_NAMES,
    AccelOptions,
    default_options,
    options_from_config,
)

__all__ = [
    "COMPILE_MODES",
    "DTYPE_NAMES",
    "AccelOptions",
    "FastDecoder",
    "default_options",
    "make_frame_fn",
    "options_from_config",
    "running_mean",
]
