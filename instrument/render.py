"""The render thread: controls in, frames out. It owns every torch call of a live session.

Each frame ``n`` is made for the time ``t = start + n * interval``:

1. drain the event queue and apply each event through the mapping engine (logged for the recorder);
2. poll the mapping file for edits (a bad edit keeps the last good mapping; the error goes to the HUD);
3. advance the control state to ``t`` and react to its actions (anchor picks, record, quit, HUD toggles);
4. ``Performance.step`` -> the frame's coordinates; the frame cache, or the latent (``accel.FastLatents``;
   on a CUDA graph its ``Mix``, summed inside the graph) and a decode on the device, resize there to the
   output size, and one copy to the host as uint8 (``Decoding.begin``, then ``Decoding.finish``);
5. publish to the one-slot mailbox and hand a copy to the recorder.

A frame that is late is not made up: the next frame is the newest grid time that has passed, so the picture
stays current on a slow machine. When the loop is behind its clock (a GPU flat out), steps 1-4 of the next
frame run while the current frame decodes, up to ``config.read_ahead_ms`` before it is expected done, so
that the device does not wait for the loop's Python side (``Renderer._read_ahead``). Time left before the
next frame goes to *progressive refinement* (the full decoder redraws a frame the performer has stopped
moving) and to *prefetch* (frames ahead along the current direction go into the cache, ``config.prefetch``
at a time). Errors in a frame are logged and shown; the loop goes on and the display keeps the last good
frame.

On a CPU an exact decode takes 100-800 ms, so the display does not wait for it: the exact frames decode in
the background (``accel.FastDecoder``'s decode thread) and the frames in between are blends of the nearest
exact ones (``framecache.Progressive``). The display moves at the frame rate; the HUD shows the exact-frame
rate beside it. A take records exact frames only, each with its own coordinates (a frame shown as a blend
has a line in frames.jsonl without a picture), so a re-render matches the recorded pictures.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from instrument.accel import FastLatents, Mix, make_frame_fn, running_mean
from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.framecache import FrameCache, Progressive
from instrument.mailbox import Frame, Mailbox, Status
from instrument.performance import Coords, Performance
from instrument.recorder import SIDECAR, Recorder, event_to_json

if TYPE_CHECKING:
    from instrument.mapping import Mapping

log = logging.getLogger(__name__)

REST_SECONDS = 0.3  # controls still this long -> refine the frame with the full decoder
PREFETCH_AHEAD = 8  # frames predicted ahead for idle prefetch
PREFETCH_PER_FRAME = 2  # at most this many decoded in one frame's spare time (one decode each)
STATUS_SECONDS = 1 / 240  # the HUD's status at most this often: no display reads it faster
HISTORY_LIMIT = 100_000  # control records kept for a take's pre-roll (~10-20 MB; about an hour of playing)


class Controls:
    """The mapping side of a session in one object: control state, mapping engine, mapping file watcher.

    Live, ``queue`` gets the mapping's exact (never coalesced) controls and the file at ``watch_path`` is
    read again when it is saved. Offline (replay), the mapping comes from the take's text, reloads from its
    log.
    """

    def __init__(self, mapping: Mapping, *, queue: EventQueue | None = None,
                 watch_path: str | Path | None = None) -> None:
        from instrument.control import ControlState
        from instrument.mapping import MappingEngine, MappingWatcher
        from instrument.midi.clock import MidiClock

        self.state = ControlState(clock=MidiClock())
        for name, value in mapping.initial:  # where the mapping says a session starts
            self.state.set(name, value, 0.0)
        self.engine = MappingEngine(mapping, self.state)
        self.queue = queue
        # Watch the file asked for, even when it was broken at the start and ``mapping`` is a fallback.
        self.watcher = MappingWatcher(watch_path) if watch_path else None
        self._exact()

    @property
    def mapping(self) -> Mapping:
        return self.engine.mapping

    @property
    def path(self) -> str:
        return self.mapping.path

    @property
    def name(self) -> str:
        return self.mapping.name or Path(self.mapping.path).name

    def _exact(self) -> None:
        if self.queue is not None:
            self.queue.set_exact_controls(self.engine.exact_controls())

    def apply(self, event: ControlEvent) -> bool:
        """Apply ``event``; True if the mapping used it."""
        return self.engine.apply(event)

    def poll(self) -> tuple[str, str] | None:
        """None, ("mapping", new text) after a good edit, or ("error", message) after a bad one."""
        from instrument.mapping import MappingError

        change = self.watcher.poll() if self.watcher is not None else None
        if change is None:
            return None
        if isinstance(change, MappingError):
            return "error", f"{change} (keeping the last good mapping)"
        self.use(change)
        return "mapping", change.text

    def use(self, mapping: Mapping) -> None:
        """Play on ``mapping`` from now on (values stay where they are)."""
        self.engine.mapping = mapping
        self._exact()

    def use_text(self, text: str, file: str) -> None:
        """Play on the mapping written in ``text`` (a reload logged in a take)."""
        from instrument.mapping import parse_mapping

        mapping, errors = parse_mapping(text, file)
        if errors:
            raise errors[0]
        self.use(mapping)

    def advance(self, t: float) -> None:
        self.state.advance(t)

    def pop_actions(self) -> list[tuple[str, object]]:
        return self.state.pop_actions()

    def values(self, t: float) -> dict[str, Any]:
        """Every parameter's value at ``t`` plus ``tempo`` and ``beat``: what Performance.step reads."""
        values = self.state.snapshot()
        values["beat"] = self.state.beat(t)
        return values

    def describe(self) -> dict[str, Any]:
        """The mapping for a take's sidecar: file, name and the whole text."""
        return {"file": self.mapping.path, "name": self.name, "text": self.mapping.text}

    def keys(self) -> tuple[tuple[str, str], ...]:
        """(key, what it does) for the help overlay."""
        out = []
        for k in self.mapping.keys:
            what = k.label or {
                "set": f"{k.param} = {k.value}",
                "step": f"{k.param} {k.step:+g}" if k.step else f"next {k.param}",
                "ramp": f"{k.param} {k.rate or 0:+g}/s while held",
                "hold": f"{k.param} while held",
                "toggle": f"{k.param} on/off",
            }.get(k.action, k.param)
            out.append((k.key, what))
        return tuple(out)


def to_uint8(pixels: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Pictures [1, 3, H, W] in [0, 1] on any device -> [h, w, 3] uint8 on the host at ``size`` = (w, h).

    Resizes on the device (antialiased), so only the final bytes cross to the host.
    """
    width, height = size
    pixels = pixels.float()
    if pixels.shape[-2:] != (height, width):
        pixels = F.interpolate(pixels, size=(height, width), mode="bilinear", antialias=True)
    out = (pixels[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
    return out.cpu().numpy()


def describe(coords: Coords, names: list[str] | tuple[str, ...] = ()) -> str:
    """Coordinates in words for the HUD."""
    home = names[coords.home] if coords.home < len(names) else str(coords.home)
    text = f"{coords.path} s={coords.s:.3f}  anchor {home}"
    if coords.glide < 1:
        text += f" gliding {coords.glide:.2f}"
    if coords.noise:
        text += f" noise {coords.noise:.2f}"
    if coords.offset:
        text += f" offset ch{coords.offset_channel} {coords.offset:+.2f}"
    if coords.lock_channels or coords.lock_region != "none":
        text += f" lock {coords.lock_channels}ch/{coords.lock_region}"
    return text


def frame_pipeline(fast, out_size: tuple[int, int], config: Config, *, prefetch: bool = True):
    """The speed helper's fixed-shape frame pipeline (``accel.FastDecoder``) for a decoder, used live and by
    ``render`` alike so that both make the same pictures; None for the procedural decoder.
    ``prefetch``: also capture the ``config.prefetch`` batch (the fast decoder's cache filling).

    GPU: compile, CUDA graphs, resize and uint8 on the device (and a ``config.prefetch`` batch pipeline).
    CPU: channels_last and a background decode thread. That thread is a worker the render thread owns: it
    runs only the frames the render thread launches, hands each back through ``collect``, and stops in the
    render thread's ``finally`` (``close``); every other torch call stays in the render thread. MPS: no
    background thread (``accel.default_options``). Built and warmed up in the calling (render) thread.
    """
    if fast.arch == "procedural":
        return None
    frames = make_frame_fn(fast, out_size, config)
    frames.warmup()
    batch = frames.options.prefetch
    if prefetch and batch > 1 and frames.device.type != "cpu":  # capture the batch now, not in mid-play
        frames.decode_batch(torch.zeros(batch, *frames.latent_shape))
    return frames


def full_pipeline(full, out_size: tuple[int, int], config: Config):
    """``frame_pipeline`` for the full decoder (no prefetch batch), or None: without a full decoder, and on a
    CPU, where the full decoder only refines still frames and its plain decode serves."""
    if full is None or full.device.type == "cpu":
        return None
    return frame_pipeline(full, out_size, config, prefetch=False)


@dataclasses.dataclass
class DecodeJob:
    """A frame between ``Decoding.begin`` and ``Decoding.finish``: ``key`` (coords, decoder); ``result``
    (frame, exact) once known; ``frames``: the frame pipeline decoding it meanwhile; ``began``: when it was
    launched (``time.perf_counter``; 0 for a frame from the cache); ``seconds``: after ``finish``, the
    decode's own time, from its launch or the end of the frame queued before it, whichever came later."""

    key: tuple[Coords, str]
    result: tuple[np.ndarray, bool] | None = None
    frames: Any = None
    began: float = 0.0
    seconds: float = 0.0

    @property
    def decoding(self) -> bool:
        """Is the device still on it (``finish`` will wait)?"""
        return self.frames is not None


class Decoding:
    """Coordinates -> picture: the anchors, the decoders and the frame cache. Used live and offline.

    ``anchors``: [N, C, h, w] float32 diffusion latents on the decoders' device. ``out_size`` = (w, h) of the
    frames handed out. ``fast_frames`` and ``full_frames`` (see ``frame_pipeline``) replace the plain decodes.
    ``progressive`` (live, on a CPU): ``frame`` answers at once with a blend while the exact fast frame
    decodes in the background (needs ``fast_frames``). A frame's latent is ``accel.FastLatents`` of its
    coordinates, live and offline: the same function as ``performance.latent_at``, and the same rounding.
    """

    def __init__(self, anchors: torch.Tensor, fast, full, *, out_size: tuple[int, int], seed: int,
                 cache: FrameCache | None = None, fast_frames=None, full_frames=None,
                 progressive: bool = False) -> None:
        self.anchors = anchors
        self.fast = fast
        self.full = full
        self.out_size = out_size
        self.seed = seed
        self.std = fast.family.latent_std
        self.cache = cache if cache is not None else FrameCache()
        self.fast_frames = fast_frames  # latent [C, h, w] -> [h, w, 3] uint8 at out_size (frame_pipeline)
        self.full_frames = full_frames
        self.latents = FastLatents(anchors, seed=seed, std=self.std)
        self.progressive = Progressive(fast_frames, self.cache) if progressive and fast_frames else None
        self.decode_seconds = {"fast": 0.0, "full": 0.0}  # running estimate of one decode, per decoder
        self._decoded_at = 0.0  # when the last decode finished (time.perf_counter)

    @property
    def atlas(self):
        """lab.atlas.Atlas for coordinates in atlas mode (set by lab.live.LiveLab), or None."""
        return self.latents.atlas

    @atlas.setter
    def atlas(self, atlas) -> None:
        self.latents.atlas = atlas

    def latent(self, coords: Coords) -> torch.Tensor:
        """The frame's latent [C, h, w] on the anchors' device."""
        with torch.inference_mode():
            return self.latents(coords)

    def which(self, asked: str) -> str:
        """The decoder that serves a request: "full" when asked for and loaded, else "fast"."""
        return "full" if asked == "full" and self.full is not None else "fast"

    def decoder(self, which: str):
        return self.full if self.which(which) == "full" else self.fast

    def key(self, coords: Coords, which: str) -> tuple[Coords, str]:
        return coords, self.which(which)

    def image(self, coords: Coords, which: str = "fast") -> np.ndarray:
        """The frame at ``coords`` ([h, w, 3] uint8): see ``frame``."""
        return self.frame(coords, which)[0]

    def frame(self, coords: Coords, which: str = "fast") -> tuple[np.ndarray, bool]:
        """(the frame at ``coords`` [h, w, 3] uint8, exact), from the cache or decoded. Progressive: a blend
        (exact False) while the exact frame decodes in the background. Raises NonFiniteDecode."""
        return self.finish(self.begin(coords, which))

    def begin(self, coords: Coords, which: str = "fast") -> DecodeJob:
        """``frame`` in two steps: start it here, get it from ``finish``. Where the decoder's frame pipeline
        is asynchronous (a GPU) the decode runs on the device in between, while the caller does other work
        (but no other decode); else the frame is made here."""
        key = self.key(coords, which)
        if self.progressive is not None and key[1] == "fast":
            return DecodeJob(key, result=self.progressive.frame(key, lambda: self.latent(coords)))
        image = self.cache.get(key)
        if image is not None:
            return DecodeJob(key, result=(image, True))
        source = self.source(coords)
        job = DecodeJob(key, began=time.perf_counter())
        frames = self.fast_frames if key[1] == "fast" else self.full_frames
        if frames is not None and frames.asynchronous:
            frames.launch(source)
            job.frames = frames
        else:
            job.result = (self.picture(source, key[1]), True)
        return job

    def time_left(self, job: DecodeJob) -> float:
        """Seconds until ``job``'s decode is expected to be done (may be < 0), from the device's own time
        per frame (``FastDecoder.device_seconds``): a host-side estimate would count the caller's waits."""
        seconds = getattr(job.frames, "device_seconds", 0.0) or self.decode_seconds[job.key[1]]
        return self._started(job) + seconds - time.perf_counter()

    def _started(self, job: DecodeJob) -> float:
        """When the device started on ``job``: its launch, or the end of the frame queued before it."""
        return max(job.began, self._decoded_at)

    def finish(self, job: DecodeJob) -> tuple[np.ndarray, bool]:
        """The (frame, exact) of a ``begin``: waits for its decode; raises NonFiniteDecode."""
        if not job.began:  # from the cache, or a blend
            return job.result
        image = job.frames.collect() if job.frames is not None else job.result[0]
        job.frames, job.result = None, (image, True)
        done = time.perf_counter()
        job.seconds = done - self._started(job)
        self._decoded_at = done
        which = job.key[1]
        self.decode_seconds[which] = running_mean(self.decode_seconds[which], job.seconds)
        self.cache.put(job.key, image)
        return job.result

    def prefetch(self, coords: list[Coords]) -> None:
        """Decode fast frames ahead into the cache: one batch through the frame pipeline when it has a batch
        pipeline (GPU, ``config.prefetch`` > 1), else one at a time."""
        pipeline = self.fast_frames
        if pipeline is None or pipeline.options.prefetch <= 1 or pipeline.device.type == "cpu" \
                or len(coords) < 2:
            for c in coords:
                self.image(c, "fast")
            return
        with torch.inference_mode():
            latents = torch.stack([self.latent(c) for c in coords])
            images = pipeline.decode_batch(latents)
        for c, image in zip(coords, images, strict=True):
            self.cache.put(self.key(c, "fast"), image.copy())  # (a view would keep the whole batch alive)

    def render(self, coords: Coords, which: str = "fast") -> np.ndarray:
        """Decode ``coords`` without the cache."""
        return self.picture(self.source(coords), which)

    def source(self, coords: Coords) -> torch.Tensor | Mix:
        """What a frame pipeline decodes for ``coords``: the latent's ``accel.Mix`` where FastLatents has one
        (a CUDA graph sums it on the device), else the latent [C, h, w]."""
        with torch.inference_mode():
            mix = self.latents.mix(coords)
        return mix if mix is not None else self.latent(coords)

    def picture(self, latent: torch.Tensor | Mix, which: str = "fast") -> np.ndarray:
        """latent [C, h, w] (or its Mix) -> [h, w, 3] uint8 through the decoder's frame pipeline, else its
        plain decode."""
        ae = self.decoder(which)
        frames = self.fast_frames if ae is self.fast else self.full_frames
        with torch.inference_mode():
            if frames is not None:
                return frames(latent)
            if isinstance(latent, Mix):
                latent = latent.latent()
            return to_uint8(ae.decode(latent[None]), self.out_size)


@dataclasses.dataclass
class _Frame:
    """One frame of the render loop: its controls (read at its time), then its decode and record."""

    n: int
    t: float
    events: list[ControlEvent]
    record_toggles: int  # record on/off presses, run between frames
    controls: dict[str, Any]
    coords: Coords
    begun: bool = False
    resting: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the take, while recording
    job: DecodeJob | None = None
    error: Exception | None = None

    @property
    def which(self) -> str:
        return str(self.controls["decoder"])


class Renderer:
    """The render thread of a live session. ``start``, then ``stop`` and ``join`` (in a ``finally``).

    ``load(say)`` (called in the thread; ``say(text)`` shows progress) returns the session's parts:
    ``(fast, full, anchors [N, C, h, w], anchor names, problems)``; play.py builds it from the Config, tests
    pass their own. ``controls()`` makes the ``Controls`` (in the thread, after loading). ``record`` names a
    folder to record into from the first frame. ``midi_status`` reports MIDI ports for the HUD; ``problems``
    are shown on it from the start. ``config.frames`` and ``config.duration`` end the session by themselves.
    """

    def __init__(
        self,
        config: Config,
        *,
        queue: EventQueue,
        mailbox: Mailbox,
        load: Callable[[Callable[[str], None]], tuple[Any, Any, torch.Tensor, list[str], list[str]]],
        controls: Callable[[], Any],
        record: str | None = None,
        midi_status: Callable[[], dict[str, str]] = dict,
        recorder_factory: Callable[..., Recorder] = Recorder,
        problems: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.queue = queue
        self.mailbox = mailbox
        self._load = load
        self._make_controls = controls
        self._record_first = record
        self.midi_status = midi_status
        self.recorder_factory = recorder_factory
        self.status = Status()
        self.frames = 0  # frames published since playing began
        self.read_ahead = 0  # of them, frames whose controls were read while the one before decoded
        self.recorder: Recorder | None = None
        self.takes: list[Path] = []
        self.failure: BaseException | None = None
        self.finished = False  # the loop ended (stop, quit, limits or failure)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="render", daemon=True)
        self._errors: collections.deque[str] = collections.deque(problems, maxlen=5)
        self._told_unmapped: set[str] = set()  # MIDI ports told of a control the mapping does not use
        # Every applied event, mapping reload and lab record since the start, for a take's pre-roll (replay
        # plays the session from its start to reach the take's state). Bounded: past HISTORY_LIMIT the
        # oldest go, and a take started after that says its re-render may differ (``_trimmed``).
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY_LIMIT)
        self._trimmed = 0  # records dropped from _history and runs from _rendered
        # Frame numbers rendered since the start, as [first, last] runs: a new run for each skipped frame
        # (a decoder slower than the clock), so bounded like _history.
        self._rendered: collections.deque[list[int]] = collections.deque(maxlen=HISTORY_LIMIT)
        self._held: collections.deque[tuple[Any, np.ndarray | None, dict[str, Any]]] = collections.deque()
        self._decoded: collections.deque[tuple[float, int]] = collections.deque()  # (time, exact decodes)
        self._ui = {"hud": True, "help": False, "fullscreen": bool(getattr(config, "fullscreen", False))}
        self._ui_version = 0
        self._repeats = 0
        self._quit = False
        self._message = ""

    # -- the other threads' side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def quit_requested(self) -> bool:
        return self._quit

    # -- the thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._publish_status("loading", "loading the decoder")
            say = lambda text: self._publish_status("loading", text)  # noqa: E731
            fast, full, anchors, names, problems = self._load(say)
            self.anchor_names = list(names)
            for problem in problems:
                self._error(problem)
            self.controls = self._make_controls()
            out_size = self.out_size()
            if fast.device.type != "cpu":
                say(f"preparing the {fast.device.type} decoder (compiling: the first start takes a while)")
            try:
                self._frames_fn = frame_pipeline(fast, out_size, self.config)
            except Exception as exc:  # the plain path works everywhere; say why the fast one is off
                self._frames_fn = None
                self._error(f"accelerated decoding off: {type(exc).__name__}: {exc}")
            try:  # (the status above already says that a GPU start compiles)
                self._full_frames_fn = full_pipeline(full, out_size, self.config)
            except Exception as exc:
                self._full_frames_fn = None
                self._error(f"accelerated full decoding off: {type(exc).__name__}: {exc}")
            cache = FrameCache(int(getattr(self.config, "frame_cache_mb", 256)) * 2**20)
            # A CPU decodes slower than the display: blends in between, exact frames in the background.
            self.decoding = Decoding(anchors, fast, full, out_size=out_size, seed=self.config.seed,
                                     cache=cache, fast_frames=self._frames_fn,
                                     full_frames=self._full_frames_fn, progressive=fast.device.type == "cpu")
            self.performance = Performance(n_anchors=anchors.shape[0],
                                           bank_size=int(getattr(self.config, "bank_size", 0)))
            self.lab = self._make_lab(fast)
            self._message = fast.notice or ""
            self._loop()
        except BaseException as exc:  # the display must say why the picture never came
            self.failure = exc
            log.exception("render thread failed")
            self._publish_status("failed", f"render thread failed: {type(exc).__name__}: {exc}")
        finally:
            self._stop_recording()
            for pipeline in (getattr(self, "_frames_fn", None), getattr(self, "_full_frames_fn", None)):
                if pipeline is not None:
                    pipeline.close()
            self.finished = True

    def out_size(self) -> tuple[int, int]:
        """(w, h) of the frames shown and recorded: ``config.out_size``, else the decode size."""
        out = getattr(self.config, "out_size", "") or ""
        if out:
            from instrument.config import parse_size

            return parse_size(out)
        return tuple(self.config.size)

    def _loop(self) -> None:
        interval = 1.0 / self.config.fps
        self.interval = interval
        self.start_time = time.monotonic()
        self._frames_limit = int(getattr(self.config, "frames", 0) or 0)
        self._end = self.start_time + float(getattr(self.config, "duration", 0.0) or 0.0)
        self._read_ahead_s = float(getattr(self.config, "read_ahead_ms", 0.0) or 0.0) / 1000
        if self._record_first:
            self._start_recording(Path(self._record_first))
        n = 0
        self._last_change = self.start_time  # when the controls last moved the picture
        self._last_coords: Coords | None = None
        controls_before: dict[str, Any] | None = None
        status_due = self.start_time
        ahead: _Frame | None = None  # the next frame, its controls read (maybe queued) while this one decoded
        while not self._stop.is_set():
            if ahead is None:
                if not self._may_start(n):
                    break
                t = self.start_time + n * interval
                wait = t - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                ahead = self._read_controls(n, t)
            frame, ahead = ahead, None
            n, t, coords = frame.n, frame.t, frame.coords
            if not frame.begun:
                self._begin_frame(frame)
            ahead = self._read_ahead(frame)
            shown = self._finish_frame(frame)
            if ahead is not None:  # its controls are read: its number is fixed
                next_n = ahead.n
            else:
                next_n = max(n + 1, math.floor((time.monotonic() - self.start_time) / interval))
            # Spare time before the next frame: refine a still picture, else fill the cache ahead (never
            # while the next frame is on the device: these decode on the same pipelines).
            deadline = self.start_time + next_n * interval
            if ahead is None and frame.resting and shown == "fast":
                self._refine(n, t, coords)
            self.lab.after_frame(coords, frame.resting)
            if ahead is None:
                self._prefetch(frame.controls, controls_before, t, deadline)
            # Faster than the display (a GPU's flat-out loop), building the status every frame costs frames.
            if time.monotonic() >= status_due or self._quit:
                self._publish_status("playing", self._message, coords, frame.controls)
                status_due = time.monotonic() + STATUS_SECONDS
            controls_before = frame.controls
            n = next_n

    def _may_start(self, n: int, in_flight: int = 0) -> bool:
        """May frame ``n`` be made: no quit asked, within ``config.frames`` (counting ``in_flight`` frames
        not yet published) and ``config.duration``?"""
        if self._quit or (self._frames_limit and self.frames + in_flight >= self._frames_limit):
            return False
        return not (self._end > self.start_time and self.start_time + n * self.interval >= self._end)

    def _read_ahead(self, frame: _Frame) -> _Frame | None:
        """The next frame, its controls read (and its decode queued on the device behind ``frame``) while
        ``frame`` decodes, or None: the next frame is made after this one, as at the display rate.

        Only when the loop is behind the clock (the next frame's time has come: a GPU flat out), so that
        the device does not wait for the loop's Python side between frames. The controls are read
        ``config.read_ahead_ms`` before ``frame`` is expected to be done (at once for a decode shorter than
        that), so that they are at most that much older than they would otherwise be. Never while resting
        (the spare time goes to refining); the decode is not queued when the next frame starts or ends a
        take (that happens between frames)."""
        lead, job = self._read_ahead_s, frame.job
        if not lead or job is None or not job.decoding or frame.resting:
            return None
        left = self.decoding.time_left(job)
        if left > lead and self._stop.wait(left - lead):
            return None
        now = time.monotonic()
        n = max(frame.n + 1, math.floor((now - self.start_time) / self.interval))
        t = self.start_time + n * self.interval
        if t > now or not self._may_start(n, in_flight=1):
            return None
        ahead = self._read_controls(n, t)
        self.read_ahead += 1
        if not ahead.record_toggles:
            self._begin_frame(ahead)
        return ahead

    def _read_controls(self, n: int, t: float) -> _Frame:
        """Frame ``n`` at time ``t`` up to its coordinates: events, mapping edits, actions, the lab's step."""
        events, pick, toggles = self._apply_controls(n, t)
        controls = self.controls.values(t)
        coords = self.lab.step(controls, t, pick, n)
        return _Frame(n, t, events, toggles, controls, coords)

    def _apply_controls(self, n: int, t: float) -> tuple[list[ControlEvent], int | None, int]:
        """Drain and apply events, reload the mapping if edited, advance the state to ``t``, run actions;
        returns (events, anchor picked or None, record toggles asked for: the loop runs them)."""
        events = self.queue.drain()
        for event in events:
            try:
                if not self.controls.apply(event):
                    self._unmapped(event)
            except Exception as exc:  # one bad event must not stop the instrument
                self._error(f"event {event.message}: {exc}")
        if events:
            records = [event_to_json(e, n) for e in events]
            self._remember(*records)
            if self.recorder is not None:
                self.recorder.add_events(n, events)
        reload = self.controls.poll()
        if reload is not None:
            kind, payload = reload
            if kind == "error":
                self._error(payload)
            else:
                self._told_unmapped.clear()
                record = {"n": n, "t": t, "mapping": payload, "file": str(self.controls.path)}
                self._remember(record)
                if self.recorder is not None:
                    self.recorder.add_record(record)
                log.info("mapping reloaded: %s", self.controls.path)
        self.controls.advance(t)
        pick = None
        toggles = 0
        for name, value in self.controls.pop_actions():
            if name == "anchor":
                pick = int(value)
            elif name == "record":
                toggles += 1
            elif name == "quit":
                self._quit = True
            elif name in self._ui:
                self._ui[name] = bool(value)
                self._ui_version += 1
        return events, pick, toggles

    def _begin_frame(self, frame: _Frame) -> None:
        """Start ``frame``: record toggles asked for with it, then its decode (``Decoding.begin``);
        ``_finish_frame`` publishes it."""
        frame.begun = True
        for _ in range(frame.record_toggles):  # between frames: a take holds whole frames
            self._toggle_recording()
        n = frame.n
        if self._rendered and self._rendered[-1][1] == n - 1:
            self._rendered[-1][1] = n
        else:
            self._trimmed += len(self._rendered) == self._rendered.maxlen  # the oldest run goes
            self._rendered.append([n, n])
        if frame.events or frame.coords != self._last_coords:
            self._last_change = time.monotonic()
        self._last_coords = frame.coords
        frame.resting = time.monotonic() - self._last_change >= REST_SECONDS
        # The frame's record for a take, built only while recording (Coords.to_json is a measurable share
        # of a GPU loop's frame).
        if self.recorder is not None:
            frame.meta = {"n": frame.n, "t": frame.t, "coords": frame.coords.to_json()}
        try:
            frame.job = self.decoding.begin(frame.coords, frame.which)
        except Exception as exc:
            frame.error = exc

    def _finish_frame(self, frame: _Frame) -> str | None:
        """Publish and record ``frame``; returns which decoder's picture is shown (None: failed).

        The recorder always gets the picture of the chosen decoder (what a re-render at the same settings
        makes); the screen gets the full decoder's refinement instead while the controls rest on it."""
        coords, which, meta = frame.coords, frame.which, frame.meta
        try:
            if frame.error is not None:
                raise frame.error
            image, exact = self.decoding.finish(frame.job)
        except Exception as exc:
            self._error(f"frame failed: {type(exc).__name__}: {exc}")
            self._record(None, None, {**meta, "error": str(exc)})  # the take's clock still ticked
            return None
        shown = self.decoding.key(coords, which)[1]
        screen = image
        refined = self.decoding.key(coords, "full")
        if frame.resting and shown == "fast" and refined[1] == "full" and refined in self.decoding.cache:
            screen, shown = self.decoding.cache.get(refined), "full"
        now = time.monotonic()
        events = frame.events
        latency = now - min(e.time for e in events) if events else None
        self.mailbox.put(Frame(frame.n, frame.t, screen, coords, shown, latency, now))
        self.frames += 1
        self._tick(now, latency)
        # A blend waits in _held for its exact frame if that is decoding now; else it is recorded bare.
        self._record(None if exact else self.decoding.key(coords, which), image if exact else None, meta)
        return shown

    def _record(self, waiting: Any, image: np.ndarray | None, meta: dict[str, Any]) -> None:
        """Hand frame ``meta["n"]`` to the recorder, in frame order: ``image`` (exact), or, for a frame shown
        as a blend, the exact frame of key ``waiting`` once it lands (nothing if it is not being decoded)."""
        if self.recorder is None:
            return
        if not self.recorder.active:
            if self.recorder.error:
                self._error(f"recording stopped: {self.recorder.error}")
                self._stop_recording()
            return
        self._held.append((waiting, image, meta))
        self._release()

    def _release(self, final: bool = False) -> None:
        """Pass held frames on to the recorder, oldest first, as far as their exact frames are known."""
        progressive = self.decoding.progressive
        while self._held:
            waiting, image, meta = self._held[0]
            if waiting is not None:
                image = self.decoding.cache.get(waiting)
                if image is None and not final and progressive is not None and progressive.pending == waiting:
                    return
            self._held.popleft()
            if self.recorder is not None:
                self.recorder.add_frame(image, meta)

    def _refine(self, n: int, t: float, coords: Coords) -> None:
        """Redraw a still frame with the full decoder, if there is one."""
        if self.decoding.full is None:
            return
        try:
            image = self.decoding.image(coords, "full")
        except Exception as exc:
            self._error(f"full decode: {type(exc).__name__}: {exc}")
            return
        self.mailbox.put(Frame(n, t, image, coords, "full", None, time.monotonic()))

    def _prefetch(self, controls: dict[str, Any], before: dict[str, Any] | None, t: float,
                  deadline: float) -> None:
        """Decode the next frames' coordinates ahead while there is time, continuing the controls' motion."""
        # Twice a decode's time must be left before each one: a prefetch that runs late makes the next frame
        # late, and a late frame skips past the frames that were fetched for it.
        budget = self.decoding.decode_seconds["fast"] * 2.0
        if not budget or deadline - time.monotonic() < budget or self.decoding.progressive is not None:
            return  # (progressive: the background decoder is busy with the frames being shown)
        performance = self.performance.copy()
        moving = dict(controls)
        step = 0.0 if before is None else controls["position"] - before["position"]
        ahead = []
        for k in range(1, PREFETCH_AHEAD + 1):
            moving["position"] = min(1.0, max(0.0, controls["position"] + step * k))
            coords = performance.step(moving, t + k * self.interval)
            if self.decoding.key(coords, "fast") not in self.decoding.cache and coords not in ahead:
                ahead.append(coords)
        # A batch of config.prefetch frames through the pipeline's fixed-shape batch (captured at the start,
        # so no recompiling mid-play) when there is time for it; else one frame per check of the clock.
        batch = self._frames_fn.options.prefetch if self._frames_fn is not None else 1
        if batch > 1 and len(ahead) >= 2 and deadline - time.monotonic() >= budget * batch:
            with contextlib.suppress(Exception):  # the frames themselves will report it
                self.decoding.prefetch(ahead[:batch])
            return
        for coords in ahead[:PREFETCH_PER_FRAME]:
            if deadline - time.monotonic() < budget or self._stop.is_set():
                return
            try:
                self.decoding.image(coords, "fast")
            except Exception:
                return  # the frame itself will report it

    # -- recording -----------------------------------------------------------------------------------------

    def _toggle_recording(self) -> None:
        if self.recorder is not None:
            self._stop_recording()
            return
        root = Path(self._record_first) if self._record_first else Path(self.config.record_root)
        if self._record_first:
            folder = root.with_name(f"{root.name}-{len(self.takes) + 1}") if self.takes else root
        else:
            folder = root / time.strftime("take-%Y%m%d-%H%M%S")
        self._start_recording(folder)

    def _start_recording(self, folder: Path) -> None:
        from safetensors.torch import save as save_tensors

        if (folder / SIDECAR).exists():  # never mix two takes in one folder
            base, k = folder, 2
            while (folder := base.with_name(f"{base.name}-{k}")).exists():
                k += 1
            log.warning("%s already holds a take; recording into %s", base, folder)
        anchors = save_tensors({"anchors": self.decoding.anchors.detach().float().cpu().contiguous()},
                               metadata={"names": "\n".join(self.anchor_names)})
        first = self._rendered[-1][1] + 1 if self._rendered else 0
        if self._trimmed:
            self._error(f"this take's pre-roll lacks the session's start ({self._trimmed} control records or "
                        "frame runs): its re-render may differ from what was played")
        sidecar = {
            "format": "latent-instrument take",
            "version": 1,
            "settings": self.config.to_dict(),
            "model": {
                "fast": self.decoding.fast.label,
                "full": self.decoding.full.label if self.decoding.full is not None else None,
                "family": self.decoding.fast.family.name,
                "notice": self.decoding.fast.notice,
            },
            "mapping": self.controls.describe(),
            "anchors": self.anchor_names,
            "clock": {"start": self.start_time, "interval": self.interval, "first_frame": first},
            "preroll_frames": [list(run) for run in self._rendered],
            "preroll_trimmed": self._trimmed,
            "out_size": list(self.decoding.out_size),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.recorder = self.recorder_factory(folder, sidecar, anchors=anchors, preroll=list(self._history))
        self.lab.take_folder = folder
        self.lab.save_take(folder)
        self.recorder.start()
        self.takes.append(folder)
        log.info("recording into %s", folder)

    def _stop_recording(self) -> None:
        if self._held:  # frames still waiting for their exact decode
            try:
                if self.decoding.progressive is not None:
                    self.decoding.progressive.flush()
            except Exception as exc:  # the take must still be closed; those frames go without pictures
                self._error(f"last frame: {type(exc).__name__}: {exc}")
            self._release(final=True)
        recorder, self.recorder = self.recorder, None
        if getattr(self, "lab", None) is not None:
            self.lab.take_folder = None
        if recorder is not None:
            recorder.stop()
            if recorder.error:
                self._error(f"recording stopped: {recorder.error}")
            log.info("recording finished: %s", recorder.status())

    # -- status --------------------------------------------------------------------------------------------

    def _unmapped(self, event: ControlEvent) -> None:
        """Say on the HUD, once per MIDI port and mapping, that a knob, key or pad does nothing here: a
        controller plugged in after a start on the keyboard mapping, or one the mapping does not know."""
        msg = event.message
        kind = getattr(msg, "type", "")
        if kind == "control_change":
            what = f"CC {msg.control}"
        elif kind == "note_on" and msg.velocity:
            what = f"note {msg.note}"
        elif kind == "pitchwheel":
            what = "pitch bend"
        elif kind == "program_change":
            what = f"program {msg.program}"
        else:
            return
        if event.source in self._told_unmapped:
            return
        from instrument.mapping import DEFAULT_MAPPING

        self._told_unmapped.add(event.source)
        hint = "map it with `latent-instrument learn`"
        if Path(self.controls.path).resolve() != Path(DEFAULT_MAPPING).resolve():
            hint = f"play with --mapping FILE (mappings/default.yaml fits any controller) or {hint}"
        self._error(f"{event.source}: {what} (channel {msg.channel + 1}) does nothing in "
                    f"{self.controls.name}; {hint}", level=logging.WARNING)

    def _error(self, text: str, level: int = logging.ERROR) -> None:
        # The same failure frame after frame is logged once (and counted), not thirty times a second.
        if self._errors and self._errors[-1].split(" (x")[0] == text:
            self._repeats += 1
            self._errors[-1] = f"{text} (x{self._repeats + 1})"
            return
        log.log(level, "%s", text)
        self._repeats = 0
        self._errors.append(text)

    def _tick(self, now: float, latency: float | None) -> None:
        last = getattr(self, "_last_publish", None)
        self._last_publish = now
        if last is not None and now > last:
            # Average the intervals, not the rates: a burst of cached frames must not read as 200 fps.
            step = getattr(self, "_step", None)
            self._step = now - last if step is None else 0.9 * step + 0.1 * (now - last)
            self._fps = 1 / self._step
        if latency is not None:
            self._latency = latency

    def _make_lab(self, fast):
        """The lab's side of the session (atlas, pacing, stretch: instrument.lab.live)."""
        from instrument.lab.live import LiveLab

        lab = LiveLab(self.performance, self.decoding, self.anchor_names, decode=fast.decode,
                      log_record=self._log_record, error=self._error, seed=self.config.seed)
        if getattr(self.config, "atlas", ""):
            lab.load_atlas(self.config.atlas)
        return lab

    def _log_record(self, record: dict[str, Any]) -> None:
        """A record for the control stream beside the events (what replay needs to agree)."""
        self._remember(record)
        if self.recorder is not None:
            self.recorder.add_record(record)

    def _remember(self, *records: dict[str, Any]) -> None:
        """Keep control records for a later take's pre-roll (the oldest go past HISTORY_LIMIT)."""
        self._trimmed += max(0, len(self._history) + len(records) - HISTORY_LIMIT)
        self._history.extend(records)

    def _exact_fps(self, now: float) -> float | None:
        """Exact decodes per second over the last two seconds, when blends fill in between; else None."""
        progressive = getattr(getattr(self, "decoding", None), "progressive", None)
        if progressive is None:
            return None
        self._decoded.append((now, progressive.decoded))
        while len(self._decoded) > 2 and now - self._decoded[1][0] >= 2.0:
            self._decoded.popleft()
        (t0, d0), (t1, d1) = self._decoded[0], self._decoded[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def _publish_status(self, phase: str, message: str, coords: Coords | None = None,
                        values: dict[str, Any] | None = None) -> None:
        decoding = getattr(self, "decoding", None)
        lab = getattr(self, "lab", None)
        lab_lines, minimap = lab.hud(coords, values) if lab is not None else ((), None)
        controls = getattr(self, "controls", None)
        recording = self.recorder.status() if self.recorder is not None else None
        self.status = Status(
            phase=phase,
            message=message,
            decoder=decoding.fast.label if decoding else "",
            full_decoder=decoding.full.label if decoding and decoding.full is not None else None,
            mapping=controls.name if controls is not None else "",
            anchors=tuple(getattr(self, "anchor_names", ())),
            frames=self.frames,
            render_fps=getattr(self, "_fps", 0.0),  # from _tick
            exact_fps=self._exact_fps(time.monotonic()),
            latency=getattr(self, "_latency", None),
            where=describe(coords, getattr(self, "anchor_names", ())) if coords is not None else "",
            recording=recording,
            midi=tuple(self.midi_status().items()),
            errors=tuple(self._errors),
            keys=controls.keys() if controls is not None else (),
            ui=tuple(self._ui.items()),
            ui_version=self._ui_version,
            quit=self._quit,
            lab=lab_lines,
            minimap=minimap,
        )
