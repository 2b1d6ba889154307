"""The control replay of a take, computed once into the list of frames to draw.

``make_plan`` steps the take's control stream (``replay.Replay``) through every tick of its timeline and
keeps the coordinates of the ticks that are drawn. The replay is exact and cheap (no decoding), so every
process of a render computes the same plan from the same files; ``Plan.digest`` lets them check that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from instrument.performance import Coords
from instrument.recorder import frame_name


@dataclass(frozen=True)
class PlannedFrame:
    """One frame of the render: output number ``k`` (``frame_{k:06d}.png``), its frame ``n`` on the take's
    grid (-1 on a new grid), its time ``t`` (seconds, the take's clock), its coordinates, its sculpt
    (a ``loop.sculpting.View``; None: unsculpted) and its brightness in [0, 1] as the screen showed it
    (``loop.output``, with ``render --master``; None: as recorded)."""

    k: int
    n: int
    t: float
    coords: Coords
    view: Any = None
    level: float | None = None

    @property
    def file(self) -> str:
        return frame_name(self.k)

    def record(self) -> dict[str, Any]:
        """Its line in the render's ``frames.jsonl``."""
        record = {"n": self.n, "t": self.t, "coords": self.coords.to_json(), "file": self.file}
        if self.view is not None:
            record["sculpt"] = self.view.to_json()
        if self.level is not None:
            record["level"] = self.level
        return record


@dataclass
class Plan:
    """Every frame of the render, in order; how many of the played ones differ from what was played before
    any stall (0 at the take's own frame rate), and after one (an event the live loop applied late, put
    back at its own time)."""

    frames: list[PlannedFrame]
    mismatches: int
    after_stall: int = 0

    def lines(self) -> str:
        """The render's ``frames.jsonl``."""
        return "".join(json.dumps(frame.record()) + "\n" for frame in self.frames)

    def digest(self) -> str:
        """A short hash of every frame's number, time and coordinates."""
        return hashlib.sha256(self.lines().encode()).hexdigest()[:16]


def make_plan(replay: Any, ticks: Iterable[Any],
              sculpt: Callable[[dict[str, Any], Coords], Any] = lambda values, coords: None,
              level: Callable[[dict[str, Any], float], float] | None = None) -> Plan:
    """Step ``replay`` (a ``replay.Replay``) through ``ticks`` (``replay.timeline``): every tick's records
    are applied in order, and each drawn tick's coordinates kept, with its sculpt ``sculpt(control values,
    coords)`` and brightness ``level(control values, t)`` (an ``Output.level``, fed in frame order: the
    blackout fade has a memory, so it is planned here and not where the frames are shared out). A frame
    the live loop skipped and nothing happened in is glimpsed (stepped on copies of the state), so that
    the played frames step as they did."""
    frames: list[PlannedFrame] = []
    mismatches = after_stall = 0
    stalled = False
    for tick in ticks:
        skipped = tick.draw and tick.coords is None and not tick.records and tick.n >= 0
        coords = replay.glimpse(tick) if skipped else replay.coords(tick)
        if not tick.draw:
            continue
        stalled = stalled or tick.moved
        if tick.coords is not None and Coords.from_json(tick.coords) != coords:
            after_stall += stalled
            mismatches += not stalled
        shown = level(replay.values, tick.t) if level is not None else None
        frames.append(PlannedFrame(len(frames), tick.n, tick.t, coords, sculpt(replay.values, coords), shown))
    return Plan(frames, mismatches, after_stall)
