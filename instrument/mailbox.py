"""The one-slot hand-off from the render thread to the display: the newest finished frame, nothing older.

A queue of frames would be latency: the display would show what the performer did a few frames ago. The
render thread ``put``s every finished frame, replacing whatever the display has not picked up yet; the
display takes ``latest`` at its own rate and never waits for the decoder. A frame replaced unseen hands its
control times on to the frame that replaces it (which shows those controls too), so that the display can
time control -> screen for every control event.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One finished picture and where it came from."""

    index: int  # n on the session's time grid: the frame shown at start + n * interval
    time: float  # that frame time, time.monotonic() seconds
    image: np.ndarray  # [H, W, 3] uint8 RGB, C-contiguous
    coords: Any = None  # performance.Coords the latent was made from (None for loading/error screens)
    decoder: str = "fast"  # "fast", or "full" for a progressive-refinement frame
    latency: float | None = None  # seconds from the oldest control event applied in it to its publication
    published: float = field(default_factory=time.monotonic)
    # When the oldest control event whose effect this frame's coordinates are the first to show arrived
    # (time.monotonic(); None: no new control): the display times control -> screen from it, to the first
    # exact frame it shows from then on.
    controls_time: float | None = None
    exact: bool = True  # False for a blend of nearby decoded frames (framecache.Progressive)


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class Mailbox:
    """Holds at most one frame. ``put`` never blocks for long; ``latest`` returns a frame once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seq = 0  # how many frames were ever put; lets readers tell new from already seen
        self.replaced = 0  # frames overwritten before anyone read them (the display was slower)
        self._taken_seq = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            old = self._frame
            if self._seq > self._taken_seq and old is not None:
                self.replaced += 1
                if old.controls_time is not None:
                    frame = replace(frame, controls_time=_earliest(old.controls_time, frame.controls_time))
            self._frame = frame
            self._seq += 1
            self._cond.notify_all()

    def latest(self) -> Frame | None:
        """The newest frame if one arrived since the last call, else None."""
        with self._cond:
            if self._seq == self._taken_seq:
                return None
            self._taken_seq = self._seq
            return self._frame

    def peek(self) -> Frame | None:
        """The newest frame, seen or not (None before the first)."""
        with self._cond:
            return self._frame

    @property
    def count(self) -> int:
        """How many frames were put so far."""
        return self._seq

    def wait(self, count: int, timeout: float) -> bool:
        """Block until more than ``count`` frames were put in total, or ``timeout`` seconds pass."""
        with self._cond:
            return self._cond.wait_for(lambda: self._seq > count, timeout)


@dataclass(frozen=True)
class Status:
    """The render thread's report for the HUD and the log. Replaced whole, never changed: no lock needed."""

    phase: str = "starting"  # starting, loading, playing, stopped, failed
    message: str = ""  # what is happening now (loading steps) or why the model is a fallback
    decoder: str = ""  # the fast decoder's label
    full_decoder: str | None = None  # the full decoder's label, None when there is none
    mapping: str = ""  # the mapping's name, and why it plays or that its file is broken
    anchors: tuple[str, ...] = ()
    frames: int = 0  # frames rendered since playing began
    render_fps: float = 0.0  # frames published per second (blends included)
    exact_fps: float | None = None  # exact decodes per second when blends fill in between (slow device)
    where: str = ""  # where the picture is, in words ("slerp: at pastry", "gliding to dog (40%)")
    recording: str | None = None  # the recorder's status line, None when not recording
    midi: tuple[tuple[str, str], ...] = ()  # (port, state)
    errors: tuple[str, ...] = ()  # recent errors, newest last (each leaves the HUD after a while)
    notices: tuple[str, ...] = ()  # confirmations ("mapping reloaded"), for a few seconds
    moved: str = ""  # the last control moved and the value it set, for a few seconds after it moved
    frozen: bool = False  # the picture is frozen (the freeze control)
    keys: tuple[tuple[str, str], ...] = ()  # (key, what it does) from the mapping, for the help overlay
    midi_help: tuple[tuple[str, str], ...] = ()  # (MIDI control, what it does) from the mapping, for help
    ui: tuple[tuple[str, bool], ...] = ()  # hud, help, fullscreen as the controls set them
    ui_version: int = 0  # changes when the controls change `ui`
    quit: bool = False  # the controls asked to stop
    lab: tuple[str, ...] = ()  # atlas, pacing, bank and stretch lines (instrument.lab.live)
    minimap: np.ndarray | None = None  # [160, 160, 3] uint8 atlas map with the cursor, in atlas mode
    sculpt: str = ""  # what the screen shows of the sculpt stage ("sculpted: ...", "unsculpted, sculpting…")
    steps: tuple[np.ndarray, ...] = ()  # [h, w, 3] uint8 thumbnails of each sculpt step's picture, 1 first
    step_shown: int = 0  # which of ``steps`` is on screen (1-based; 0: none)
    scenes: str = ""  # the stored scenes (from 1, the last recalled in brackets) and gesture loops, in words
