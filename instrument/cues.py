"""Cues on the beat: tap tempo, and actions held until the next beat or bar (``quantise``).

``tap_tempo`` turns tap times into a tempo. ``Cues`` keeps the recent taps and the quantised actions
waiting for their beat, for ``control.ControlState``, which counts the beats (the MIDI clock's, or its own
at the tempo) and carries the actions out. Pure data in the state's snapshot, so a take re-renders them.
"""

from __future__ import annotations

import math

QUANTISED = frozenset({"anchor", "next", "scene_recall"})  # what ``quantise`` holds back
QUANTISE_GRACE = 0.1  # beats: a press this late after a beat still lands on it
TAP_RESET = 2.0  # seconds without a tap: the next tap starts a new count
TAPS_KEPT = 8
BEATS = {"beat": 1.0, "bar": 4.0}  # ``quantise`` -> beats between the moments an action may land on


def tap_tempo(taps: list[float], time: float) -> float | None:
    """Add a tap at ``time`` (seconds) to ``taps`` (the recent ones, changed in place: a pause over
    TAP_RESET starts again); from the fourth tap on, the tempo they beat in BPM (from the median interval),
    else None."""
    if taps and not 0.0 < time - taps[-1] <= TAP_RESET:
        taps.clear()
    taps.append(time)
    del taps[:-TAPS_KEPT]
    if len(taps) < 4:
        return None
    gaps = sorted(b - a for a, b in zip(taps, taps[1:], strict=False))
    return 60.0 / gaps[len(gaps) // 2]


class Cues:
    """Recent taps, and the actions waiting for a beat: (beat due, beats between landings, name, value,
    source)."""

    def __init__(self) -> None:
        self.taps: list[float] = []
        self.waiting: list[tuple[float, float, str, object, str | None]] = []
        self.last_beat = 0.0  # the beat count when last asked (``ready``): a jump back re-aims the waiting

    def hold(self, name: str, value: object, source: str | None, beat: float, quantise: str) -> bool:
        """Hold the action ``name`` (to ``value``) until the next beat or bar after ``beat`` when
        ``quantise`` says so and it is one that waits; returns whether it was held."""
        unit = BEATS.get(quantise)
        if unit is None or name not in QUANTISED:
            return False
        due = math.ceil((beat - QUANTISE_GRACE) / unit) * unit
        self.waiting.append((due, unit, name, value, source))
        return True

    def ready(self, beat: float) -> list[tuple[str, object, str | None]]:
        """The held actions whose beat has come at ``beat``, in the order they were held. When the count
        went back (a MIDI clock started again), the rest wait for the next beat or bar of the new count."""
        if beat < self.last_beat - 1e-9:
            self.waiting = [(math.ceil(beat / unit - 1e-9) * unit, unit, *rest)
                            for _, unit, *rest in self.waiting]  # type: ignore[misc]
        self.last_beat = beat
        now = [w for w in self.waiting if w[0] <= beat + 1e-9]
        self.waiting = [w for w in self.waiting if w[0] > beat + 1e-9]
        return [(name, value, source) for _, _, name, value, source in now]
