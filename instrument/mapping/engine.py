"""The mapping engine: control events in, parameter changes out (into a ControlState).

Runs in the render thread, once per drained event: dictionary lookups and arithmetic only, no I/O, no
locks. Stateful MIDI decoding lives here too, through ``instrument.midi.messages``' decoders: 14-bit CC pairs,
NRPN sequences (CC 99/98 select, 6/38 data entry, 96/97 increment/decrement), relative encoders; and button
edges, held notes, soft takeover and the envelopes (attack, release) of audio features. Every value of such
a control counts, so ``exact_controls()`` names them for the EventQueue, which then never coalesces them.

OSC messages come through here too: an address a mapping binds (``osc: /1/fader1``) moves its control like
a CC, and ``/li/<param> value`` sets any parameter directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import mido

from instrument.control import ControlState
from instrument.events import AUDIO_FEATURES, AudioFeatures, ControlEvent, KeyInput, OscInput, PointerInput
from instrument.mapping.model import Control, Curve, KeyBinding, Mapping, NoteRange, PointerAxis
from instrument.midi.messages import (
    DATA_DECREMENT,
    DATA_INCREMENT,
    MAX_14BIT,
    Cc14Decoder,
    Light,
    NrpnDecoder,
    pitchbend_unit,
    relative_delta,
)
from instrument.params import PARAMS, Param

CLOCK_MESSAGES = frozenset({"clock", "start", "stop", "continue", "songpos"})
OSC_PREFIX = "/li/"  # OSC addresses that name a parameter: /li/noise 0.3
NRPN_CCS = (99, 98, 6, 38, 96, 97)
_POINTER_MASK = {"none": 0, "left": 1, "middle": 2, "right": 4}
# Pickup takes hold within this fraction of the control's range of the parameter's value: two 7-bit steps.
PICKUP_NEAR = 2 / 127


def _pick(choices: tuple[str, ...], y: float) -> str:
    """A knob position in [0, 1] -> one of ``choices``, in equal slices."""
    return choices[min(int(y * len(choices)), len(choices) - 1)]


def _position(curve: Curve, y: float) -> float:
    """The knob position x in [0, 1] where ``curve(x)`` is ``y`` (the nearest of 128 steps for points)."""
    y = min(max(y, 0.0), 1.0)
    if curve.kind == "linear":
        return y
    if curve.kind in ("exponential", "logarithmic"):  # each is the other's inverse
        return Curve("logarithmic" if curve.kind == "exponential" else "exponential")(y)
    return min(range(128), key=lambda step: abs(curve(step / 127) - y)) / 127


class MappingEngine:
    """Applies a Mapping to control events, writing into ``state``.

    Replace the mapping while playing with ``engine.mapping = new``: parameter values stay where they are,
    and so do 14-bit and NRPN decoding and held notes; buttons start released, and soft-takeover knobs
    must pick their parameter up again.
    """

    def __init__(self, mapping: Mapping, state: ControlState) -> None:
        self.state = state
        self._cc14: dict[str, Cc14Decoder] = defaultdict(Cc14Decoder)  # per source
        self._nrpn: dict[str, NrpnDecoder] = defaultdict(NrpnDecoder)  # per source
        self._pressed: dict[str, bool] = {}  # control id -> button held
        self._knob: dict[str, float] = {}  # control id -> last value (soft takeover)
        # notes held with behaviour "hold": (source, channel, note) -> (anchor, glide seconds)
        self._held: dict[tuple[str, int, int], tuple[int, float]] = {}
        self._hold_home: int | None = None  # anchor before the first held note
        self._keys_down: set[str] = set()
        self._envelope: dict[str, tuple[float, float]] = {}  # audio control id -> (envelope, time)
        self._serial = 0  # numbers each mapping in use, so control ids never repeat across reloads
        self.mapping = mapping

    # --- the mapping ---------------------------------------------------------------------------------------
    @property
    def mapping(self) -> Mapping:
        return self._mapping

    @mapping.setter
    def mapping(self, mapping: Mapping) -> None:
        self._serial += 1
        self._index(mapping)
        self.state.tempo_source = mapping.tempo
        if mapping.bpm is not None:
            self.state.set("tempo", mapping.bpm, self.state.now or 0.0)

    # Derived from the mapping alone: rebuilt, not saved, when a take's state is restored.
    DERIVED = frozenset({"state", "_mapping", "_ids", "_by", "_keys", "_has_nrpn", "_ports", "_audio"})

    def state_dict(self) -> dict[str, Any]:
        """The decoding state (14-bit and NRPN halves, buttons held, pickup, held notes) as JSON data."""
        from instrument.snapshot import encode_fields

        return encode_fields(self, skip=self.DERIVED)

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Take ``state_dict`` data back (the same mapping in use, so control ids match)."""
        from instrument.snapshot import restore_fields

        restore_fields(self, data)
        self._index(self._mapping)

    def _index(self, mapping: Mapping) -> None:
        self._mapping = mapping
        # (an audio control's id says so: the state does not loop what the sound moves, ``control.by_hand``)
        self._ids = {id(c): f"{'audio ' * (c.source == 'audio')}m{self._serial}c{i}"
                     for i, c in enumerate(mapping.controls)}
        by: dict[tuple[str, int | str | None], list[Control]] = defaultdict(list)
        for c in mapping.controls:
            by[(c.source, c.address if c.source == "osc" else c.number)].append(c)
            if c.source == "cc14":
                by[("cc14lsb", c.lsb)].append(c)
        self._by = dict(by)
        self._keys: dict[str, list[KeyBinding]] = defaultdict(list)
        for k in mapping.keys:
            self._keys[k.key].append(k)
        self._has_nrpn = any(c.source == "nrpn" for c in mapping.controls)
        self._audio = [c for c in mapping.controls if c.source == "audio"]
        self._ports = tuple(p.lower() for p in mapping.ports) if mapping.ports else None

    @property
    def hears_audio(self) -> bool:
        """The mapping binds audio features (``audio:`` controls)."""
        return bool(self._audio)

    def exact_controls(self) -> set[tuple[int | None, int | str]]:
        """(channel 0-15 or None for any, CC) pairs the EventQueue must not coalesce; pass them to
        ``set_exact_controls``. Relative encoders (every tick counts), both CCs of 14-bit pairs and the NRPN
        CCs (their order is meaning), buttons (a press and release within one frame must both arrive:
        toggle, set, step, hold and trigger actions) and pickup faders (takeover watches every value); an
        OSC button or pickup fader as (None, "osc <address>")."""
        out: set[tuple[int | None, int | str]] = set()
        for c in self._mapping.controls:
            if c.source == "cc" and (c.relative or c.action != "follow" or c.takeover == "pickup"):
                out.add((c.channel, c.number))  # type: ignore[arg-type]
            elif c.source == "cc14":
                out.update({(c.channel, c.number), (c.channel, c.lsb)})  # type: ignore[arg-type]
            elif c.source == "nrpn":
                out.update((c.channel, cc) for cc in NRPN_CCS)
            elif c.source == "osc" and (c.action != "follow" or c.takeover == "pickup"):
                out.add((None, f"osc {c.address}"))
        return out

    # --- events --------------------------------------------------------------------------------------------
    def apply(self, event: ControlEvent) -> bool:
        """Apply one event at its time stamp; True if the mapping used it (learn and the HUD ask)."""
        msg, t = event.message, event.time
        if isinstance(msg, OscInput):
            return self._osc(msg, t)
        if isinstance(msg, KeyInput):
            return self._key(msg, t)
        if isinstance(msg, PointerInput):
            return self._pointer(msg, t)
        if isinstance(msg, AudioFeatures):
            return self._audio_features(msg, t)
        if msg.type in CLOCK_MESSAGES:
            return self._clock(msg, t)
        if self._ports is not None and not any(p in event.source.lower() for p in self._ports):
            return False
        kind = msg.type
        if kind == "control_change":
            return self._cc(event.source, msg, t)
        if kind in ("note_on", "note_off"):
            return self._note(event.source, msg, t)
        if kind == "pitchwheel":
            return self._each("pitchbend", None, msg.channel, (pitchbend_unit(msg.pitch) + 1.0) / 2.0, t)
        if kind == "aftertouch":
            return self._each("aftertouch", None, msg.channel, msg.value / 127.0, t)
        if kind == "polytouch":
            used = self._each("polytouch", msg.note, msg.channel, msg.value / 127.0, t)
            return self._each("polytouch", None, msg.channel, msg.value / 127.0, t) or used
        if kind == "program_change":
            used = False
            for c in self._matching("program", None, msg.channel):
                p = PARAMS[c.param]
                value = p.choices[msg.program % len(p.choices)] if p.kind == "choice" else msg.program
                self.state.set(c.param, value, t, source=self._ids[id(c)], force_action=True)
                used = True
            return used
        return False

    def _matching(self, source: str, number: int | None, channel: int) -> list[Control]:
        return [c for c in self._by.get((source, number), ()) if c.channel is None or c.channel == channel]

    def _each(self, source: str, number: int | None, channel: int, x: float, t: float) -> bool:
        controls = self._matching(source, number, channel)
        for c in controls:
            self._drive(c, x, t)
        return bool(controls)

    def _cc(self, src: str, msg: mido.Message, t: float) -> bool:
        ch, cc, v = msg.channel, msg.control, msg.value
        used = False
        if self._has_nrpn and cc in NRPN_CCS:
            used = self._nrpn_cc(src, msg, t)
        for c in self._matching("cc", cc, ch):
            if c.relative:
                self._relative(c, relative_delta(v, c.relative), t)
            else:
                self._drive(c, v / 127.0, t)
            used = True
        pairs = self._cc14[src]
        for c in self._matching("cc14", cc, ch):
            self._drive(c, pairs.msb(ch, cc, v) / MAX_14BIT, t)
            used = True
        for c in self._matching("cc14lsb", cc, ch):
            value = pairs.lsb(ch, c.number, v)  # type: ignore[arg-type]
            if value is not None:
                self._drive(c, value / MAX_14BIT, t)
            used = True
        return used

    def _nrpn_cc(self, src: str, msg: mido.Message, t: float) -> bool:
        change = self._nrpn[src].feed(msg)
        if change is None or change.registered:
            return change is None and msg.control in (99, 98)
        controls = self._matching("nrpn", change.parameter, change.channel)
        for c in controls:
            if msg.control in (DATA_INCREMENT, DATA_DECREMENT):  # one tick of the control's step
                self._relative(c, 1 if msg.control == DATA_INCREMENT else -1, t)
            elif c.bits == 7:
                self._drive(c, (change.value >> 7) / 127.0, t)
            else:
                self._drive(c, change.value / MAX_14BIT, t)
        return bool(controls)

    # --- driving a parameter -------------------------------------------------------------------------------
    def _drive(self, c: Control, x: float, t: float) -> None:
        """A control at position ``x`` in [0, 1] (button pressed when x >= 0.5)."""
        cid = self._ids[id(c)]
        if c.action != "follow":
            pressed = x >= 0.5
            was = self._pressed.get(cid, False)
            self._pressed[cid] = pressed
            if pressed != was:
                press(self.state, c.param, c.action, pressed, t, cid, value=c.value, step=c.step)
            return
        if c.invert:
            x = 1.0 - x
        y = c.curve(x)
        p = PARAMS[c.param]
        if p.kind == "choice":
            self.state.set(c.param, _pick(p.choices, y), t, source=cid)
        elif p.kind == "toggle":
            self.state.set(c.param, y >= 0.5, t, source=cid)
        elif c.mode == "nudge":
            self.state.nudge(c.param, cid, c.low + y * (c.high - c.low), t, smoothing=c.smoothing)
        else:
            v = c.low + y * (c.high - c.low)
            take_over(self.state, c, cid, v, self._knob.get(cid), t)
            self._knob[cid] = v

    def _relative(self, c: Control, ticks: int, t: float) -> None:
        p = PARAMS[c.param]
        cid = self._ids[id(c)]
        if p.kind == "choice":
            self.state.step(c.param, ticks, t, source=cid)
            return
        step = c.step if c.step is not None else (1.0 if p.kind == "integer" else (c.high - c.low) / 128.0)
        v = float(self.state.target(c.param)) + ticks * step
        self.state.set(c.param, min(max(v, c.low), c.high), t, smoothing=c.smoothing, source=cid)

    # --- notes ---------------------------------------------------------------------------------------------
    def _note(self, src: str, msg: mido.Message, t: float) -> bool:
        on = msg.type == "note_on" and msg.velocity > 0
        buttons = self._matching("note", msg.note, msg.channel)
        for c in buttons:  # a button is pressed at any velocity; a follow note follows velocity
            self._drive(c, (msg.velocity / 127.0 if c.action == "follow" else 1.0) if on else 0.0, t)
        if buttons:
            return True
        for r in self._mapping.notes:
            if r.low <= msg.note <= r.high and (r.channel is None or r.channel == msg.channel):
                if on:
                    self._note_on(r, src, msg, t)
                else:
                    self._note_off(r, src, msg, t)
                return True
        return False

    def _note_on(self, r: NoteRange, src: str, msg: mido.Message, t: float) -> None:
        st = self.state
        velocity = msg.velocity / 127.0
        anchor = r.anchor + msg.note - r.low
        st.set("velocity", velocity, t, source="notes")
        if r.behaviour == "jump":
            st.set("transition", 0.0, t, source="notes")
        elif r.glide is not None:
            soft, hard = r.glide
            st.set("transition", soft + (hard - soft) * (msg.velocity - 1) / 126.0, t, source="notes")
        if r.behaviour == "hold":
            if not self._held:
                self._hold_home = st.value("anchor")
            self._held[(src, msg.channel, msg.note)] = (anchor, float(st.target("transition")))
        st.set("anchor", anchor, t, source="notes", force_action=True)

    def _note_off(self, r: NoteRange, src: str, msg: mido.Message, t: float) -> None:
        if r.behaviour != "hold" or self._held.pop((src, msg.channel, msg.note), None) is None:
            return
        st = self.state
        if self._held:  # back to the most recent note still held
            anchor, glide = list(self._held.values())[-1]
        else:
            anchor, glide = self._hold_home or 0, float(st.target("transition"))
        st.set("transition", glide, t, source="notes")
        st.set("anchor", anchor, t, source="notes", force_action=True)

    # --- OSC ---------------------------------------------------------------------------------------------
    def _osc(self, msg: OscInput, t: float) -> bool:
        """A bound address moves its controls (first argument 0..1, as a knob's position); else
        ``/li/<param> value`` sets the parameter (``set_by_osc``)."""
        controls = self._by.get(("osc", msg.address))
        if controls:
            x = _osc_number(msg.args)
            for c in controls if x is not None else ():
                self._drive(c, min(max(x, 0.0), 1.0), t)
            return x is not None
        name = msg.address[len(OSC_PREFIX):] if msg.address.startswith(OSC_PREFIX) else ""
        return name in PARAMS and set_by_osc(self.state, PARAMS[name], msg.args, t, f"osc {msg.address}")

    # --- audio --------------------------------------------------------------------------------------------
    def _audio_features(self, msg: AudioFeatures, t: float) -> bool:
        """One hop of audio features: each ``audio:`` control follows its feature through its envelope. The
        beat and tempo come from the MIDI clock while it runs; an unknown tempo (0) moves nothing."""
        if not self._audio:
            return False
        st = self.state
        if st.following_clock:
            msg = dataclasses.replace(msg, beat=st.beat(t) % 1.0, tempo=st.tempo)
        for c in self._audio:
            feature = AUDIO_FEATURES[c.number or 0]
            if feature != "tempo" or msg.tempo > 0:
                self._drive(c, self._follow_envelope(c, msg.value(feature), t), t)
        return True

    def _follow_envelope(self, c: Control, x: float, t: float) -> float:
        """``x`` through control ``c``'s envelope: rising over ``attack`` s, falling over ``release``."""
        if not (c.attack or c.release):
            return x
        cid = self._ids[id(c)]
        before = self._envelope.get(cid)
        if before is not None:
            level, then = before
            tau = c.attack if x > level else c.release
            if tau > 0:
                x += (level - x) * math.exp(-max(0.0, t - then) / tau)
        self._envelope[cid] = (x, t)
        return x

    # --- clock, keyboard, pointer --------------------------------------------------------------------------
    def _clock(self, msg: mido.Message, t: float) -> bool:
        clock = self.state.clock
        if clock is None or self._mapping.tempo != "clock":
            return False
        clock.feed(msg, t)
        return True

    def _key(self, k: KeyInput, t: float) -> bool:
        bindings = self._keys.get(k.key.lower())
        if not bindings:
            return False
        repeat = k.down and k.key in self._keys_down
        if k.down:
            self._keys_down.add(k.key)
        else:
            self._keys_down.discard(k.key)
        for b in bindings:
            if b.action == "ramp":
                if k.down and not repeat:
                    self.state.start_ramp(f"key:{b.key}:{b.param}", b.param, b.rate or 0.0, t)
                elif not k.down:
                    self.state.stop_ramp(f"key:{b.key}:{b.param}", t)
            elif not repeat or b.action in ("step", "set"):  # key repeat steps again; toggles once
                press(self.state, b.param, b.action, k.down, t, f"key:{b.key}", value=b.value, step=b.step)
        return True

    def _pointer(self, p: PointerInput, t: float) -> bool:
        used = False
        for a in self._mapping.pointer:
            mask = _POINTER_MASK[a.button]
            if mask and not p.buttons & mask:
                continue
            follow_axis(self.state, a, p.x if a.axis == "x" else p.y, t)
            used = True
        return used


def set_by_osc(state: ControlState, p: Param, args: tuple, t: float, source: str) -> bool:
    """``/li/<p> args``: set ``p`` in its own units (a number; a choice by name or place from 0; a toggle by
    true/false, 1/0 or on/off, and with no argument it flips; a trigger fires). False if ``args`` do not
    say a value of ``p``."""
    value = args[0] if args else None
    if p.kind == "trigger" or (p.kind == "toggle" and value is None):
        press(state, p.name, p.kind, True, t, source)
        return True
    if p.kind == "toggle":
        on = _osc_truth(value)
        if on is not None:
            state.set(p.name, on, t, source=source)
        return on is not None
    x = _osc_number(args)
    if p.kind == "choice":
        place = int(x) if x is not None and x == int(x) and 0 <= x < len(p.choices) else None
        choice = value if value in p.choices else None if place is None else p.choices[place]
        if choice is not None:
            state.set(p.name, choice, t, source=source)
        return choice is not None
    if x is not None:  # (an anchor named again restarts its glide, as a note does)
        state.set(p.name, x, t, source=source, force_action=p.name == "anchor")
    return x is not None


def _osc_truth(value: object) -> bool | None:
    """An OSC argument as on/off: true/false, a number (on from 0.5), or the words true/on/yes/1 and
    false/off/no/0; None for anything else."""
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in ("true", "on", "yes", "1") else False if word in ("false", "off", "no", "0") \
            else None
    x = _osc_number((value,))
    return None if x is None else x >= 0.5


def _osc_number(args: tuple) -> float | None:
    """The first OSC argument as a finite number (true/false as 1/0), else None."""
    if not args or isinstance(args[0], str):
        return None
    x = float(args[0])
    return x if math.isfinite(x) else None


def feedback_lights(controls: Iterable[Control], state: ControlState) -> list[Light]:
    """What each of ``controls`` (CCs and notes; others are left out) should show on the controller now, for
    ``instrument.midi.feedback``: a knob or fader its parameter's position in its range (through its curve,
    inverted if it is), a toggle or hold button lit while its parameter is on, a ``set`` button (an anchor
    pad) lit while its parameter has its value. Step and trigger buttons have no state to show."""
    out = []
    for c in controls:
        x = shown_position(c, state) if c.source in ("cc", "note") else None
        if x is not None:
            out.append(Light(c.channel or 0, c.source, c.number, round(127 * x)))  # type: ignore[arg-type]
    return out


def feedback_osc(controls: Iterable[Control], state: ControlState) -> dict[str, float]:
    """What each OSC control of ``controls`` should show now, ``{address: 0..1}``, as ``feedback_lights``
    says it for MIDI (for an OSC target: TouchOSC's faders and buttons follow)."""
    return {c.address: x for c in controls
            if c.source == "osc" and (x := shown_position(c, state)) is not None}


def shown_position(c: Control, state: ControlState) -> float | None:
    """Where control ``c`` should show its parameter now, 0..1 (a button 1 lit, 0 dark); None for step and
    trigger buttons, which have no state."""
    if c.action in ("step", "trigger"):
        return None
    # A number's target, not its smoothed value: a knob's own move is not sent back to it step by step
    # while the parameter glides after it (a motor fader would fight the hand).
    numeric = PARAMS[c.param].kind in ("continuous", "integer")
    value = state.target(c.param) if numeric else state.value(c.param)
    if c.action == "set":
        return 1.0 if value == c.value else 0.0
    if c.action != "follow" or PARAMS[c.param].kind == "toggle":
        return 1.0 if value else 0.0
    return _knob_position(c, value)


def _knob_position(c: Control, value: object) -> float:
    """Where the knob of follow control ``c`` sits when its parameter is ``value``: [0, 1]."""
    p = PARAMS[c.param]
    if p.kind == "choice":
        y = (p.choices.index(value) + 0.5) / len(p.choices)
    else:
        span = c.high - c.low
        y = (float(value) - c.low) / span if span and math.isfinite(float(value)) else 0.0
    x = _position(c.curve, y)
    return 1.0 - x if c.invert else x


def take_over(state: ControlState, c: Control, cid: str, v: float, prev: float | None, t: float) -> None:
    """Knob ``c`` (id ``cid``) moved from ``prev`` (None: its first value) to ``v``, in parameter units:
    set the parameter as its soft-takeover mode says (jump, pickup, scale)."""
    if c.takeover == "jump" or state.owner(c.param) == cid:
        state.set(c.param, v, t, smoothing=c.smoothing, source=cid)
        return
    current = float(state.target(c.param))
    if c.takeover == "pickup":
        # Ignore the knob until it comes near the parameter's value or sweeps across it between two values:
        # a fast move (or a controller that skips values) need not land on it. A value beyond the knob's
        # range is met at the end nearest to it.
        ends = sorted((c.low, c.high))
        meet = min(max(current, ends[0]), ends[1])
        near = (ends[1] - ends[0]) * PICKUP_NEAR
        low, high = (v, v) if prev is None else (min(prev, v), max(prev, v))
        if low - near <= meet <= high + near:
            state.set(c.param, v, t, smoothing=c.smoothing, source=cid)
        return
    # Value scaling: move the parameter the same fraction of the way to the end the knob is heading for, so
    # knob and parameter reach that end together; from then on they agree. A knob that meets or crosses the
    # value takes it over at once.
    if prev is None or v == prev:
        return
    if (prev - current) * (v - current) <= 0:
        state.set(c.param, v, t, smoothing=c.smoothing, source=cid)
        return
    end = c.high if v > prev else c.low
    if (end - current) * (end - prev) <= 0 or end == prev:
        new = v
    else:
        new = current + (v - prev) * (end - current) / (end - prev)
    new = min(max(new, c.low), c.high) if c.low <= current <= c.high else new
    state.set(c.param, new, t, smoothing=c.smoothing, source=cid if abs(new - v) < 1e-9 else None)


def press(state: ControlState, param: str, action: str, pressed: bool, t: float, source: str, *,
          value: object = None, step: float | None = None) -> None:
    """A button (a CC, note or key) pressed or released, doing ``action`` to ``param``."""
    if action == "hold":
        state.set(param, pressed, t, source=source)
    elif not pressed:
        return
    elif action == "toggle":
        state.toggle(param, t, source)
    elif action == "trigger":
        state.set(param, None, t, source=source)
    elif action == "set":
        state.set(param, value, t, source=source, force_action=True)
    elif action == "step":
        p = PARAMS[param]
        state.step(param, step if step is not None else 1, t, wrap=p.kind == "integer" and step is None,
                   source=source)


def follow_axis(state: ControlState, a: PointerAxis, x: float, t: float) -> None:
    """Pointer axis ``a`` at ``x`` in [0, 1]: its parameter follows."""
    x = min(max(1.0 - x if a.invert else x, 0.0), 1.0)
    y = a.curve(x)
    p = PARAMS[a.param]
    if p.kind == "choice":
        state.set(a.param, _pick(p.choices, y), t, source="pointer")
    else:
        state.set(a.param, a.low + y * (a.high - a.low), t, smoothing=a.smoothing, source="pointer")
