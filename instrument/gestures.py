"""Gesture loops: knob moves recorded for N beats and played round and round on the beat clock.

While ``gesture_record`` is on, each move of a continuous parameter by a control is written into that
parameter's loop, at its place in the loop (the beat, modulo the loop's length in beats). While a parameter
is not being recorded its loop plays: every frame the parameter is set to the loop's value at the current
beat, on straight lines between the recorded points. Recording over a loop (overdub) replaces only the
stretch the knob moved through; the loops of parameters not touched meanwhile play on. ``gesture_clear``
forgets every loop. Loops follow ``ControlState.beat`` (the MIDI clock while it runs, else the tempo), so
they stay with the music when its tempo changes. Pure data driven by the control state: a take holds the
loops in its snapshot and the moves that made them in its events, so it re-renders exactly.
"""

from __future__ import annotations

import bisect
import dataclasses

HOLD_GAP = 0.125  # beats: a knob still for longer than this held its value (no slope across the gap)
MAX_POINTS = 4096  # per loop: a flood of moves thins out instead of growing without end


@dataclasses.dataclass
class Loop:
    """One parameter's loop: ``beats`` long, ``points`` (place in beats, value) by place."""

    beats: int
    points: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def at(self, beat: float) -> float:
        """The value at ``beat`` (any beat: the loop repeats), between the points on either side."""
        pts = self.points
        pos = beat % self.beats
        i = bisect.bisect_right(pts, (pos, float("inf")))
        (x0, y0), (x1, y1) = pts[i - 1], pts[i % len(pts)]  # (i - 1 = -1 and i = len wrap round)
        span = (x1 - x0) % self.beats
        return y0 if span <= 0 else y0 + (y1 - y0) * (((pos - x0) % self.beats) / span)

    def erase(self, start: float, length: float) -> None:
        """Forget the points from ``start`` (excluded) over ``length`` beats (round the end)."""
        if length >= self.beats:
            self.points.clear()
            return
        end = (start + length) % self.beats
        inside = (lambda x: start < x <= end) if start <= end else (lambda x: x > start or x <= end)
        self.points[:] = [p for p in self.points if not inside(p[0])]

    def put(self, pos: float, value: float) -> None:
        i = bisect.bisect_left(self.points, (pos, float("-inf")))
        if i < len(self.points) and self.points[i][0] == pos:
            self.points[i] = (pos, value)
        else:
            self.points.insert(i, (pos, value))
        if len(self.points) > MAX_POINTS:
            del self.points[::2]


class GestureLoops:
    """Every parameter's loop, and which parameters the current recording pass has touched."""

    def __init__(self) -> None:
        self.loops: dict[str, Loop] = {}
        self.touched: dict[str, tuple[float, float]] = {}  # param -> (beat, value) last written this pass

    def capture(self, name: str, value: float, beat: float, beats: int) -> None:
        """A control moved ``name`` to ``value`` at ``beat`` while recording: a new loop is ``beats`` long."""
        loop = self.loops.setdefault(name, Loop(max(1, int(beats))))
        pos = beat % loop.beats
        last = self.touched.get(name)
        if last is not None and beat > last[0]:
            gap = beat - last[0]
            loop.erase(last[0] % loop.beats, gap)
            if gap > HOLD_GAP and gap < loop.beats:  # held still, then moved: a step, not a slope
                loop.put((pos - 1e-6) % loop.beats, last[1])
        loop.put(pos, float(value))
        self.touched[name] = (beat, float(value))

    def end_pass(self) -> None:
        """Recording stopped: every loop plays, the ones just written too."""
        self.touched.clear()

    def clear(self) -> None:
        self.loops.clear()
        self.touched.clear()

    def values(self, beat: float) -> dict[str, float]:
        """Each playing loop's value at ``beat`` (loops being recorded over are left to the hand)."""
        return {name: loop.at(beat) for name, loop in self.loops.items()
                if loop.points and name not in self.touched}

    def line(self) -> str:
        """The loops in words, for the HUD: ``loops: noise (4 beats), offset (8 beats)``."""
        if not self.loops:
            return ""
        return "loops: " + ", ".join(f"{name} ({loop.beats} beats)" for name, loop in self.loops.items())
