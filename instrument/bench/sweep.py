"""The live rows: the real render thread under a knob sweep, and what reached its mailbox.

``live_sweep`` runs ``render.Renderer`` as play runs it, with synthetic MIDI CC messages (mod wheel ->
position, a little noise so that no frame repeats) put into its ``EventQueue`` at ``SWEEP_RATE`` a second,
and returns a row: frames per second, control event -> frame latency, memory, and each frame's time split
into latent, decode and the rest of the loop. ``running_renderer`` is the one place the bench reaches into
the loop's stages; the soak's memory samples are judged by ``steady_index`` and ``drift``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from instrument.bench.machine import memory
from instrument.bench.timing import fresh_compiler, summary
from instrument.config import Config
from instrument.events import EventQueue
from instrument.mailbox import Mailbox

SWEEP_PERIOD = 2.0  # seconds for the knob to go 0 -> 127 -> 0
SWEEP_RATE = 200.0  # CC messages per second (a fast hand on a knob sends about that)
# Per-frame samples kept for percentiles and the in-loop split: bounded, so that a soak measures the
# instrument's memory, not the benchmark's (a GPU soak makes hundreds of thousands of frames).
KEPT = 50_000
# The render rate of a GPU's live rows: far above any decode, so that the loop is always behind its clock,
# as flat out as it goes.
FLAT_OUT_FPS = 10_000.0
SWEEP_MAPPING = """\
version: 1
name: bench sweep
ports: any
controls:
  - {cc: 1, param: position, smoothing: 0}
  - {cc: 71, param: noise, smoothing: 0}
"""


class KnobSweep(threading.Thread):
    """Plays a knob: mod wheel (CC 1) up and down every SWEEP_PERIOD seconds, SWEEP_RATE messages a second,
    scheduled by start + n * interval, into the render thread's EventQueue."""

    def __init__(self, queue: EventQueue) -> None:
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


class CountingMailbox(Mailbox):
    """The render thread's mailbox, noting (time, latency, decoder) of the last KEPT frames put in, and the
    frames per decoder since the start."""

    def __init__(self) -> None:
        super().__init__()
        self.published: collections.deque[tuple[float, float | None, str]] = collections.deque(maxlen=KEPT)
        self.shown: collections.Counter[str] = collections.Counter()

    def put(self, frame: Any) -> None:
        self.published.append((time.monotonic(), frame.latency, frame.decoder))
        self.shown[frame.decoder] += 1
        super().put(frame)


# -- the render thread -------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_renderer(config: Config, decoders: tuple[Any, Any], anchors: torch.Tensor, mapping: Any,
                     queue: EventQueue, mailbox: Mailbox, *, accelerated: bool = True,
                     timed_latents: str | None = None, sculpt_model: Any = None,
                     sculpting: Callable[..., Any] | None = None) -> Iterator[Any]:
    """The render thread as play runs it on ``decoders`` = (fast, full or None) and ``anchors``, started;
    stopped and joined on leaving. ``accelerated=False``: no frame pipeline (the plain decode).
    ``timed_latents``: decode every frame through ``timed_decoding(timed_latents)`` instead of play's own
    decode stage. ``sculpt_model``: the session sculpts with it (``sculpt.SculptModel``), in the stage
    ``sculpting`` makes (default: play's, ``loop.sculpting.build_sculpting``)."""
    from instrument.loop.controls import Controls
    from instrument.render import Renderer

    def load(say: Callable[[str], None]) -> tuple[Any, ...]:
        return *decoders, anchors, [f"seed:{i}" for i in range(len(anchors))], [], sculpt_model

    factories: dict[str, Any] = {}
    if not accelerated:
        factories["pipeline"] = lambda *a, **k: None
    if timed_latents is not None:
        factories["decoding"] = timed_decoding(timed_latents)
    if sculpting is not None:
        factories["sculpting"] = sculpting
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=load,
                        controls=lambda: Controls(mapping, queue=queue), **factories)
    try:
        renderer.start()
        yield renderer
    finally:
        renderer.stop()
        renderer.join(30)


def timed_decoding(latents: str = "latent_at") -> type:
    """The decode stage (``loop.decoding.Decoding``) with a stopwatch: (latent ms, decode ms) of each frame
    it decodes, and no frame cache, so that every frame published is a frame decoded. The latent:
    ``latents`` = "fast" (as play: ``Decoding.source``, a Mix where FastLatents has one), "eager"
    (FastLatents' latent by eager kernels) or "latent_at" (the general geometry). The decode:
    ``DecodeJob.seconds``, from its launch (or the end of the frame queued before it) to its picture on the
    host; work the loop does meanwhile is inside."""
    from instrument.framecache import FrameCache
    from instrument.loop.decoding import Decoding
    from instrument.performance import latent_at

    class TimedDecoding(Decoding):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "progressive": False})
            self.make_latent = {
                "fast": super().source,
                "eager": self.latent,
                "latent_at": lambda c: latent_at(self.anchors, c, seed=self.seed, std=self.std),
            }[latents]
            # Every frame decoded: at hundreds of frames a second the sweep's coordinates repeat (CC steps,
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


def _wait_until_playing(renderer: Any) -> None:
    while renderer.status.phase != "playing":  # loading, compiling, capturing
        if renderer.finished:
            raise RuntimeError(f"render thread ended: {renderer.failure or renderer.status.message}")
        time.sleep(0.01)


def _exact_count(renderer: Any) -> int | None:
    """Exact decodes so far when the display shows blends in between, else None (every frame is exact)."""
    progressive = getattr(getattr(renderer, "decoding", None), "progressive", None)
    return progressive.decoded if progressive is not None else None


def _cache_mb(renderer: Any) -> dict[str, float]:
    cache = getattr(getattr(renderer, "decoding", None), "cache", None)
    return {"cache_mb": round(cache.bytes / 2**20, 1)} if cache is not None else {}


# -- one live row ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Window:
    """What the render thread did during the measured seconds."""

    t0: float
    t1: float
    shown: collections.Counter[str]  # frames published per decoder
    published: list[tuple[float, float | None, str]]  # (time, latency, decoder), the last KEPT at most
    exact: int | None  # exact decodes, where blends were shown in between; else None
    read_ahead: int  # frames whose controls were read while the frame before decoded
    samples: list[dict[str, Any]]  # memory samples (the soak)
    events_sent: int


def _measure(renderer: Any, queue: EventQueue, mailbox: CountingMailbox, device: torch.device,
             row: dict[str, Any], *, seconds: float, warmup_s: float, sample_every: float,
             progress: Callable[[str], None]) -> Window:
    """Wait for play, sweep for ``warmup_s``, then measure ``seconds`` (memory at both ends into ``row``)."""
    began = time.monotonic()
    _wait_until_playing(renderer)
    row["startup_s"] = round(time.monotonic() - began, 2)
    progress(f"playing after {row['startup_s']} s; sweeping")
    sweep = KnobSweep(queue)
    sweep.start()
    try:
        time.sleep(warmup_s)
        row["memory_start"] = memory(device)
        t0 = time.monotonic()
        shown_before, read_before = mailbox.shown.copy(), renderer.read_ahead
        decoded_before = _exact_count(renderer)
        samples: list[dict[str, Any]] = []
        next_sample = t0
        while time.monotonic() - t0 < seconds and not renderer.finished:
            if sample_every and time.monotonic() >= next_sample:
                at = round(time.monotonic() - t0, 1)
                samples.append({"t": at, **memory(device), **_cache_mb(renderer)})
                next_sample += sample_every
            time.sleep(0.02)
        t1 = time.monotonic()
        decoded = _exact_count(renderer)
        row["memory_end"] = memory(device)
    finally:
        sweep.stop()
        sweep.join()
    return Window(t0, t1, mailbox.shown - shown_before, [p for p in mailbox.published if t0 <= p[0] <= t1],
                  None if decoded is None else decoded - decoded_before, renderer.read_ahead - read_before,
                  samples, sweep.sent)


def _sweep_anchors(ae: Any, size: int, anchors_on: str) -> torch.Tensor:
    """Four seeded random anchors of the decoder's latent shape at ``size``, in its family's scale."""
    c, h, w = ae.latent_shape((size, size))
    anchors = torch.randn(4, c, h, w, generator=torch.Generator().manual_seed(0)) * ae.family.latent_std
    return anchors.to(ae.device if anchors_on == "device" else "cpu")


def _sweep_mapping(full: bool, sculpt_steps: int = 0) -> Any:
    from instrument.mapping import parse_mapping

    initial = ["decoder: full"] * full + [f"sculpt: 1.0, steps: {sculpt_steps}"] * bool(sculpt_steps)
    text = SWEEP_MAPPING + (f"initial: {{{', '.join(initial)}}}\n" if initial else "")
    mapping, errors = parse_mapping(text, "<bench sweep>")
    if errors:
        raise errors[0]
    return mapping


def live_sweep(ae: Any, size: int, config: Config, *, seconds: float, warmup_s: float = 2.0,
               fps: float = FLAT_OUT_FPS, accelerated: bool = True, sample_every: float = 0.0,
               progressive: bool | None = None, anchors_on: str = "device", latents: str = "fast",
               fast: Any = None, sculpt: tuple[Any, int, bool] | None = None,
               progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Run the real render thread on ``ae`` (as its fast decoder) at ``size`` for ``warmup_s + seconds``
    under a knob sweep; measure what reached the mailbox during the last ``seconds``.

    ``fast``: play ``ae`` as the full decoder beside this fast one, chosen by the mapping (``decoder: full``)
    as a performer does; the fast one then serves what play gives it (the lab's stretch readout).

    ``fps``: the render thread's frame rate; far above what the decoder can do = flat out (the loop never
    waits, so frames per second is the loop's throughput). ``accelerated=False`` plays the plain path (the
    render thread's GPU pipeline off). ``sample_every`` > 0 samples memory as it goes (the soak).
    ``progressive`` (default: on the CPU, accelerated, as ``play`` does): the render thread's own path shows
    blends at ``fps`` while exact frames decode in the background (``loop.decoding.Decoding`` with
    ``framecache.Progressive``); the row's ``exact_fps`` counts the exact ones. False: every frame decoded.
    ``anchors_on``: "device" (as ``play`` loads them) or "cpu": the frame's latent is then computed on the
    CPU and uploaded once (a few hundred tiny kernels fewer on a GPU).
    ``latents``: "fast" (as ``render`` does: ``FastLatents``' Mix, summed inside a CUDA graph), "eager"
    (FastLatents' latent made by eager kernels, then decoded) or "latent_at" (the same function, the general
    geometry); progressive rows always use the render thread's own.
    The row splits each frame's time (``in_loop``): the latent, the decode (latent in -> uint8 out) and the
    rest of the loop. ``sculpt`` = (model, steps, stream): every frame is sculpted at strength 1
    (``bench.sculpt``), as a stream batch or not; the row's ``sculpt`` then splits a frame into the UNet's and
    the decode's own time and the rest.
    """
    device = torch.device(ae.device)
    if progressive is None:
        progressive = accelerated and device.type == "cpu"
    fresh_compiler()
    cfg = dataclasses.replace(config, size=(size, size), fps=fps, out_size="", frames=0, duration=0.0)
    if not accelerated:
        cfg = dataclasses.replace(cfg, compile="off", cuda_graphs="off", channels_last="off")
    queue, mailbox = EventQueue(), CountingMailbox()
    decoders = (ae, None) if fast is None else (fast, ae)
    anchors = _sweep_anchors(ae, size, anchors_on)
    mapping = _sweep_mapping(fast is not None, sculpt[1] if sculpt else 0)
    row: dict[str, Any] = {"size": size, "seconds": seconds, "render_fps_setting": fps}
    try:
        with running_renderer(cfg, decoders, anchors, mapping, queue, mailbox, accelerated=accelerated,
                              timed_latents=None if progressive else latents,
                              sculpt_model=sculpt[0] if sculpt else None,
                              sculpting=_sculpt_stage(*sculpt[1:]) if sculpt else None) as renderer:
            window = _measure(renderer, queue, mailbox, device, row, seconds=seconds, warmup_s=warmup_s,
                              sample_every=sample_every, progress=progress)
    finally:
        for model in (ae, fast):  # as loaded, for the next run
            if model is not None:
                model.decoder_module.to(memory_format=torch.contiguous_format)
    if renderer.failure is not None:
        raise RuntimeError(f"render thread failed: {renderer.failure}")
    decoding = getattr(renderer, "decoding", None)  # (None: the render thread never loaded)
    row.update(_paths(decoding, full=fast is not None, progressive=progressive))
    row.update(_rates(window, full=fast is not None))
    row["anchors_on"] = anchors_on
    row["latents"] = latents if not progressive else "fast"
    row.update(_in_loop(decoding, window))
    row["events_sent"] = window.events_sent
    row["events_dropped"] = queue.dropped
    if decoding is not None:
        row["cache_hits"] = decoding.cache.hits
        row["cache_misses"] = decoding.cache.misses
    if window.samples:
        row["memory_samples"] = window.samples
    if sculpt is not None:
        row["sculpt"] = _sculpt_split(decoding, row["fps"], sculpt[1])
    return row


def _sculpt_stage(steps: int, stream: bool) -> Callable[..., Any]:
    """Play's sculpt stage, the stream batch on or off, warmed up for ``steps`` (before the timing starts)."""
    from instrument.loop.sculpting import build_sculpting

    return functools.partial(build_sculpting, stream=stream, warm_steps=(steps,))


def _sculpt_split(decoding: Any, fps: float, steps: int) -> dict[str, Any]:
    """A sculpted frame's time: the UNet steps and the decode, each on the device's own clock, and the rest
    of the frame period (the loop's overhead)."""
    stage = getattr(decoding, "sculpting", None)
    if stage is None:
        raise RuntimeError("the render thread made no sculpt stage (see its errors)")
    period = 1000 / fps if fps else float("inf")
    unet_ms, decode_ms = stage.sculptor.device_seconds * 1000, decoding.fast_frames.device_seconds * 1000
    streamed = stage.stream is not None and stage.stream.calls > 0  # (1 step never streams)
    return {"steps": steps, "sculptor": stage.sculptor.describe(), "stream": streamed,
            "unet_ms": round(unet_ms, 3),
            "decode_ms": round(decode_ms, 3), "frame_period_ms": round(period, 3),
            "overhead_ms": round(period - unet_ms - decode_ms, 3)}


def _paths(decoding: Any, *, full: bool, progressive: bool) -> dict[str, str]:
    """The decode path the row played, and the render path around it."""
    frames_fn = getattr(decoding, "full_frames" if full else "fast_frames", None)
    path = frames_fn.describe() if frames_fn is not None else "plain (Autoencoder.decode)"
    if getattr(decoding, "progressive", None) is not None and not full:
        path += " + progressive (blends between exact frames)"
    render_path = "render.Renderer + loop.decoding.Decoding (as play)" if progressive else \
        "render.Renderer + timed Decoding (every frame decoded)"
    return {"path": path, "render_path": render_path}


def _rates(window: Window, *, full: bool) -> dict[str, Any]:
    """Frames, exact frames and control -> frame latency over the window."""
    seconds = window.t1 - window.t0
    frames = sum(window.shown.values())
    # (blends stand in for fast frames only: a full row's frames are all exact)
    exact = frames if window.exact is None or full else window.exact
    latencies = [p[1] * 1000 for p in window.published if p[1] is not None]
    gaps = [(b[0] - a[0]) * 1000 for a, b in zip(window.published, window.published[1:], strict=False)]
    return {"frames": frames, "shown": dict(window.shown), "fps": round(frames / seconds, 2),
            "read_ahead": round(window.read_ahead / frames, 3) if frames else 0.0,  # share of frames
            "exact_fps": round(exact / seconds, 2), "latency": summary(latencies),
            "frame_interval": summary(gaps)}


def _in_loop(decoding: Any, window: Window) -> dict[str, Any]:
    """Medians of a frame's latent and decode (from a timed decoding), and the rest of the frame period."""
    spans = getattr(decoding, "spans", None)
    frames = sum(window.shown.values())
    if not spans or frames < 5:  # a frame or two in the window says nothing about the loop
        return {}
    recent = list(spans)[-min(frames, KEPT):]
    latent_ms = statistics.median(a for a, _ in recent)
    decode_ms = statistics.median(b for _, b in recent)
    period = 1000 * (window.t1 - window.t0) / frames
    return {"in_loop": {"latent_ms": round(latent_ms, 4), "decode_ms": round(decode_ms, 4),
                        "frame_period_ms": round(period, 4),
                        "rest_ms": round(period - latent_ms - decode_ms, 4)}}


# -- the soak ----------------------------------------------------------------------------------------------


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


def soak_drifts(row: dict[str, Any]) -> None:
    """Add the steady state's start and each memory figure's drift to a soak row."""
    samples = row.get("memory_samples", [])
    start = steady_index(samples)
    row["steady_from_s"] = samples[start]["t"] if samples else None
    for key in ("rss_mb", "cuda_allocated_mb", "mps_allocated_mb"):
        change = drift(samples, key, start)
        if change is not None:
            row[f"drift_{key}_pct"] = change
