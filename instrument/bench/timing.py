"""Timing one frame: the decoders a row times, the plain and accelerated decode, the app's slider move.

``time_calls`` repeats a call for a while and returns its wall-clock milliseconds; ``summary`` gives their
median and p99. ``decode_times`` is one decode row, ``slider_move_times`` the baseline row.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from instrument.config import Config
from instrument.pixels import pixels_to_uint8

log = logging.getLogger(__name__)

DECODER_ARCH = {"fast": "taesd", "full": "kl"}
VARIANTS: dict[str, dict[str, Any]] = {
    # name -> overrides of the Config's speed switches ("plain" = no FastDecoder at all)
    "plain": {},
    "accel": {},
    "eager-cl": {"compile": "off", "cuda_graphs": "off", "channels_last": "on"},
    "compile": {"compile": "default", "cuda_graphs": "off"},
    "autotune": {"compile": "max-autotune"},
    "subpixel": {"subpixel": "on"},
    "no-subpixel": {"subpixel": "off"},
}


def summary(ms: list[float]) -> dict[str, float]:
    """Median, p99 (nearest rank), mean and count of a list of milliseconds."""
    if not ms:
        return {"n": 0}
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, int(np.ceil(0.99 * len(ordered))) - 1)]
    return {"median_ms": round(statistics.median(ordered), 4), "p99_ms": round(p99, 4),
            "mean_ms": round(statistics.fmean(ordered), 4), "n": len(ordered)}


def time_calls(fn: Callable[[], Any], *, seconds: float, warmup: int = 2, min_n: int = 3,
               max_n: int = 500) -> list[float]:
    """Wall-clock milliseconds of ``fn()`` (which must finish its device work, e.g. by copying to the
    host), repeated for about ``seconds`` after ``warmup`` untimed calls."""
    for i in range(warmup):
        t0 = time.perf_counter()
        fn()
        if i == 0 and time.perf_counter() - t0 > 1.0:
            break  # a call of seconds (a full VAE on a CPU): one warm-up is enough
    ms: list[float] = []
    began = time.perf_counter()
    while len(ms) < max_n and (len(ms) < min_n or time.perf_counter() - began < seconds):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


# -- the decoders ------------------------------------------------------------------------------------------


def named(source: str) -> bool:
    """Does a --model / --full-model value name a model (rather than "auto" or "none")?"""
    return source not in ("auto", "", "none")


def bench_family(config: Config) -> str:
    """The latent space the rows play in: --family, or the family a named --model's file name gives away
    while --family is left at its default (as play chooses it)."""
    from instrument.decoders import family_from_name

    hinted = family_from_name(config.model) if named(config.model) else None
    if hinted is not None and config.family == Config().family:
        return hinted.name
    return config.family


def build_decoder(which: str, device: torch.device, dtype: torch.dtype, family: str = "sd15",
                  config: Config | None = None):
    """The decoder a row times in slot ``which`` ("fast" or "full"): the model ``config.model`` (fast) or
    ``config.full_model`` (full) names, loaded as play loads it; else the real architecture (TAESD; the SD
    1.5 VAE's layout) with random weights in ``family``'s latent space (timing does not depend on weight
    values, and nothing is downloaded). Raises ModelLoadError for a named model that does not load."""
    from instrument.decoders import load_autoencoder, random_autoencoder

    source = "" if config is None else {"fast": config.model, "full": config.full_model}[which]
    if named(source):
        return load_autoencoder(source, family=family, device=device, dtype=dtype, offline=config.offline)
    return random_autoencoder(DECODER_ARCH[which], family=family, device=device, dtype=dtype)


def weights_label(ae: Any) -> str:
    """What a decoder's rows measured, for the results file: "TAESD (sd15, random weights)", or a loaded
    model's label and where it came from."""
    return ae.label if ae.source in ("", "random") else f"{ae.label} from {ae.source}"


def plain_frame_fn(ae: Any, out_size: tuple[int, int]) -> Callable[[torch.Tensor], np.ndarray]:
    """The unaccelerated path: ``Autoencoder.decode`` (its NaN check included), resize, uint8, to the host."""

    def frame(latent: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return pixels_to_uint8(ae.decode(latent[None]), out_size)[0].cpu().numpy()

    return frame


def fresh_compiler() -> None:
    """Start a row as a fresh process would: every FastDecoder compiles the same frame function (one code
    object), and after ``torch._dynamo.config.recompile_limit`` recompilations (8) torch.compile silently
    runs it eagerly: a long benchmark's later rows would time the eager path under the compiled name."""
    torch.compiler.reset()


# -- decode rows -------------------------------------------------------------------------------------------


def decode_times(ae: Any, size: int, variant: str, config: Config, seconds: float) -> dict[str, Any]:
    """One row: time one frame of ``ae`` at ``size``x``size`` through ``variant`` (see VARIANTS)."""
    from instrument.accel import make_frame_fn
    from instrument.bench.machine import synchronize

    device = torch.device(ae.device)
    c, h, w = ae.latent_shape((size, size))
    latents = [torch.randn(c, h, w, device=device) for _ in range(4)]  # rotate: not one cached input
    row: dict[str, Any] = {"variant": variant, "size": size}
    fd = None
    fresh_compiler()
    try:
        if variant == "plain":
            fn = plain_frame_fn(ae, (size, size))
            row["path"] = "Autoencoder.decode + eager conversion"
        else:
            cfg = dataclasses.replace(config, **VARIANTS.get(variant, {}), size=(size, size))
            fd = make_frame_fn(ae, (size, size), cfg)
            t0 = time.perf_counter()
            fd.warmup()
            synchronize(device)
            row["build_s"] = round(time.perf_counter() - t0, 2)
            row["path"] = fd.describe()
            fn = fd
        counter = iter(range(10**9))
        ms = time_calls(lambda: fn(latents[next(counter) % 4]), seconds=seconds)
        row.update(summary(ms))
        row["fps"] = round(1000 / row["median_ms"], 2)
        if fd is not None and device.type == "cuda" and variant == "accel":
            row["with_latent"] = overlap_times(fd, ae, size, seconds)
    except Exception as exc:  # one variant failing (e.g. no compiler) must not end the benchmark
        log.exception("decode %s %s failed", variant, size)
        row["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if fd is not None:
            fd.close()
            # The next row (a plain one, another size) must start from the module as loaded.
            ae.decoder_module.to(memory_format=torch.contiguous_format)
    return row


def overlap_times(fd: Any, ae: Any, size: int, seconds: float) -> dict[str, float]:
    """Per-frame ms of "the frame's latent (``performance.latent_at`` on the device), then its picture",
    done in turn (``fd(latent)``) and overlapped (``launch`` the next frame, then ``collect`` the last, so
    that the CPU computes a latent while the GPU decodes): what a render loop gains from the two-phase API."""
    from instrument.performance import Coords, latent_at

    device = torch.device(ae.device)
    c, h, w = ae.latent_shape((size, size))
    anchors = torch.randn(4, c, h, w, device=device)
    step = iter(range(10**9))

    def latent() -> torch.Tensor:
        i = next(step)
        coords = Coords("slerp", (i % 1000) / 1000, noise=0.05, walk_t=i / 1000)
        with torch.inference_mode():
            return latent_at(anchors, coords, seed=0)

    def in_turn() -> None:
        fd(latent())

    def overlapped() -> None:
        fd.launch(latent())
        if fd.in_flight == 2:
            fd.collect()

    out = {}
    for name, fn in (("latent_ms", latent), ("in_turn_ms", in_turn), ("overlapped_ms", overlapped)):
        out[name] = summary(time_calls(fn, seconds=seconds / 2, warmup=5))["median_ms"]
        while fd.in_flight:
            fd.collect()
    return out


# -- the app's slider move ---------------------------------------------------------------------------------


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The app's own SLERP (whole tensors as vectors)."""
    af, bf = a.flatten().double(), b.flatten().double()
    omega = torch.acos((af @ bf / (af.norm() * bf.norm())).clamp(-1, 1))
    if float(omega) < 1e-6:
        return a + t * (b - a)
    s = torch.sin(omega)
    return ((torch.sin((1 - t) * omega) / s).float() * a + (torch.sin(t * omega) / s).float() * b)


def slider_move_times(device: torch.device, *, seconds: float, size: int = 512, warmup: int = 1,
                      min_n: int = 2) -> dict[str, Any]:
    """The interpolation app's slider move: encode both images (full VAE), SLERP, full decode, fp32, to the
    host as uint8. Returns a row with median/p99 ms and moves per second."""
    ae = build_decoder("full", device, torch.float32)
    images = torch.rand(2, 3, size, size, device=device)
    frame = plain_frame_fn(ae, (size, size))
    t = iter(np.linspace(0.1, 0.9, 10**4))

    def move(ae=ae) -> np.ndarray:
        with torch.no_grad():
            za = ae.encode(images[:1])[0]
            zb = ae.encode(images[1:])[0]
            return frame(slerp(za, zb, float(next(t))))

    ms = time_calls(move, seconds=seconds, warmup=warmup, min_n=min_n, max_n=100)
    del move
    row = {"what": f"interpolation app slider move (2 encodes + SLERP + decode, full VAE, fp32, {size}px)",
           "size": size, "dtype": "fp32", **summary(ms)}
    row["moves_per_s"] = round(1000 / row["median_ms"], 3)
    del ae
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row
