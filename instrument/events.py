"""Control events: what the MIDI callback and the window's event pump hand to the render thread.

An event is stamped with ``time.monotonic()`` where it arrived and names its source (a MIDI port's name,
``"keyboard"``, ``"pointer"`` or ``"osc"``). The render thread applies events in order; the recorder logs
them, so that a take can be re-rendered from its control stream.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import mido


@dataclass(frozen=True, slots=True)
class KeyInput:
    """A computer-keyboard key, by pygame's key name (``"a"``, ``"space"``, ``"left"``)."""

    key: str
    down: bool


@dataclass(frozen=True, slots=True)
class PointerInput:
    """The mouse: position in [0, 1] across and down the picture, and which buttons are held."""

    x: float
    y: float
    buttons: int = 0  # bit 0 left, bit 1 middle, bit 2 right


# What a mapping may bind with ``audio: <feature>``: each a number in [0, 1] (``AudioFeatures.value``).
AUDIO_FEATURES = ("level", "low", "mid", "high", "onset", "beat", "tempo")
TEMPO_RANGE = (20.0, 300.0)  # BPM that the ``tempo`` feature spans from 0 to 1 (the tempo param's range)


@dataclass(frozen=True, slots=True)
class AudioFeatures:
    """One hop of sound analysed (``instrument.audio``): level, band energies in [0, 1] (-60..0 dB full
    scale), whether an onset fell in the hop, the beat's phase (0 on a beat, rising to 1) and tempo in BPM
    (0 until known). ``at``: seconds into the stream (a file's own time) at the end of the hop."""

    at: float
    level: float
    low: float
    mid: float
    high: float
    onset: bool
    beat: float
    tempo: float

    def value(self, feature: str) -> float:
        """``feature`` (one of AUDIO_FEATURES) as a control position in [0, 1]; tempo spans TEMPO_RANGE."""
        if feature == "onset":
            return 1.0 if self.onset else 0.0
        if feature == "tempo":
            low, high = TEMPO_RANGE
            return min(max((self.tempo - low) / (high - low), 0.0), 1.0)
        return float(getattr(self, feature))


@dataclass(frozen=True, slots=True)
class OscInput:
    """An OSC message (``instrument.osc``): its address and its arguments (numbers, text, true/false)."""

    address: str
    args: tuple[float | int | str | bool, ...] = ()
    type: ClassVar[str] = "osc"  # as a mido message names its type: queue drops are counted by it


@dataclass(frozen=True, slots=True)
class ControlEvent:
    time: float  # time.monotonic() at arrival
    source: str  # MIDI port name, "keyboard", "pointer", "osc" or "audio:..."
    message: mido.Message | KeyInput | PointerInput | OscInput | AudioFeatures


# Coalescing keys: a CC is (source, channel, control); the other continuous messages get a string in place
# of the control number so that they never collide with a CC.
EventKey = tuple[str | None, int | None, int | str]

# Data entry MSB/LSB (6, 38), data increment/decrement (96, 97), NRPN and RPN parameter numbers (98-101):
# an NRPN or RPN is a sequence of these, so each one counts and their order is meaning. The switch
# controllers 64-69 (sustain, portamento, sostenuto, soft, legato, hold 2): a quick press and release within
# one frame must not collapse into the release. And the channel mode messages 120-127 (all notes off ...).
DEFAULT_EXACT_CONTROLS: frozenset[int] = frozenset({6, 38, 64, 65, 66, 67, 68, 69, 96, 97, 98, 99, 100, 101,
                                                    *range(120, 128)})
# Channel mode messages that end every note on their channel: all sound off, all notes off, omni, mono, poly.
_NOTES_OFF_CONTROLS = frozenset({120, 123, 124, 125, 126, 127})

# How many kept events may wait between two drains: 2**17 of about 330 bytes each (~45 MB at the bound).
# The render thread drains every frame, so this takes 20,000 messages/s through a render stall of 6.5 s.
KEPT_LIMIT = 1 << 17
# How many droppable events (sysex, MTC ...: nothing the mapping reads) may wait.
DROPPABLE_LIMIT = 256
# How many coalesced controls may wait, each under its own key. MIDI has a few thousand keys per port; OSC
# addresses are any text, so a sender of ever new addresses would otherwise grow the queue without end.
COALESCED_LIMIT = 1 << 16

_CONTINUOUS = frozenset({"control_change", "pitchwheel", "aftertouch", "polytouch"})
_KEPT = frozenset({"note_on", "note_off", "program_change", "clock", "start", "stop", "continue", "songpos",
                   "reset"})
NoteKey = tuple[str, int, int]  # (source, channel, note)


class EventQueue:
    """A never-blocking hand-off of control events from callback threads to the render thread.

    ``put`` may be called from any thread (one rtmidi callback thread per port, the main thread for keyboard
    and pointer); ``drain`` from the render thread once a frame. The lock is held only to move references.

    Three kinds of event:

    - **coalescible**: control change, pitch bend, channel and poly aftertouch, OSC messages (by address).
      While one is waiting to be drained, a newer one for the same (source, channel, control) replaces it
      in place: latest wins, and the order of everything else is kept. One waits per key, and at most
      ``COALESCED_LIMIT`` keys wait. A control is kept exact (never coalesced) when its key is set with
      ``set_exact_controls`` (the mapping engine's relative encoders, 14-bit pairs, buttons, pickup faders;
      an OSC address as ``(None, "osc <address>")``) or its number is in ``DEFAULT_EXACT_CONTROLS``
      (NRPN/RPN, switches, channel mode).
    - **kept**: notes, exact CCs and OSC addresses, program change, clock, start/stop/continue, song
      position, reset, keys and the pointer. Never coalesced, never reordered. Up to ``maxlen`` wait
      between two drains; beyond that a new one is dropped, except a note-off (or all-notes-off) for a
      note that is on: those always go in, so no note is left hanging, and a note-on that was dropped
      takes its note-off with it.
    - **droppable**: everything else (sysex, MTC quarter frames, song select, tune request): up to
      ``droppable_limit`` wait; beyond, new ones are dropped.

    Every drop is counted by message type (``drops()``, ``dropped``). A coalesced CC is not a drop.
    """

    def __init__(self, maxlen: int = KEPT_LIMIT, droppable_limit: int = DROPPABLE_LIMIT):
        if maxlen < 1 or droppable_limit < 0:
            raise ValueError(f"EventQueue needs maxlen >= 1 and droppable_limit >= 0, not {maxlen}, "
                             f"{droppable_limit}")
        self.maxlen = maxlen
        self.droppable_limit = droppable_limit
        self._lock = threading.Lock()
        # Each slot is a one-item list, so a coalesced CC can be replaced in place.
        self._slots: deque[list] = deque()
        self._pending: dict[EventKey, list] = {}  # coalescible key -> its waiting slot
        self._kept = 0  # kept events waiting
        self._droppable = 0  # droppable events waiting
        self._sounding: set[NoteKey] = set()  # note-ons let in whose note-off has not come
        self._muted: set[NoteKey] = set()  # note-ons dropped: their note-offs are dropped too
        self._drops: dict[str, int] = {}
        self._exact: frozenset[EventKey] = frozenset()

    def set_exact_controls(self, keys: Iterable[tuple]) -> None:
        """Never coalesce these controls (relative encoders, 14-bit pairs, anything whose every value counts).

        A key is ``(channel, control)`` or ``(source, channel, control)``; ``source`` and ``channel`` may be
        None for "any". Channels are 0-15 as in mido. Replaces keys set before; ``DEFAULT_EXACT_CONTROLS``
        always stay exact. Safe to call while events flow.
        """
        exact = set()
        for key in keys:
            key = tuple(key)
            if len(key) == 2:
                key = (None, *key)
            if len(key) != 3:
                raise ValueError(f"exact control key {key!r} is not (channel, control) or (source, channel, "
                                 "control)")
            exact.add(key)
        self._exact = frozenset(exact)  # one reference swap: readers see the old set or the new one

    def put(self, event: ControlEvent) -> None:
        """Add an event; never blocks beyond a short lock, never raises for a full queue (see ``drops``)."""
        key = self._coalesce_key(event)
        msg = event.message
        droppable = isinstance(msg, mido.Message) and msg.type not in _KEPT and msg.type not in _CONTINUOUS
        with self._lock:
            if key is not None:
                slot = self._pending.get(key)
                if slot is not None:
                    slot[0] = event
                elif len(self._pending) >= COALESCED_LIMIT:
                    self._drop(msg)
                else:
                    slot = [event]
                    self._slots.append(slot)
                    self._pending[key] = slot
                return
            if droppable:
                if self._droppable >= self.droppable_limit:
                    self._drop(msg)
                    return
                self._droppable += 1
            elif self._admit(event):
                self._kept += 1
            else:
                self._drop(msg)
                return
            self._slots.append([event])

    def drain(self) -> list[ControlEvent]:
        """Every waiting event, oldest first; the queue is empty afterwards."""
        with self._lock:
            slots, self._slots = self._slots, deque()
            self._pending.clear()
            self._kept = self._droppable = 0
        return [slot[0] for slot in slots]

    def __len__(self) -> int:
        return len(self._slots)

    def drops(self, since: dict[str, int] | None = None) -> dict[str, int]:
        """Events dropped so far, by message type ("note_on", "control_change", "sysex", "key" ...); with
        ``since`` (an earlier ``drops()``), only those dropped after it. Types with none are left out."""
        with self._lock:
            counts = dict(self._drops)
        if since is not None:
            counts = {kind: n - since.get(kind, 0) for kind, n in counts.items() if n > since.get(kind, 0)}
        return counts

    @property
    def dropped(self) -> int:
        """Events dropped so far, all types together."""
        return sum(self.drops().values())

    def _coalesce_key(self, event: ControlEvent) -> EventKey | None:
        msg = event.message
        kind = getattr(msg, "type", None)
        if kind == "control_change":
            control = msg.control
            if control in DEFAULT_EXACT_CONTROLS:
                return None
            exact = self._exact
            if exact and ((None, None, control) in exact or (None, msg.channel, control) in exact
                          or (event.source, None, control) in exact
                          or (event.source, msg.channel, control) in exact):
                return None
            return (event.source, msg.channel, control)
        if kind in ("pitchwheel", "aftertouch"):
            return (event.source, msg.channel, kind)
        if kind == "polytouch":
            return (event.source, msg.channel, f"polytouch {msg.note}")
        if kind == "osc":  # (a fader's latest value wins; an address the mapping presses with is exact)
            key = f"osc {msg.address}"
            return None if (None, None, key) in self._exact else (event.source, None, key)
        return None

    def _admit(self, event: ControlEvent) -> bool:
        """Whether a kept event goes in; keeps the notes that are on. Called with the lock held."""
        msg = event.message
        kind = getattr(msg, "type", None)
        room = self._kept < self.maxlen
        if kind == "note_on" and msg.velocity > 0:
            note = (event.source, msg.channel, msg.note)
            if room:
                self._sounding.add(note)
                self._muted.discard(note)
            elif note not in self._sounding:  # (when it is on, the coming note-off still ends it)
                self._muted.add(note)
            return room
        if kind in ("note_on", "note_off"):
            note = (event.source, msg.channel, msg.note)
            if note in self._sounding:
                self._sounding.discard(note)
                return True
            if note in self._muted:
                self._muted.discard(note)
                return False
            return room
        if kind == "control_change" and msg.control in _NOTES_OFF_CONTROLS:
            ending = {n for n in self._sounding | self._muted if n[:2] == (event.source, msg.channel)}
            if ending & self._sounding:
                self._sounding -= ending
                self._muted -= ending
                return True
            self._muted -= ending
        return room

    def _drop(self, msg: object) -> None:
        kind = getattr(msg, "type", None) or {KeyInput: "key", AudioFeatures: "audio"}.get(type(msg),
                                                                                             "pointer")
        self._drops[kind] = self._drops.get(kind, 0) + 1
