"""Control events: what the MIDI callback and the window's event pump hand to the render thread.

An event is stamped with ``time.monotonic()`` where it arrived and names its source (a MIDI port's name,
``"keyboard"`` or ``"pointer"``). The render thread applies events in order; the recorder logs them, so that a
take can be re-rendered from its control stream.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class ControlEvent:
    time: float  # time.monotonic() at arrival
    source: str  # MIDI port name, "keyboard" or "pointer"
    message: mido.Message | KeyInput | PointerInput


# Coalescing keys: a CC is (source, channel, control); the other continuous messages get a string in place
# of the control number so that they never collide with a CC.
EventKey = tuple[str | None, int | None, int | str]

# Data entry MSB/LSB (6, 38), data increment/decrement (96, 97), NRPN and RPN parameter numbers (98-101):
# an NRPN or RPN is a sequence of these, so each one counts and their order is meaning. And the switch
# controllers 64-69 (sustain, portamento, sostenuto, soft, legato, hold 2): a quick press and release within
# one frame must not collapse into the release.
DEFAULT_EXACT_CONTROLS: frozenset[int] = frozenset({6, 38, 64, 65, 66, 67, 68, 69, 96, 97, 98, 99, 100, 101})

_CONTINUOUS = frozenset({"control_change", "pitchwheel", "aftertouch", "polytouch"})
_KEPT = frozenset({"note_on", "note_off", "program_change", "clock", "start", "stop", "continue", "songpos",
                   "reset"})


class EventQueue:
    """A bounded, never-blocking hand-off of control events from callback threads to the render thread.

    ``put`` may be called from any thread (one rtmidi callback thread per port, the main thread for keyboard
    and pointer); ``drain`` from the render thread once a frame. The lock is held only to move references.

    Three kinds of event:

    - **coalescible**: control change, pitch bend, channel and poly aftertouch. While one is waiting to be
      drained, a newer one for the same (source, channel, control) replaces it in place: latest wins, and
      the order of everything else is kept. A control is kept exact (never coalesced) when its key is set
      with ``set_exact_controls`` or its number is in ``DEFAULT_EXACT_CONTROLS`` (NRPN/RPN, switches).
    - **kept**: notes, exact CCs, program change, clock, start/stop/continue, song position, reset. Never
      coalesced, never reordered, never evicted.
    - **droppable**: everything else (sysex, MTC quarter frames, song select, tune request).

    When the queue holds ``maxlen`` events, a new event (one that does not just replace a waiting CC) makes
    room by evicting the oldest waiting coalescible event, else the oldest droppable one (a new droppable
    event evicts only droppable ones). When nothing may be evicted, the new event is refused: events already
    accepted stay in order and are never rewritten. Each eviction or refusal adds one to ``dropped``. The
    render thread drains every frame, so a full queue means thousands of events in one frame: a flood, not
    playing. A coalesced CC is not a drop.
    """

    def __init__(self, maxlen: int = 4096):
        if maxlen < 1:
            raise ValueError(f"EventQueue maxlen must be at least 1, not {maxlen}")
        self.maxlen = maxlen
        self.dropped = 0
        self._lock = threading.Lock()
        # Each slot is a one-item list, so a coalesced CC can be replaced in place and an evicted event
        # blanked to None (a tombstone) without an O(n) removal from the middle of the deque.
        self._slots: deque[list] = deque()
        self._live = 0
        self._pending: dict[EventKey, list] = {}  # coalescible key -> its waiting slot, oldest first
        self._droppable: deque[list] = deque()  # droppable slots, oldest first (may hold tombstones)
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
        """Add an event; never blocks beyond a short lock, never raises for a full queue (see ``dropped``)."""
        key = self._coalesce_key(event)
        msg = event.message
        droppable = isinstance(msg, mido.Message) and msg.type not in _KEPT and msg.type not in _CONTINUOUS
        with self._lock:
            if key is not None and (slot := self._pending.get(key)) is not None:
                slot[0] = event
                return
            if self._live >= self.maxlen and not self._evict(droppable_only=droppable):
                self.dropped += 1  # every waiting event outranks this one: refuse it
                return
            slot = [event]
            self._slots.append(slot)
            self._live += 1
            if key is not None:
                self._pending[key] = slot
            elif droppable:
                self._droppable.append(slot)
            if len(self._slots) > 2 * self.maxlen:
                self._compact()

    def drain(self) -> list[ControlEvent]:
        """Every waiting event, oldest first; the queue is empty afterwards."""
        with self._lock:
            slots, self._slots = self._slots, deque()
            self._pending.clear()
            self._droppable.clear()
            self._live = 0
        return [slot[0] for slot in slots if slot[0] is not None]

    def __len__(self) -> int:
        return self._live

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
        return None

    def _evict(self, droppable_only: bool) -> bool:
        """Blank the oldest coalescible (unless ``droppable_only``), else the oldest droppable event.

        False when nothing may be evicted.
        """
        if self._pending and not droppable_only:
            key = next(iter(self._pending))
            slot = self._pending.pop(key)
        else:
            while self._droppable and self._droppable[0][0] is None:
                self._droppable.popleft()
            if not self._droppable:
                return False
            slot = self._droppable.popleft()
        slot[0] = None
        self._live -= 1
        self.dropped += 1
        return True

    def _compact(self) -> None:
        # Tombstones pile up only while a full queue keeps evicting; squeeze them out now and then.
        self._slots = deque(slot for slot in self._slots if slot[0] is not None)
        self._droppable = deque(slot for slot in self._droppable if slot[0] is not None)
