"""What a mapping file says, once read: plain frozen dataclasses, plus the response curves.

A ``Mapping`` has ``controls`` (a MIDI CC, 14-bit CC pair, NRPN, pitch bend, aftertouch, program change or
a note used as a button, or an OSC address, each driving one parameter), ``notes`` (note ranges that select
anchors), computer ``keys`` and ``pointer`` axes. ``line`` fields say where an entry was written (0 when made
in code, e.g. by MIDI learn); they take no part in comparisons, so a mapping written out and read back
compares equal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from instrument.errors import UserError
from instrument.events import AUDIO_FEATURES

CURVES = ("linear", "exponential", "logarithmic", "points")
TAKEOVERS = ("jump", "pickup", "scale")
ACTIONS = ("follow", "toggle", "hold", "trigger", "step", "set", "ramp")
NOTE_BEHAVIOURS = ("jump", "glide", "hold")
SOURCES = ("cc", "cc14", "nrpn", "pitchbend", "aftertouch", "polytouch", "program", "note", "osc", "audio")
POINTER_BUTTONS = ("none", "left", "middle", "right")
CONTROL_MODES = ("absolute", "nudge")
# Smoothing when a continuous control does not say: enough to hide 7-bit steps, short enough to feel direct.
DEFAULT_SMOOTHING = 0.05

MESSAGE_LIMIT = 300  # characters of one error line: a hostile value cannot flood a terminal or the HUD
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# Steepness of the exponential and logarithmic curves: exponential(0.5) = 0.12, logarithmic(0.5) = 0.88.
_K = 4.0


class MappingError(UserError):
    """A mistake in a mapping file, located: ``file:line: key: message``.

    ``line`` is 1-based (0 when unknown); ``key`` is the path to the entry, e.g. ``controls[3].curve`` (list
    entries count from 1, as a person reading the file counts them)."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        super().__init__(file, line, key, message)
        self.file, self.line = one_line(str(file), 4096), int(line)
        self.key, self.message = one_line(str(key)), one_line(str(message))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one printable line of at most ``limit`` characters (control characters escaped)."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Curve:
    """Shapes a normalized control position x in [0, 1] -> [0, 1]."""

    kind: str = "linear"
    points: tuple[tuple[float, float], ...] = ()  # for "points": (x, y) pairs, x strictly rising

    def __call__(self, x: float) -> float:
        x = min(max(x, 0.0), 1.0)
        if self.kind == "linear":
            return x
        if self.kind == "exponential":
            return math.expm1(_K * x) / math.expm1(_K)
        if self.kind == "logarithmic":
            return math.log1p(math.expm1(_K) * x) / _K
        pts = self.points
        if x <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return pts[-1][1]


@dataclass(frozen=True)
class Control:
    """One MIDI control (or OSC address) driving one parameter.

    ``source`` is one of SOURCES; ``number`` the CC (for cc14 the MSB CC), NRPN number (0..16383), note,
    polytouch note (None: any note) or audio feature (its index in ``events.AUDIO_FEATURES``); ``lsb`` the
    LSB CC of a cc14 pair; ``address`` an OSC address (its first argument, 0..1, is the control's position).
    ``channel`` 0..15 or None (any). ``low``/``high``: the parameter range the control spans. ``action`` is
    what it does (ACTIONS): follow the control's position, or act as a button (pressed: CC >= 64, note on).
    ``step``: units per relative tick or per press (None: the default for the param). ``value``: what
    ``set`` sets. ``feedback``: the parameter's value goes back to the controller (its lights, rings, motor
    faders; an OSC control's address at the OSC target). ``attack``/``release``: seconds an audio feature's
    envelope takes to rise and to fall.
    """

    source: str
    param: str
    number: int | None = None
    lsb: int | None = None
    channel: int | None = None
    low: float = 0.0
    high: float = 1.0
    curve: Curve = Curve()
    invert: bool = False
    smoothing: float = 0.0
    takeover: str = "jump"
    relative: str | None = None
    step: float | None = None
    action: str = "follow"
    value: float | int | str | bool | None = None
    mode: str = "absolute"
    bits: int = 14  # NRPN data resolution: 14 (data entry MSB+LSB) or 7 (MSB only)
    label: str = ""  # what the control is called on the controller ("knob 1", "Rec"), for help and the HUD
    address: str = ""  # the OSC address of an `osc:` control
    feedback: bool = False
    attack: float = 0.0
    release: float = 0.0
    line: int = field(default=0, compare=False)

    def describe(self) -> str:
        """The source in words, e.g. "cc 74 on channel 1" (for messages and the HUD)."""
        if self.source == "osc":
            return f"osc {self.address}"
        if self.source == "audio":
            return f"audio {AUDIO_FEATURES[self.number or 0]}"
        chan = "any channel" if self.channel is None else f"channel {self.channel + 1}"
        what = {
            "cc": f"cc {self.number}",
            "cc14": f"cc14 {self.number}/{self.lsb}",
            "nrpn": f"nrpn {self.number}",
            "note": f"note {self.number}",
            "polytouch": "polytouch" if self.number is None else f"polytouch on note {self.number}",
        }.get(self.source, self.source)
        return f"{what} on {chan}"


@dataclass(frozen=True)
class NoteRange:
    """Notes ``low..high`` select anchors ``anchor + (note - low)``.

    ``behaviour``: jump (cut to the anchor), glide (travel there over the transition time; with ``glide``
    set, the time follows velocity: ``glide[0]`` seconds for the softest note, ``glide[1]`` for the hardest),
    hold (glide there while the key is held, back to where it was when released)."""

    low: int
    high: int
    channel: int | None = None
    anchor: int = 0
    behaviour: str = "glide"
    glide: tuple[float, float] | None = None
    label: str = ""
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class KeyBinding:
    """A computer key (pygame key name, lower case) acting on a parameter: ``action`` is toggle, hold,
    trigger, step (by ``step``; choices move one place), set (to ``value``) or ramp (``rate`` units/s while
    held)."""

    key: str
    param: str
    action: str
    value: float | int | str | bool | None = None
    step: float | None = None
    rate: float | None = None
    label: str = ""
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PointerAxis:
    """A mouse axis (``x``: 0 left .. 1 right, ``y``: 0 top .. 1 bottom) following into ``param``'s range,
    only while ``button`` is held (``none``: always)."""

    axis: str
    param: str
    low: float = 0.0
    high: float = 1.0
    curve: Curve = Curve()
    invert: bool = False
    smoothing: float = 0.0
    button: str = "none"
    label: str = ""
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Mapping:
    """A whole mapping file. ``ports``: substrings of MIDI port names to listen to, None for every port.
    ``tempo``: "clock" (follow MIDI clock, else ``bpm``) or "fixed" (always ``bpm``)."""

    version: int = 1
    name: str = ""
    description: str = ""
    ports: tuple[str, ...] | None = None
    tempo: str = "clock"
    bpm: float | None = None
    initial: tuple[tuple[str, Any], ...] = ()  # (param, value) pairs a session starts with
    controls: tuple[Control, ...] = ()
    notes: tuple[NoteRange, ...] = ()
    keys: tuple[KeyBinding, ...] = ()
    pointer: tuple[PointerAxis, ...] = ()
    path: str = field(default="", compare=False)
    text: str = field(default="", compare=False, repr=False)  # the file as read, for recordings
