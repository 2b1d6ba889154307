"""``latent-instrument bench``: how fast the instrument is, against the interpolation app it replaces.

For each device (cpu, cuda, mps), decoder (fast: TAESD architecture; full: SD 1.5 VAE architecture), dtype
and size it measures, with randomly initialised weights (timing does not depend on weight values):

- **decode**: one frame, latent -> uint8 picture on the host, median and p99, for the plain path
  (``Autoencoder.decode`` + conversion) and the accelerated one (``accel.FastDecoder``);
- **live**: the real render thread (``render.Renderer``) during a knob sweep: synthetic MIDI CC messages
  (mod wheel -> position, with a little noise so that no frame repeats) put into the ``EventQueue`` at
  200 per second; frames published to the mailbox per second, control event -> frame latency (p50, p99),
  the loop's overhead beyond the decode, and process/device memory at the start and the end;
- **baseline**: one slider move of the simple interpolation app: both images encoded again with the full
  VAE, SLERP, full decode, fp32, 512x512 (what a page rerun costs);
- **soak** (``--soak SECONDS``): a long sweep, memory sampled as it goes; flat within 5% is the target.

It prints a table and writes ``<out>/<name>.md`` and ``.json``, naming the machine, torch and every setting.
The decode loop, the sweep and the soak are plain functions (``decode_times``, ``live_sweep``,
``slider_move_times``), so the tests run a tiny configuration end to end.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instrument.accel import DTYPE_NAMES
from instrument.config import BenchConfig, Config, listing, number

log = logging.getLogger(__name__)

DECODER_ARCH = {"fast": "taesd", "full": "kl"}
SWEEP_PERIOD = 2.0  # seconds for the knob to go 0 -> 127 -> 0
SWEEP_RATE = 200.0  # CC messages per second (a fast hand on a knob sends about that)
# Per-frame samples kept for percentiles and the in-loop split: bounded, so that a soak measures the
# instrument's memory, not the benchmark's (a GPU soak makes ~450,000 frames in 10 minutes).
KEPT = 50_000

# The render rate of a GPU's live rows: far above any decode (TAESD's 512 px frame is ~1 ms on an H100), so
# that the loop is always behind its clock, as flat out as it goes.
FLAT_OUT_FPS = 10_000.0
SWEEP_MAPPING = """\
version: 1
name: bench sweep
ports: any
controls:
  - {cc: 1, param: position, smoothing: 0}
  - {cc: 71, param: noise, smoothing: 0}
"""


# -- the machine -------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    elif torch.backends.mps.is_available():
        info["gpu"] = "Apple GPU (MPS)"
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (ImportError, OSError):
        pass
    return info


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def memory(device: torch.device) -> dict[str, float]:
    """Process RSS and the device allocator's numbers, in MiB."""
    import psutil

    out = {"rss_mb": psutil.Process().memory_info().rss / 2**20}
    if device.type == "cuda":
        out["cuda_allocated_mb"] = torch.cuda.memory_allocated(device) / 2**20
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    elif device.type == "mps":
        out["mps_allocated_mb"] = torch.mps.current_allocated_memory() / 2**20
    return {k: round(v, 1) for k, v in out.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# -- timing ------------------------------------------------------------------------------------------------


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


# -- decoders ----------------------------------------------------------------------------------------------


def build_decoder(which: str, device: torch.device, dtype: torch.dtype, family: str = "sd15"):
    from instrument.decoders import random_autoencoder

    return random_autoencoder(DECODER_ARCH[which], family=family, device=device, dtype=dtype)


def plain_frame_fn(ae, out_size: tuple[int, int]) -> Callable[[torch.Tensor], np.ndarray]:
    """The unaccelerated path: ``Autoencoder.decode`` (its NaN check included), resize, uint8, to the host."""
    import torch.nn.functional as F

    def frame(latent: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            pixels = ae.decode(latent[None]).float()
            if tuple(pixels.shape[-2:]) != (out_size[1], out_size[0]):
                pixels = F.interpolate(pixels, size=(out_size[1], out_size[0]), mode="bilinear",
                                       antialias=True)
            out = (pixels[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
            return out.cpu().numpy()

    return frame


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


def fresh_compiler() -> None:
    """Start a row as a fresh process would: every FastDecoder compiles the same frame function (one code
    object), and after ``torch._dynamo.config.recompile_limit`` recompilations (8) torch.compile silently
    runs it eagerly: a long benchmark's later rows would time the eager path under the compiled name."""
    torch.compiler.reset()


def decode_times(ae, size: int, variant: str, config: Config, seconds: float) -> dict[str, Any]:
    """One row: time one frame of ``ae`` at ``size``x``size`` through ``variant`` (see VARIANTS)."""
    from instrument.accel import make_frame_fn

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


def overlap_times(fd, ae, size: int, seconds: float) -> dict[str, float]:
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


# -- the live loop -----------------------------------------------------------------------------------------


class _Sweep(threading.Thread):
    """Plays a knob: mod wheel (CC 1) up and down every SWEEP_PERIOD seconds, SWEEP_RATE messages a second,
    scheduled by start + n * interval, into the render thread's EventQueue."""

    def __init__(self, queue) -> None:
        super().__init__(name="bench-sweep", daemon=True)
        self.queue = queue
        self.sent = 0
        self._stop_flag = threading.Event()

    def stop(self) -> None:
        self._stop_flag.set()

    def run(self) -> None:
        import mido

        from instrument.events import ControlEvent

        interval = 1 / SWEEP_RATE
        start = time.monotonic()
        self.queue.put(ControlEvent(start, "bench", mido.Message("control_change", control=71, value=6)))
        n = 0
        while not self._stop_flag.is_set():
            now = time.monotonic()
            phase = ((now - start) / SWEEP_PERIOD) % 1.0
            value = int(round(127 * (1 - abs(2 * phase - 1))))
            self.queue.put(ControlEvent(now, "bench", mido.Message("control_change", control=1, value=value)))
            self.sent += 1
            n += 1
            wait = start + n * interval - time.monotonic()
            if wait > 0:
                self._stop_flag.wait(wait)


def live_sweep(ae, size: int, config: Config, *, seconds: float, warmup_s: float = 2.0,
               fps: float = FLAT_OUT_FPS, accelerated: bool = True, sample_every: float = 0.0,
               progressive: bool | None = None, anchors_on: str = "device", latents: str = "fast",
               fast: Any = None, progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Run the real render thread on ``ae`` (as its fast decoder) at ``size`` for ``warmup_s + seconds``
    under a knob sweep; measure what reached the mailbox during the last ``seconds``.

    ``fast``: play ``ae`` as the full decoder beside this fast one, chosen by the mapping (``decoder: full``)
    as a performer does; the fast one then serves what play gives it (the lab's stretch readout).

    ``fps``: the render thread's frame rate; far above what the decoder can do = flat out (the loop never
    waits, so frames per second is the loop's throughput). ``accelerated=False`` plays the plain path (the
    render thread's GPU pipeline off). ``sample_every`` > 0 samples memory as it goes (the soak).
    ``progressive`` (default: on the CPU, accelerated, as ``play`` does): the render thread's own path shows
    blends at ``fps`` while exact frames decode in the background (``render.Decoding`` with
    ``framecache.Progressive``); the row's ``exact_fps`` counts the exact ones. False: every frame decoded.
    ``anchors_on``: "device" (as ``play`` loads them) or "cpu": the frame's latent is then computed on the
    CPU and uploaded once (a few hundred tiny kernels fewer on a GPU).
    ``latents``: "fast" (as ``render`` does: ``accel.FastLatents``' Mix, summed inside a CUDA graph),
    "eager" (FastLatents' latent made by eager kernels, then decoded) or "latent_at" (the same function,
    the general geometry); progressive rows always use the render thread's own.
    The row splits each frame's time (``in_loop``): the latent, the decode (latent in -> uint8 out) and the
    rest of the loop.
    """
    from instrument import render
    from instrument.events import EventQueue
    from instrument.mailbox import Mailbox
    from instrument.mapping import parse_mapping

    device = torch.device(ae.device)
    # (time, latency, decoder) of the last KEPT frames, and frames per decoder since the start
    published: collections.deque[tuple[float, float | None, str]] = collections.deque(maxlen=KEPT)
    shown: collections.Counter[str] = collections.Counter()
    fresh_compiler()

    class LoggingMailbox(Mailbox):
        def put(self, frame) -> None:
            published.append((time.monotonic(), frame.latency, frame.decoder))
            shown[frame.decoder] += 1
            super().put(frame)

    text = SWEEP_MAPPING + ("initial: {decoder: full}\n" if fast is not None else "")
    mapping, errors = parse_mapping(text, "<bench sweep>")
    if errors:
        raise errors[0]
    c, h, w = ae.latent_shape((size, size))
    std = ae.family.latent_std
    anchors = torch.randn(4, c, h, w, generator=torch.Generator().manual_seed(0)) * std
    anchors = anchors.to(device if anchors_on == "device" else "cpu")
    cfg = dataclasses.replace(config, size=(size, size), fps=fps, out_size="", frames=0, duration=0.0)
    if not accelerated:
        cfg = dataclasses.replace(cfg, compile="off", cuda_graphs="off", channels_last="off")
    queue = EventQueue()
    mailbox = LoggingMailbox()

    def load(say):
        decoders = (ae, None) if fast is None else (fast, ae)
        return *decoders, anchors, [f"seed:{i}" for i in range(4)], []

    renderer = render.Renderer(cfg, queue=queue, mailbox=mailbox, load=load,
                               controls=lambda: render.Controls(mapping, queue=queue))
    if progressive is None:
        progressive = accelerated and device.type == "cpu"
    saved_pipeline, saved_decoding = render.frame_pipeline, render.Decoding
    if not accelerated:
        render.frame_pipeline = lambda *a, **k: None
    if not progressive:  # (progressive: the real render path, unchanged)
        render.Decoding = timed_decoding(render, latents)
    sweep = _Sweep(queue)
    samples: list[dict[str, Any]] = []
    row: dict[str, Any] = {"size": size, "seconds": seconds, "render_fps_setting": fps}
    try:
        renderer.start()
        began = time.monotonic()
        while renderer.status.phase != "playing":  # loading, compiling, capturing
            if renderer.finished:
                raise RuntimeError(f"render thread ended: {renderer.failure or renderer.status.message}")
            time.sleep(0.01)
        row["startup_s"] = round(time.monotonic() - began, 2)
        progress(f"playing after {row['startup_s']} s; sweeping")
        sweep.start()
        time.sleep(warmup_s)
        row["memory_start"] = memory(device)
        t0 = time.monotonic()
        shown_before = shown.copy()
        read_before = renderer.read_ahead
        decoded_before = _exact_count(renderer)
        next_sample = t0
        while time.monotonic() - t0 < seconds and not renderer.finished:
            if sample_every and time.monotonic() >= next_sample:
                cache = getattr(getattr(renderer, "decoding", None), "cache", None)
                filled = {"cache_mb": round(cache.bytes / 2**20, 1)} if cache is not None else {}
                samples.append({"t": round(time.monotonic() - t0, 1), **memory(device), **filled})
                next_sample += sample_every
            time.sleep(0.02)
        t1 = time.monotonic()
        decoded = _exact_count(renderer)
        read_ahead = renderer.read_ahead - read_before
        row["memory_end"] = memory(device)
        shown_during = shown - shown_before
        window = [p for p in published if t0 <= p[0] <= t1]  # (the last KEPT of them at most)
    finally:
        sweep.stop()
        renderer.stop()
        renderer.join(30)
        render.frame_pipeline, render.Decoding = saved_pipeline, saved_decoding
        for model in (ae, fast):  # as loaded, for the next run
            if model is not None:
                model.decoder_module.to(memory_format=torch.contiguous_format)
    if renderer.failure is not None:
        raise RuntimeError(f"render thread failed: {renderer.failure}")
    decoding = getattr(renderer, "decoding", None)
    frames_fn = getattr(decoding, "fast_frames" if fast is None else "full_frames", None)
    row["path"] = frames_fn.describe() if frames_fn is not None else "plain (Autoencoder.decode)"
    if getattr(decoding, "progressive", None) is not None and fast is None:
        row["path"] += " + progressive (blends between exact frames)"
    row["render_path"] = "render.Renderer + render.Decoding (as play)" if progressive else \
        "render.Renderer + timed Decoding (every frame decoded)"
    frames = sum(shown_during.values())
    row["frames"] = frames
    row["shown"] = dict(shown_during)  # frames per decoder
    row["fps"] = round(frames / (t1 - t0), 2)
    row["read_ahead"] = round(read_ahead / frames, 3) if frames else 0.0  # share of frames (render._loop)
    # (blends stand in for fast frames only: a full row's frames are all exact)
    exact = frames if decoded is None or fast is not None else decoded - decoded_before
    row["exact_fps"] = round(exact / (t1 - t0), 2)
    latencies = [p[1] * 1000 for p in window if p[1] is not None]
    row["latency"] = summary(latencies)
    gaps = [(b[0] - a[0]) * 1000 for a, b in zip(window, window[1:], strict=False)]
    row["frame_interval"] = summary(gaps)
    row["anchors_on"] = anchors_on
    row["latents"] = latents if not progressive else "fast"
    spans = getattr(decoding, "spans", None)
    if spans and frames >= 5:  # a frame or two in the window says nothing about the loop
        recent = list(spans)[-min(frames, KEPT):]
        latent_ms = statistics.median(a for a, _ in recent)
        decode_ms = statistics.median(b for _, b in recent)
        period = 1000 * (t1 - t0) / frames
        row["in_loop"] = {"latent_ms": round(latent_ms, 4), "decode_ms": round(decode_ms, 4),
                          "frame_period_ms": round(period, 4),
                          "rest_ms": round(period - latent_ms - decode_ms, 4)}
    row["events_sent"] = sweep.sent
    row["events_dropped"] = queue.dropped
    if decoding is not None:
        row["cache_hits"] = decoding.cache.hits
        row["cache_misses"] = decoding.cache.misses
    if samples:
        row["memory_samples"] = samples
    return row


def timed_decoding(render: Any, latents: str = "latent_at") -> type:
    """``render.Decoding`` with a stopwatch: (latent ms, decode ms) of each frame it decodes, and no frame
    cache, so that every frame published is a frame decoded. The latent: ``latents`` = "fast" (as play:
    ``Decoding.source``, a Mix where FastLatents has one), "eager" (FastLatents' latent by eager kernels) or
    "latent_at" (the general geometry). The decode: ``DecodeJob.seconds``, from its launch (or the end of
    the frame queued before it) to its picture on the host; work the loop does meanwhile is inside."""
    from instrument.framecache import FrameCache
    from instrument.performance import latent_at

    class TimedDecoding(render.Decoding):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.progressive = None
            self.make_latent = {
                "fast": super().source,
                "eager": self.latent,
                "latent_at": lambda c: latent_at(self.anchors, c, seed=self.seed, std=self.std),
            }[latents]
            # Every frame decoded: above ~250 frames a second the sweep's coordinates repeat (CC steps,
            # the walk clock's grid) and cache hits would count as frames the decoder never made.
            self.cache = FrameCache(0)
            self.spans: collections.deque[tuple[float, float]] = collections.deque(maxlen=KEPT)
            self._latent_ms = 0.0

        def source(self, coords: Any) -> Any:
            t0 = time.perf_counter()
            with torch.inference_mode():
                latent = self.make_latent(coords)
            self._latent_ms = (time.perf_counter() - t0) * 1000
            return latent

        def finish(self, job: Any) -> tuple[np.ndarray, bool]:
            out = super().finish(job)
            if job.began:
                self.spans.append((self._latent_ms, job.seconds * 1000))
            return out

    return TimedDecoding


def _exact_count(renderer: Any) -> int | None:
    """Exact decodes so far when the display shows blends in between, else None (every frame is exact)."""
    progressive = getattr(getattr(renderer, "decoding", None), "progressive", None)
    return progressive.decoded if progressive is not None else None


def steady_index(samples: list[dict[str, Any]], skip: float = 0.1) -> int:
    """Where the steady state starts: the first sample after ``skip`` of the run at which the frame cache
    (bounded by --frame-cache-mb) holds what it will hold at the end."""
    first = min(len(samples) - 1, int(len(samples) * skip))
    full = samples[-1].get("cache_mb") if samples else None
    if not full:
        return first
    filled = (i for i, x in enumerate(samples) if i >= first and x.get("cache_mb", 0) >= 0.995 * full)
    return min(next(filled, first), max(0, len(samples) - 2))  # two samples at least


def drift(samples: list[dict[str, Any]], key: str, start: int, span: int = 5) -> float | None:
    """Relative change of ``key`` from sample ``start`` to the end, in percent: the median of the last
    ``span`` samples against the median of the first ``span`` from ``start`` (a single sample may catch a
    decoder's transient working memory)."""
    values = [s.get(key) for s in samples[start:]]
    if len(values) < 2 or None in values:
        return None
    span = max(1, min(span, len(values) // 2))
    first, last = statistics.median(values[:span]), statistics.median(values[-span:])
    return round(100 * (last - first) / max(first, 1e-9), 2)


# -- the command -------------------------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def configure_bench(parser: argparse.ArgumentParser) -> None:
    size, seconds = number(int, 8, 8192), number(float, 0, 86400, above=True)
    parser.add_argument("--devices", default="", type=listing(("cpu", "cuda", "mps")),
                        help="comma-separated: cpu, cuda, mps (default: all)")
    parser.add_argument("--decoders", default="fast,full", type=listing(("fast", "full")),
                        help="fast (TAESD), full (SD 1.5 VAE)")
    parser.add_argument("--dtypes", default="auto", type=listing(("auto", "fp16", "bf16", "fp32")),
                        help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32")
    parser.add_argument("--sizes", default="256,512,768", type=listing(size),
                        help="square decode sizes in pixels")
    parser.add_argument("--variants", default="plain,accel", type=listing(VARIANTS),
                        help=f"decode paths to time: {', '.join(VARIANTS)} (accel = the config's switches)")
    parser.add_argument("--seconds", type=seconds, default=10.0, help="length of each live knob sweep")
    parser.add_argument("--decode-seconds", type=seconds, default=2.0,
                        help="time spent timing each decode row")
    parser.add_argument("--live-sizes", default="512", type=listing(size),
                        help="sizes to run the live sweep at ('' = none)")
    parser.add_argument("--live-fps", type=number(float, 0, 100_000), default=0.0,
                        help="render rate in the sweep (0: flat out on a GPU, twice --fps elsewhere)")
    parser.add_argument("--live-plain", action="store_true", help="also sweep with the plain path")
    parser.add_argument("--latents", default="fast", type=listing(("fast", "eager", "latent_at")),
                        help="how the sweep makes a frame's latent, comma-separated: fast (as play does: "
                             "accel.FastLatents' Mix, summed inside the CUDA graph), eager (FastLatents' "
                             "latent by eager kernels), latent_at (the general geometry)")
    parser.add_argument("--anchors-on", default="device", type=listing(("device", "cpu")),
                        help="where the sweep's latents are made: device (as play does), cpu, or both: "
                             "device,cpu")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="time the interpolation app's slider move (full VAE, fp32, 512px)")
    parser.add_argument("--soak", type=number(float, 0, 86400), default=0.0,
                        help="seconds of a soak sweep (fast decoder)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the results files")
    parser.add_argument("--name", default="", help="file name stem (default: bench-<device>[-<gpu>])")
    BenchConfig.add_arguments(parser)


def default_name(devices: list[str], info: dict[str, Any]) -> str:
    name = "bench-" + "-".join(devices)
    gpu = (info.get("gpu") or "").lower()
    for short in ("h200", "h100", "a100", "l40s", "l4", "a10", "4090", "3090", "t4", "v100"):
        if "cuda" in devices and short in gpu:
            return f"{name}-{short}"
    return name


def run_bench(args: argparse.Namespace) -> int:
    from instrument.devices import resolve_dtype

    config = Config.from_args(args)  # the whole Config: the live sweep runs the real render thread
    devices = _csv(args.devices) or available_devices()
    missing = [d for d in devices if d not in available_devices()]
    if missing:
        print(f"not available here: {', '.join(missing)} (available: {', '.join(available_devices())})")
        return 2
    decoders = _csv(args.decoders)
    sizes = [int(s) for s in _csv(args.sizes)]
    live_sizes = [int(s) for s in _csv(args.live_sizes)]
    variants = _csv(args.variants)
    for v in variants:
        if v not in VARIANTS:
            print(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
            return 2
    info = machine_info()
    result: dict[str, Any] = {"machine": info, "settings": {k: v for k, v in vars(args).items()},
                              "decode": [], "live": [], "baseline": [], "soak": []}
    say = print
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or default_name(devices, info)

    def save() -> str:
        """Write both files (after every row too, so that an interrupted run keeps what it measured)."""
        result["checks"] = checks(result)
        (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        text = to_markdown(result)
        (out / f"{stem}.md").write_text(text)
        return text

    say(f"bench on {info['cpu']} ({info['cpu_count']} cores), GPU: {info['gpu']}, torch {info['torch']}")
    for name in devices:
        device = torch.device(name)
        if args.baseline:
            say(f"[{name}] interpolation app slider move (full VAE fp32 512)...")
            gpu = name != "cpu"
            timing = slider_move_times(device, seconds=10.0 if gpu else 1.0, warmup=3 if gpu else 1)
            row = {"device": name, **timing}
            result["baseline"].append(row)
            save()
            say(f"  {row['median_ms']:.1f} ms per move ({row['moves_per_s']} moves/s)")
        dtypes = _csv(args.dtypes)
        for dtype_name in dtypes:
            dtype = resolve_dtype(dtype_name, device)
            dname = DTYPE_NAMES[dtype]
            for which in decoders:
                ae = build_decoder(which, device, dtype, config.family)
                # Live, the full decoder plays as in play: chosen beside a fast one (`decoder: full`).
                companion = build_decoder("fast", device, dtype, config.family) \
                    if which == "full" and live_sizes else None
                for size in sizes:
                    for variant in variants:
                        row = decode_times(ae, size, variant, config, args.decode_seconds)
                        row.update(device=name, decoder=which, dtype=dname)
                        result["decode"].append(row)
                        save()
                        say("  " + _decode_line(row))
                    if size in live_sizes:
                        fps = args.live_fps or (FLAT_OUT_FPS if name == "cuda" else 2 * config.fps)
                        runs = [(True, where, how) for where in _csv(args.anchors_on)
                                for how in _csv(args.latents)]
                        runs += [(False, "device", "latent_at")] if args.live_plain else []
                        for accelerated, where, how in runs:
                            say(f"[{name} {which} {dname} {size}] live sweep, {args.seconds:.0f} s, "
                                f"anchors on {where}, {how}{'' if accelerated else ', plain path'}...")
                            try:
                                row = live_sweep(ae, size, config, seconds=args.seconds, fps=fps,
                                                 accelerated=accelerated, anchors_on=where, latents=how,
                                                 fast=companion, progress=lambda t: say("  " + t))
                            except Exception as exc:
                                log.exception("live sweep failed")
                                row = {"size": size, "error": f"{type(exc).__name__}: {exc}"}
                            row.update(device=name, decoder=which, dtype=dname, accelerated=accelerated)
                            result["live"].append(row)
                            save()
                            say("  " + _live_line(row))
                del ae, companion
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        if args.soak > 0:
            dtype = resolve_dtype(_csv(args.dtypes)[0], device)
            size = (live_sizes or sizes)[0]
            say(f"[{name}] soak: {args.soak:.0f} s sweep, fast decoder, {size}px...")
            ae = build_decoder("fast", device, dtype, config.family)
            fps = args.live_fps or (FLAT_OUT_FPS if name == "cuda" else 2 * config.fps)
            row = live_sweep(ae, size, config, seconds=args.soak, fps=fps,
                             sample_every=max(1.0, args.soak / 60))
            row.update(device=name, decoder="fast", dtype=DTYPE_NAMES[dtype])
            samples = row.get("memory_samples", [])
            start = steady_index(samples)
            row["steady_from_s"] = samples[start]["t"] if samples else None
            for key in ("rss_mb", "cuda_allocated_mb", "mps_allocated_mb"):
                change = drift(samples, key, start)
                if change is not None:
                    row[f"drift_{key}_pct"] = change
            result["soak"].append(row)
            save()
            say("  " + _live_line(row))
    text = save()
    print()
    print(text)
    print(f"wrote {out / stem}.md and .json")
    return 0


# -- reporting ---------------------------------------------------------------------------------------------


def _decode_line(row: dict[str, Any]) -> str:
    head = f"{row.get('device')} {row.get('decoder')} {row.get('dtype')} {row['size']}px {row['variant']:8s}"
    if "error" in row:
        return f"{head} FAILED: {row['error']}"
    return (f"{head} median {row['median_ms']:9.3f} ms  p99 {row['p99_ms']:9.3f} ms  ({row['fps']} fps)  "
            f"{row.get('path', '')}")


def _live_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"live FAILED: {row['error']}"
    lat = row["latency"]
    return (f"live {row['fps']} fps (exact {row['exact_fps']}), latency p50 {lat.get('median_ms', 0):.2f} ms "
            f"p99 {lat.get('p99_ms', 0):.2f} ms, memory {row['memory_start']} -> {row['memory_end']}")


def _best_decode(result: dict[str, Any], device: str, decoder: str, size: int) -> dict[str, Any] | None:
    rows = [r for r in result["decode"] if r.get("device") == device and r.get("decoder") == decoder
            and r["size"] == size and r["variant"] == "accel" and "median_ms" in r]
    return rows[0] if rows else None


def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated where this run measured them."""
    out: list[dict[str, Any]] = []
    for live in result["live"]:
        if "error" in live or not live.get("accelerated", True):
            continue
        device, decoder, size = live["device"], live["decoder"], live["size"]
        if live.get("latents", "latent_at") != "latent_at":
            decoder = f"{decoder} [{live['latents']} latents]"
        key = decoder.split()[0]
        base = next((b for b in result["baseline"] if b["device"] == device), None)
        if base is not None and size == 512 and device != "cpu":
            ratio = live["fps"] / base["moves_per_s"]
            need = {"fast": 30, "full": 6}[key]
            out.append({"check": f"{device} {decoder} 512px live fps vs app slider moves/s", "value":
                        round(ratio, 1), "target": f">= {need}x", "met": ratio >= need})
        if base is not None and size == 512 and device == "cpu" and key == "fast":
            ratio = live["exact_fps"] / base["moves_per_s"]
            out.append({"check": "cpu fast 512px exact frames/s vs app slider moves/s",
                        "value": round(ratio, 1), "target": ">= 20x", "met": ratio >= 20})
        decode = _best_decode(result, device, key, size)
        if device == "cuda" and decode is not None:
            period = 1000 / live["fps"] if live["fps"] else float("inf")
            overhead = period - decode["median_ms"]
            out.append({"check": f"cuda {decoder} {size}px loop overhead beyond the decode (p50)",
                        "value": round(overhead, 3), "target": "<= 0.5 ms", "met": overhead <= 0.5})
            if size == 512:
                need = {"fast": 1.2, "full": 8.0}[key]
                out.append({"check": f"cuda {decoder} 512px live frame time", "value": round(period, 3),
                            "target": f"<= {need} ms", "met": period <= need})
        if device == "cpu" and key == "fast":
            if size == 256:
                out.append({"check": "cpu fast 256px exact frames per second", "value": live["exact_fps"],
                            "target": ">= 3", "met": live["exact_fps"] >= 3})
            out.append({"check": f"cpu fast {size}px display frames per second", "value": live["fps"],
                        "target": ">= 30", "met": live["fps"] >= 30})
    for soak in result["soak"]:
        for key, value in soak.items():
            if key.startswith("drift_"):
                out.append({"check": f"{soak['device']} soak {soak['seconds']:.0f} s {key}", "value": value,
                            "target": "within ±5%", "met": abs(value) <= 5})
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# latent-instrument bench",
        "",
        f"- machine: {m['platform']}; CPU: {m['cpu']} ({m['cpu_count']} cores, torch uses "
        f"{m['torch_threads']} threads); GPU: {m['gpu'] or 'none'}",
        f"- torch {m['torch']}" + (f", CUDA {m['cuda']}" if m.get("cuda") else "") + f", Python "
        f"{m['python']}",
        f"- load average at the start: {m.get('load_average', '—')} (other work here skews CPU times)",
        "- weights: random, real architectures (TAESD; SD 1.5 VAE) — speed does not depend on weight values",
        "- command: `latent-instrument bench " + _settings_text(result["settings"]) + "`",
        "",
    ]
    if result["baseline"]:
        lines += ["## Baseline: the interpolation app's slider move", "",
                  "| device | median ms | p99 ms | moves/s | n |", "|---|---|---|---|---|"]
        for b in result["baseline"]:
            lines.append(f"| {b['device']} | {_fmt(b['median_ms'], 1)} | {_fmt(b['p99_ms'], 1)} | "
                         f"{_fmt(b['moves_per_s'], 3)} | {b['n']} |")
        lines.append("")
    if result["decode"]:
        lines += ["## Decode: one frame, latent -> uint8 picture on the host", "",
                  "| device | decoder | dtype | size | variant | median ms | p99 ms | frames/s | build s "
                  "| path |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["decode"]:
            if "error" in r:
                lines.append(f"| {r['device']} | {r['decoder']} | {r['dtype']} | {r['size']} | "
                             f"{r['variant']} | failed: {r['error'][:80]} | | | | |")
                continue
            lines.append(f"| {r['device']} | {r['decoder']} | {r['dtype']} | {r['size']} | {r['variant']} | "
                         f"{_fmt(r['median_ms'], 3)} | {_fmt(r['p99_ms'], 3)} | {_fmt(r['fps'], 1)} | "
                         f"{_fmt(r.get('build_s'), 1)} | {r.get('path', '')} |")
        lines.append("")
    sweeps = result["live"] + result["soak"]
    if sweeps:
        lines += ["## Live loop: the real render thread under a knob sweep (200 CC/s into the EventQueue)",
                  "",
                  "| device | decoder | dtype | size | path | anchors on | latents | seconds | frames/s | "
                  "exact frames/s | latency p50 ms | latency p99 ms | RSS MiB start→end "
                  "| device MiB start→end |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sweeps:
            if "error" in r:
                lines.append(f"| {r['device']} | {r['decoder']} | {r['dtype']} | {r['size']} | "
                             f"failed: {r['error'][:80]} |||||||||| |")
                continue
            ms, me = r["memory_start"], r["memory_end"]
            dev_key = next((k for k in ("cuda_allocated_mb", "mps_allocated_mb") if k in ms), None)
            dev = f"{ms[dev_key]} → {me[dev_key]}" if dev_key else "—"
            lat = r["latency"]
            lines.append(f"| {r['device']} | {r['decoder']} | {r['dtype']} | {r['size']} | {r['path']} | "
                         f"{r.get('anchors_on', 'device')} | {r.get('latents', 'latent_at')} | "
                         f"{r['seconds']:.0f} | {_fmt(r['fps'], 1)} | "
                         f"{_fmt(r['exact_fps'], 1)} | "
                         f"{_fmt(lat.get('median_ms'))} | {_fmt(lat.get('p99_ms'))} | "
                         f"{ms['rss_mb']} → {me['rss_mb']} | {dev} |")
        lines.append("")
    overlap = [r for r in result["decode"] if "with_latent" in r]
    if overlap:
        lines += ["## Latent + decode, in turn vs overlapped (two-phase launch/collect)", "",
                  "| device | decoder | size | latent ms | latent then frame ms | overlapped ms |",
                  "|---|---|---|---|---|---|"]
        for r in overlap:
            o = r["with_latent"]
            lines.append(f"| {r['device']} | {r['decoder']} | {r['size']} | {_fmt(o['latent_ms'], 3)} | "
                         f"{_fmt(o['in_turn_ms'], 3)} | {_fmt(o['overlapped_ms'], 3)} |")
        lines.append("")
    timed = [r for r in result["live"] if "in_loop" in r]
    if timed:
        lines += ["## Where a live frame's time goes (medians, ms)", "",
                  "decode: from its launch (or the end of the frame queued before it) to its picture on the "
                  "host; read ahead: the share of frames whose controls the loop read, and whose decode it "
                  "queued, while the frame before decoded (that work then sits inside the decode); rest of "
                  "loop: the frame period less the latent and the decode.", "",
                  "| device | decoder | size | path | anchors on | latents | frame period | latent | decode "
                  "| rest of loop | read ahead |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in timed:
            t = r["in_loop"]
            lines.append(f"| {r['device']} | {r['decoder']} | {r['size']} | {r['path']} | "
                         f"{r['anchors_on']} | {r.get('latents', 'latent_at')} | "
                         f"{_fmt(t['frame_period_ms'], 3)} | {_fmt(t['latent_ms'], 3)} | "
                         f"{_fmt(t['decode_ms'], 3)} | {_fmt(t['rest_ms'], 3)} | "
                         f"{_fmt(100 * r.get('read_ahead', 0.0), 0)}% |")
        lines.append("")
    for s in result["soak"]:
        drifts = ", ".join(f"{k[6:-4]} {v:+.2f}%" for k, v in s.items() if k.startswith("drift_"))
        whole = ", ".join(f"{k} {v['rss_mb']} MiB" for k, v in (("start", s["memory_start"]),
                                                                 ("end", s["memory_end"])))
        lines += [f"Soak ({s['seconds']:.0f} s): memory change from {s.get('steady_from_s')} s (steady "
                  f"state: 10% into the run and any frame cache full) to the end: {drifts}; RSS over the "
                  f"whole run: {whole}", ""]
    if result.get("checks"):
        lines += ["## Targets (issue 5)", "", "| check | value | target | met |", "|---|---|---|---|"]
        for c in result["checks"]:
            lines.append(f"| {c['check']} | {c['value']} | {c['target']} | {'yes' if c['met'] else 'NO'} |")
        lines.append("")
    return "\n".join(lines)


def _settings_text(settings: dict[str, Any]) -> str:
    keys = ("devices", "decoders", "dtypes", "sizes", "variants", "seconds", "live_sizes", "soak")
    shown = [k for k in keys if settings.get(k) not in ("", None)]
    return " ".join(f"--{k.replace('_', '-')} {settings[k]}" for k in shown)
