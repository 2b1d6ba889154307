"""What the player moved: MIDI learn's detection of one control among the messages that arrive.

``Detector`` watches control events and says which control moved: a CC (absolute, or a relative encoder
recognised by its values clustering around 1/127, 63/65 or 1/65), a 14-bit pair (CC n and n + 32 moving
together), an NRPN, pitch bend, aftertouch, a note or a program change. A control that only wobbles by a
step or two (a worn pot, a fader resting between values) is jitter and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido

from instrument.events import ControlEvent
from instrument.mapping.model import Control

SETTLE = 0.3  # seconds of movement to watch before deciding what a CC is
WINDOW = 2.0  # events older than this are forgotten (an old wobble does not add up with a new one)
JITTER = 2  # a CC whose values stay within this many steps is jitter

_TWOS = set(range(1, 16)) | set(range(113, 128))
_OFFSET = set(range(49, 80)) - {64}
_SIGN = set(range(1, 16)) | set(range(65, 80))


@dataclass(frozen=True)
class Detected:
    """A control the player moved: ``source`` and numbers as in ``Control``; ``relative`` for encoders."""

    source: str
    number: int | None = None
    lsb: int | None = None
    channel: int | None = None
    relative: str | None = None

    def describe(self) -> str:
        kind = f" ({self.relative} encoder)" if self.relative else ""
        return Control(self.source, "position", self.number, self.lsb, self.channel).describe() + kind


def classify_cc(values: list[int]) -> str | None:
    """What a run of one CC's values looks like: "absolute", a relative mode, or None (jitter, too few)."""
    if not values:
        return None
    distinct = set(values)
    repeats = len(values) >= 3 and len(distinct) <= max(2, len(values) // 2)
    if repeats and distinct <= _OFFSET:
        return "offset_binary"  # 65, 66 alone: offset binary turning up (or sign bit turning down)
    if repeats and distinct <= _TWOS:
        return "twos_complement"  # 1, 2 alone could be sign bit too; two's complement is the commoner
    if repeats and distinct <= _SIGN and distinct & set(range(65, 80)):
        return "sign_bit"
    if max(values) - min(values) > JITTER or (distinct <= {0, 127} and 127 in distinct):
        return "absolute"  # a knob that really moved, or a button (127 pressed, 0 released)
    return None


class Detector:
    """Collects control events and names the control that moved most clearly."""

    def __init__(self, settle: float = SETTLE) -> None:
        self.settle = settle
        self._events: list[ControlEvent] = []

    def reset(self) -> None:
        self._events.clear()

    def feed(self, event: ControlEvent) -> Detected | None:
        msg = event.message
        if not isinstance(msg, mido.Message) or msg.type not in (
                "control_change", "pitchwheel", "aftertouch", "polytouch", "note_on", "program_change"):
            return None
        if msg.type == "note_on" and msg.velocity > 0:
            return Detected("note", msg.note, channel=msg.channel)
        if msg.type == "program_change":
            return Detected("program", channel=msg.channel)
        self._events.append(event)
        return self.decide(event.time, final=False)

    def decide(self, now: float, final: bool = True) -> Detected | None:
        """The moved control, once it has moved for ``settle`` seconds (or a clear burst of messages)."""
        self._events = [e for e in self._events if now - e.time <= WINDOW]
        if not self._events:
            return None
        first = self._events[0].time
        runs: dict[tuple, list[int]] = {}
        for e in self._events:
            m = e.message
            key = {"control_change": ("cc", m.channel, getattr(m, "control", None)),
                   "pitchwheel": ("pitchbend", m.channel, None),
                   "aftertouch": ("aftertouch", m.channel, None),
                   "polytouch": ("polytouch", m.channel, getattr(m, "note", None))}.get(m.type)
            if key is not None:
                runs.setdefault(key, []).append(
                    m.pitch if m.type == "pitchwheel" else m.value)  # type: ignore[union-attr]
        enough = now - first >= self.settle or max(len(v) for v in runs.values()) >= 12
        if not enough and not final:
            return None
        found = self._nrpn(runs) or self._pairs(runs)
        if found:
            return found
        best: tuple[int, Detected] | None = None
        for (kind, channel, number), values in runs.items():
            if kind == "cc":
                mode = classify_cc(values)
                if mode is None:
                    continue
                d = Detected("cc", number, channel=channel, relative=None if mode == "absolute" else mode)
            elif kind == "pitchbend":
                if max(values) - min(values) < 512:
                    continue
                d = Detected("pitchbend", channel=channel)
            else:
                if max(values) - min(values) <= JITTER:
                    continue
                d = Detected(kind, number, channel=channel)
            if best is None or len(values) > best[0]:
                best = (len(values), d)
        return best[1] if best else None

    @staticmethod
    def _nrpn(runs: dict[tuple, list[int]]) -> Detected | None:
        for (kind, channel, number), values in runs.items():
            if kind == "cc" and number == 99 and ("cc", channel, 98) in runs and any(
                    ("cc", channel, n) in runs for n in (6, 38, 96, 97)):
                return Detected("nrpn", values[-1] * 128 + runs[("cc", channel, 98)][-1], channel=channel)
        return None

    @staticmethod
    def _pairs(runs: dict[tuple, list[int]]) -> Detected | None:
        for (kind, channel, number), _ in runs.items():
            if kind == "cc" and number is not None and number < 32 and ("cc", channel, number + 32) in runs:
                return Detected("cc14", number, number + 32, channel=channel)
        return None
