"""The render thread: controls in, frames out. It owns every torch call of a live session.

Frame ``n`` is made for the time ``t = start + n * interval`` by the stages of ``instrument.loop``:
controls (events through the mapping) -> performance (``LiveLab.step``: the frame's coordinates) -> decode
(``Decoding.begin``/``finish``: cache, or latent and decode on the device, resized there, one copy to the
host as uint8) -> publish (the one-slot mailbox; the take). A frame that is late is not made up: the next
frame is the newest grid time that has passed, so the picture stays current on a slow machine.

When the loop is behind its clock (a GPU flat out), the next frame's controls are read and its decode queued
while the current frame decodes, up to ``config.read_ahead_ms`` before it is expected done, so that the
device never waits for the loop's Python side (``_read_ahead``). Time left before the next frame goes to the
full decoder's redraw of a still picture (``loop.refine``: in the background, dropped when the controls move)
and to prefetch. An error in a frame is shown and logged; the loop goes on and the display keeps the last
good frame. On a CPU the exact frames decode in the background and the frames in between are blends of the
nearest exact ones (``framecache.Progressive``); a take records exact frames only.

``Renderer.start`` runs it in a thread; ``prepare`` then ``step``/``run_frames`` run it without one (tests,
bench), with a ``loop.clock.SteppedClock`` when frames should not wait for their time.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instrument.config import Config
from instrument.errors import UserError
from instrument.events import EventQueue
from instrument.loop.clock import Clock, WallClock
from instrument.loop.controls import Controls, FrameInput
from instrument.loop.decoding import DecodeJob, Decoding
from instrument.loop.output import Output
from instrument.loop.parts import Factories, Parts, build_parts
from instrument.loop.prefetch import prefetch
from instrument.loop.sculpting import redraws
from instrument.loop.status import ControlTimes, StatusBoard, session_status
from instrument.mailbox import Frame, Mailbox, Status
from instrument.performance import Coords
from instrument.recorder import Recorder

log = logging.getLogger(__name__)

REST_SECONDS = 0.3  # controls still this long -> the full decoder redraws the frame
STATUS_SECONDS = 1 / 240  # the HUD's status at most this often: no display reads it faster
TAKE_GRACE_SECONDS = 30.0  # at the end, how long the takes' writers may take to finish


@dataclasses.dataclass
class _Frame:
    """One frame of the loop: its controls (read at its time), then its decode and record."""

    input: FrameInput
    coords: Coords
    view: Any = None  # loop.sculpting.View: the frame's sculpt (None: unsculpted)
    begun: bool = False
    resting: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the take, while recording
    job: DecodeJob | None = None
    error: Exception | None = None

    @property
    def n(self) -> int:
        return self.input.n

    @property
    def which(self) -> str:
        return str(self.input.values["decoder"])


@dataclasses.dataclass
class _Cursor:
    """Where the loop is between two steps."""

    n: int = 0
    ahead: _Frame | None = None  # the next frame, its controls read (maybe queued) while one decoded
    before: dict[str, Any] | None = None  # the last frame's control values (prefetch continues them)
    status_due: float = 0.0
    last_change: float = 0.0  # when the controls last moved the picture
    last_coords: Coords | None = None


class Renderer:
    """The render loop of a live session: ``start``, then ``stop`` and ``join`` (in a ``finally``). Its stages
    are built from ``load``, ``controls`` and the other ``loop.parts.Factories``; ``midi_status`` reports the
    ports for the HUD; ``config.frames`` and ``config.duration`` end the session; ``clock`` gives its time."""

    def __init__(self, config: Config, *, queue: EventQueue, mailbox: Mailbox,
                 load: Callable[[Callable[[str], None]], tuple], controls: Callable[[], Controls],
                 midi_status: Callable[[], dict[str, str]] = dict, problems: Sequence[str] = (),
                 clock: Clock | None = None, **factories: Any) -> None:
        self.config = config
        self.queue = queue
        self.mailbox = mailbox
        self.clock = clock or WallClock()
        self.midi_status = midi_status
        self.factories = Factories(load=load, controls=controls, **factories)
        self.board = StatusBoard(problems, clock=self.clock.now, fullscreen=bool(config.fullscreen))
        self.status = Status()
        self.parts: Parts | None = None
        self.interval = 1.0 / config.fps
        self.start_time = 0.0
        self.frames = 0  # frames published since playing began
        self.read_ahead = 0  # of them, frames whose controls were read while the one before decoded
        self.failure: BaseException | None = None
        self.finished = False  # the loop ended (stop, quit, limits or failure)
        self.written = False  # it ended and its takes are finished: only decodes in flight are left
        self._cursor = _Cursor()
        self.output = Output()  # master and blackout: on what is shown, never on the take
        self._quit = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="render", daemon=True)

    # -- the other threads' side -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def takes(self) -> list[Path]:
        return self.parts.takes.takes if self.parts is not None else []

    @property
    def recorder(self) -> Recorder | None:  # the take being recorded
        return self.parts.takes.recorder if self.parts is not None else None

    @property
    def decoding(self) -> Decoding | None:
        return self.parts.decoding if self.parts is not None else None

    # -- running ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.prepare()
            while self.step():
                pass
        except BaseException as exc:  # the display must say why the picture never came
            self.failure = exc
            log.exception("render thread failed")  # (a UserError's message only, unless --debug)
            told = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            self._publish("failed", f"render thread failed: {told}")
        finally:
            self.close()

    def prepare(self) -> None:
        """Load the decoders and anchors and build the stages (in the thread that will step)."""
        self._publish("loading", "loading the decoder")
        say = lambda text: self._publish("loading", text)  # noqa: E731
        self.parts = build_parts(self.config, self.factories, self.board, interval=self.interval, say=say)
        self.start_time = self.parts.takes.start = self.clock.now()  # the frame grid starts now
        self._times = ControlTimes(self.start_time)
        self._cursor = _Cursor(status_due=self.start_time, last_change=self.start_time)
        if self.factories.record:
            self.parts.takes.begin(Path(self.factories.record))

    def close(self) -> None:
        """End the session (its takes' writers get ``TAKE_GRACE_SECONDS``)."""
        try:
            if self.parts is not None:
                self.parts.close(TAKE_GRACE_SECONDS)
        finally:
            self.written = True
            self.finished = True

    def run_frames(self, count: int) -> int:
        """Step up to ``count`` frames (fewer when the session ends); returns how many were stepped."""
        done = 0
        while done < count and self.step():
            done += 1
        return done

    def step(self) -> bool:
        """Make one frame: wait for its time, read, decode, publish, use the spare time. False when the
        session is over (stop, quit, ``config.frames`` or ``config.duration``)."""
        c = self._cursor
        if self._stop.is_set():
            return False
        if c.ahead is None:
            if not self._may_start(c.n):
                return False
            t = self.start_time + c.n * self.interval
            if not self.clock.sleep_until(t, self._stop):
                return False
            c.ahead = self._read(c.n, t)
        frame, c.ahead = c.ahead, None
        if not frame.begun:
            self._begin(frame)
        c.ahead = self._read_ahead(frame)
        shown = self._finish(frame)
        next_n = c.ahead.n if c.ahead is not None else self._newest(frame.n + 1)
        self._spare_time(frame, shown, self.start_time + next_n * self.interval)
        if self.clock.now() >= c.status_due or self._quit:
            self._publish("playing", self.parts.notice, frame.coords, frame.input.values)
            c.status_due = self.clock.now() + STATUS_SECONDS
        c.before, c.n = frame.input.values, next_n
        return True

    def _newest(self, first: int) -> int:
        """The newest frame whose time has passed, at least ``first`` (a late frame is not made up)."""
        return max(first, math.floor((self.clock.now() - self.start_time) / self.interval))

    def _may_start(self, n: int, in_flight: int = 0) -> bool:
        """May frame ``n`` be made: no quit asked, within ``config.frames`` (counting ``in_flight`` frames
        not yet published) and ``config.duration``?"""
        limit, duration = self.config.frames, self.config.duration
        if self._quit or (limit and self.frames + in_flight >= limit):
            return False
        return not (duration > 0 and n * self.interval >= duration)

    # -- one frame -------------------------------------------------------------------------------------------

    def _read(self, n: int, t: float) -> _Frame:
        """Frame ``n`` up to its coordinates: the controls stage, then the performance stage."""
        parts = self.parts
        inp = parts.controls.read(n, t)
        parts.log_input(inp, self.board)
        self._quit = self._quit or inp.quit
        self.board.follow_ui(inp.ui)
        try:
            coords = parts.lab.step(inp.values, t, inp.pick, n)
        except Exception as exc:  # the picture stays where it was; the performer sees why
            if self._cursor.last_coords is None:
                raise
            self.board.error(f"frame {n}: {type(exc).__name__}: {exc}")
            coords = self._cursor.last_coords
        return _Frame(inp, coords, parts.sculpting.view(inp.values, coords) if parts.sculpting else None)

    def _read_ahead(self, frame: _Frame) -> _Frame | None:
        """The next frame, read (and its decode queued behind ``frame``'s) ``config.read_ahead_ms`` before
        ``frame`` is expected done, when the loop is behind its clock; else None. Never while resting (the
        spare time goes to the redraw); not queued when it starts or ends a take (between frames only)."""
        lead, job = self.config.read_ahead_ms / 1000, frame.job
        if not lead or job is None or not job.decoding or frame.resting:
            return None
        left = self.parts.decoding.time_left(job)
        if left > lead and self._stop.wait(left - lead):  # (the device's time: a wall-clock wait)
            return None
        n = self._newest(frame.n + 1)
        t = self.start_time + n * self.interval
        if t > self.clock.now() or not self._may_start(n, in_flight=1):
            return None
        ahead = self._read(n, t)
        self.read_ahead += 1
        if not ahead.input.record_toggles:
            self._begin(ahead)
        return ahead

    def _begin(self, frame: _Frame) -> None:
        """Record toggles asked for with ``frame`` (a take holds whole frames), then start its decode."""
        parts, c = self.parts, self._cursor
        frame.begun = True
        for _ in range(frame.input.record_toggles):
            parts.takes.toggle(frame.n, frame.coords)
        now = self.clock.now()
        if frame.input.events or frame.coords != c.last_coords:
            c.last_change = now
        c.last_coords = frame.coords
        frame.resting = now - c.last_change >= REST_SECONDS
        if parts.takes.recording:  # (Coords.to_json is a measurable share of a GPU loop's frame)
            frame.meta = {"n": frame.n, "t": frame.input.t, "coords": frame.coords.to_json()}
            if frame.view is not None:
                frame.meta["sculpt"] = frame.view.to_json()
        try:
            frame.job = parts.decoding.begin(frame.coords, frame.which, frame.view)
        except Exception as exc:
            frame.error = exc

    def _finish(self, frame: _Frame) -> str | None:
        """Publish and record ``frame``; returns which decoder's picture is shown (None: failed). The take
        gets the chosen decoder's picture (what a re-render at the same settings makes). A picture of an
        earlier frame's coordinates (the sculpt stage's stream batch) is published with those, and its line
        in the take says so (``shown``)."""
        decoding, takes = self.parts.decoding, self.parts.takes
        try:
            if frame.error is not None:
                raise frame.error
            image, exact = decoding.finish(frame.job)
        except Exception as exc:
            self.board.error(f"frame failed: {type(exc).__name__}: {exc}")
            takes.record(None, None, {**frame.meta, "error": str(exc)})  # the take's clock still ticked
            return None
        coords = frame.job.key[0]
        if coords != frame.coords and frame.meta:
            frame.meta["shown"] = {"coords": coords.to_json(), "sculpt": frame.job.key[2].to_json()}
        screen, shown = decoding.on_screen(coords, frame.which, image, frame.resting and frame.view is None)
        screen = self.output(screen, frame.input.values, frame.input.t)
        now = self.clock.now()
        timing = self._times.frame(frame.input.events, coords, exact or shown == "full", now)
        self.mailbox.put(Frame(frame.n, frame.input.t, screen, coords, shown, published=now, **timing))
        self.frames += 1
        self.board.tick(now)
        # A blend waits in the take for its exact frame if that is decoding now; else it is recorded bare.
        takes.record(None if exact else decoding.key(coords, frame.which), image if exact else None,
                     frame.meta)
        return shown

    def _spare_time(self, frame: _Frame, shown: str | None, deadline: float) -> None:
        """Before the next frame: the full decoder's redraw or the sculpted frame of a still picture, the
        lab, prefetch (never while the next frame is on the device: these decode on the same pipelines)."""
        parts, c = self.parts, self._cursor
        parts.takes.poll()
        self.board.drops(parts.controls.drops(), self.clock.now())
        for image, by in redraws(parts, frame, shown, c.ahead is None, self.board.error):
            image = self.output(image, frame.input.values, frame.input.t)
            self.mailbox.put(Frame(frame.n, frame.input.t, image, frame.coords, by, None, self.clock.now()))
        parts.lab.after_frame(frame.coords, frame.resting)
        parts.feedback.after_frame(parts.controls, frame.coords, self.status, frame.input.t)
        if c.ahead is None and frame.view is None:
            prefetch(parts.decoding, parts.lab.performance, frame.input.values, c.before, frame.input.t,
                     self.interval, deadline, self.clock.now, self._stop)

    # -- status ----------------------------------------------------------------------------------------------

    def _publish(self, phase: str, message: str, coords: Coords | None = None,
                 values: dict[str, Any] | None = None) -> None:
        known = {"frames": self.frames, "midi": tuple(self.midi_status().items()), "quit": self._quit}
        self.status = self.board.build(phase, message, **known) if self.parts is None else session_status(
            self.board, self.parts, phase, message, coords, values, self.clock.now(), **known)
