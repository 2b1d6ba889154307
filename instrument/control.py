"""The control state: every parameter's target and smoothed value, advanced with the frame's time.

The mapping engine sets targets as events arrive; the render thread calls ``advance(now)`` once per frame and
reads ``value(name)``. Continuous parameters follow their target by exponential smoothing,
``v(t) = target + (v0 - target) * exp(-(t - t0) / tau)``, solved exactly between event times and frame
times, so a take re-rendered offline from its logged control stream gives the same values (and the result does
not depend on the frame rate). Integer, choice and toggle parameters change at once; their changes, triggers
and every anchor selection are also queued as actions for the render loop (``pop_actions``).

The performance craft is carried out here, at each event's own time, so that it replays exactly: tap tempo
(four taps in time set the tempo while no MIDI clock runs, and the last tap lands on a beat), ``quantise``
(anchor changes and scene recalls wait for the next beat or bar), scenes (``instrument.scenes``) and gesture
loops (``instrument.gestures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from instrument.cues import Cues, tap_tempo
from instrument.gestures import GestureLoops
from instrument.params import PARAMS, SESSION_PARAMS
from instrument.scenes import SceneBank

NEXT = -1  # the anchor action of ``next``: the anchor after the current one (Performance.step)
_INTERNAL = frozenset({"scene", "gesture"})  # sources that are not a performer's hand


def by_hand(source: str | None) -> bool:
    """Whether a change from ``source`` is a performer's: not a scene's, a loop's or the sound's (the mapping
    engine names its audio controls "audio ...")."""
    return source not in _INTERNAL and not (source or "").startswith("audio")


class Clock(Protocol):
    """What the state needs from ``instrument.midi.clock.MidiClock``."""

    tempo_bpm: float | None
    running: bool

    def beat(self, now: float) -> float: ...


@dataclass(slots=True)
class _Smoothed:
    """One exponentially smoothed number: ``value`` follows ``target`` with time constant ``tau`` seconds."""

    target: float
    value: float
    tau: float = 0.0
    time: float | None = None

    def advance(self, t: float) -> None:
        if self.time is not None and t > self.time and self.value != self.target:
            if self.tau <= 0.0:
                self.value = self.target
            else:
                self.value = self.target + (self.value - self.target) * math.exp(-(t - self.time) / self.tau)
                if abs(self.value - self.target) < 1e-9:
                    self.value = self.target
        elif self.time is None and self.tau <= 0.0:
            self.value = self.target
        if self.time is None or t > self.time:
            self.time = t


@dataclass(slots=True)
class _Ramp:
    """A held key moving ``name`` at ``rate`` units per second since ``time``."""

    name: str
    rate: float
    time: float


class ControlState:
    """Every parameter of ``instrument.params.PARAMS``: targets, smoothed values, actions, tempo and beat.

    Not thread-safe by design: the render thread owns it (the engine applies events there too).
    """

    def __init__(self, clock: Clock | None = None, *, tempo_source: str = "clock") -> None:
        self.clock = clock
        self.tempo_source = tempo_source  # "clock": follow MIDI clock while it runs; "fixed": the tempo param
        # (low, high) of parameters whose range is narrower in this session (params.model_ranges).
        self.ranges: dict[str, tuple[float, float]] = {}
        self.touched: str | None = None  # the last parameter an event set (the HUD names it); None: none yet
        self._num: dict[str, _Smoothed] = {}
        self._other: dict[str, Any] = {}
        for p in PARAMS.values():
            if p.kind in ("continuous", "integer"):
                self._num[p.name] = _Smoothed(float(p.default), float(p.default))
            else:
                self._other[p.name] = p.default
        self._nudges: dict[tuple[str, str], _Smoothed] = {}
        self._owner: dict[str, str | None] = {}
        self._ramps: dict[str, _Ramp] = {}
        self._actions: list[tuple[str, object]] = []
        self.now: float | None = None
        self._beat = 0.0
        self._beat_time: float | None = None
        self.scenes = SceneBank()
        self.gestures = GestureLoops()
        self.cues = Cues()  # tap tempo, and actions waiting for their beat

    # --- reading -------------------------------------------------------------------------------------------
    def value(self, name: str) -> Any:
        """The current (smoothed, nudged, clamped) value: float, int, str, bool or None (triggers)."""
        p = PARAMS[name]
        if p.kind not in ("continuous", "integer"):
            return self._other[name]
        v = self._num[name].value
        for (param, _), n in self._nudges.items():
            if param == name:
                v += n.value
        low, high = self.range(name)
        v = min(max(v, low), high)
        return int(round(v)) if p.kind == "integer" else v

    def range(self, name: str) -> tuple[float, float]:
        """(low, high) of a number parameter in this session: the registry's, or the model's narrower one."""
        p = PARAMS[name]
        return self.ranges.get(name, (p.low, p.high))

    def target(self, name: str) -> Any:
        """Where the parameter is heading (no smoothing, no nudges); for integers the unrounded float."""
        return self._num[name].target if name in self._num else self._other[name]

    def owner(self, name: str) -> str | None:
        """The id of the control that last set ``name`` (soft takeover asks this)."""
        return self._owner.get(name)

    @property
    def tempo(self) -> float:
        """Beats per minute: the MIDI clock's while it runs (tempo source "clock"), else the tempo param."""
        if self.following_clock:
            return float(self.clock.tempo_bpm)  # type: ignore[union-attr]
        return float(self.value("tempo"))

    def beat(self, now: float) -> float:
        """Beats since the start: the MIDI clock's position while it runs, else counted at the fixed tempo."""
        if self.following_clock:
            return float(self.clock.beat(now))  # type: ignore[union-attr]
        if self._beat_time is None:
            return 0.0
        return self._beat + max(0.0, now - self._beat_time) * self.value("tempo") / 60.0

    def snapshot(self) -> dict[str, Any]:
        """Every parameter's current value, plus ``tempo`` as used (clock or fixed); JSON-ready."""
        out = {name: self.value(name) for name in PARAMS}
        out["tempo"] = self.tempo
        return out

    def pop_actions(self) -> list[tuple[str, object]]:
        """Changes the render loop reacts to, oldest first, then forgotten: (param, new value).

        Queued for: every change of a toggle, choice or integer param, every trigger (value None), and every
        anchor selection (even of the current anchor: a note struck again restarts its glide)."""
        out, self._actions = self._actions, []
        return out

    def state_dict(self) -> dict[str, Any]:
        """Every target, smoothed value, nudge, ramp and the beat count, as JSON data (a take's start)."""
        from instrument.snapshot import encode_fields

        return encode_fields(self)

    def load_state_dict(self, data: dict[str, Any]) -> None:
        from instrument.snapshot import restore_fields

        restore_fields(self, data)

    # --- writing (the mapping engine calls these) ----------------------------------------------------------
    def set(self, name: str, value: Any, time: float, *, smoothing: float = 0.0, source: str | None = None,
            force_action: bool = False) -> None:
        """Aim ``name`` at ``value`` from ``time`` on; continuous params glide there over ``smoothing`` s.
        A number that is NaN or infinite (a broken source) is ignored: it would poison the geometry."""
        p = PARAMS[name]
        numeric = p.kind in ("continuous", "integer")
        if numeric and not (math.isfinite(float(value)) and math.isfinite(time) and math.isfinite(smoothing)):
            return
        self._owner[name] = source
        if source not in _INTERNAL:
            self.scenes.fades.pop(name, None)  # a hand takes a crossfading parameter over
            if source != "ramp":  # (the HUD names what a hand set, not what a scene or a loop moves)
                self.touched = name
        if numeric:
            s = self._num[name]
            s.advance(self._event_time(s, time))
            before = int(round(s.target)) if p.kind == "integer" else None
            low, high = self.range(name)
            s.target = min(max(float(value), low), high)
            s.tau = smoothing if p.kind == "continuous" else 0.0
            if s.tau <= 0.0:
                s.value = s.target
            if p.kind == "integer" and (force_action or int(round(s.target)) != before):
                self._queue(name, int(round(s.target)), time, source)
            if name == "tempo":
                self._rebase_beat(time)
            elif (p.kind == "continuous" and by_hand(source) and self._other["gesture_record"]
                  and name not in SESSION_PARAMS):
                self.gestures.capture(name, s.target, self.beat(time), int(self.value("gesture_beats")))
            return
        if p.kind == "trigger":
            self._queue(name, None, time, source)
            return
        value = bool(value) if p.kind == "toggle" else value
        if value != self._other[name] or force_action:
            self._other[name] = value
            self._queue(name, value, time, source)

    def nudge(self, name: str, key: str, amount: float, time: float, *, smoothing: float = 0.0) -> None:
        """An additive layer on a continuous param (pitch bend springing back to 0), one per ``key``."""
        if not (math.isfinite(amount) and math.isfinite(time) and math.isfinite(smoothing)):
            return
        self.touched = name
        s = self._nudges.get((name, key))
        if s is None:
            s = self._nudges[(name, key)] = _Smoothed(0.0, 0.0, time=time)
        s.advance(self._event_time(s, time))
        s.target, s.tau = float(amount), smoothing
        if smoothing <= 0.0:
            s.value = s.target

    def toggle(self, name: str, time: float, source: str | None = None) -> None:
        self.set(name, not self._other[name], time, source=source)

    def step(self, name: str, amount: float, time: float, *, wrap: bool = False, source: str | None = None,
             smoothing: float = 0.0) -> None:
        """Move ``name`` by ``amount``: choices move by whole places (wrapping), numbers add and clamp
        (``wrap`` makes integers go round)."""
        p = PARAMS[name]
        if p.kind == "choice":
            i = p.choices.index(self._other[name]) + int(round(amount))
            self.set(name, p.choices[i % len(p.choices)], time, source=source)
        elif p.kind == "toggle":
            self.toggle(name, time, source)
        else:
            v = self._num[name].target + amount
            if wrap and p.kind == "integer":
                low, high = self.range(name)
                v = low + (int(round(v - low)) % (int(high - low) + 1))
            self.set(name, v, time, smoothing=smoothing, source=source)

    def start_ramp(self, key: str, name: str, rate: float, time: float) -> None:
        """Move ``name`` at ``rate`` units per second until ``stop_ramp(key)`` (a held arrow key)."""
        self.touched = name
        self._ramps[key] = _Ramp(name, rate, time)

    def stop_ramp(self, key: str, time: float) -> None:
        ramp = self._ramps.pop(key, None)
        if ramp is not None:
            self._run_ramp(ramp, time)

    def advance(self, now: float) -> None:
        """Bring every smoothed value to the frame time ``now`` (seconds, the events' clock)."""
        for ramp in self._ramps.values():
            self._run_ramp(ramp, now)
        self.scenes.advance(self, now)
        for name, value in self.gestures.values(self.beat(now)).items():
            self.set(name, value, now, source="gesture")
        for s in self._num.values():
            s.advance(now)
        for key, s in list(self._nudges.items()):
            s.advance(now)
            if s.target == 0.0 and s.value == 0.0:
                del self._nudges[key]
        if self._beat_time is None:
            self._beat_time = now
        if self.following_clock:  # follow the clock, so that the count goes on from there if it stops
            self._beat, self._beat_time = float(self.clock.beat(now)), now  # type: ignore[union-attr]
        self._rebase_beat(now)
        self.now = now
        for name, value, source in self.cues.ready(self.beat(now)):  # quantised actions whose beat came
            self._do(name, value, now, source)

    # --- inside --------------------------------------------------------------------------------------------
    def _queue(self, name: str, value: object, time: float, source: str | None) -> None:
        """Act on a change or trigger of ``name`` now, or at the next beat or bar when it is quantised (a
        scene's own anchor change never waits: the recall did)."""
        if name == "scene_recall" and self._other["shift"]:
            name = "scene_store"
        quantise = self._other["quantise"]
        if source == "scene" or not self.cues.hold(name, value, source, self.beat(time), quantise):
            self._do(name, value, time, source)

    def _do(self, name: str, value: object, time: float, source: str | None) -> None:
        if name == "tap":
            self._tap(time)
        elif name == "next":
            self._actions.append(("anchor", NEXT))
        elif name == "scene_store":
            self.scenes.store(self, int(value))  # type: ignore[call-overload]
        elif name == "scene_recall":
            self.scenes.recall(self, int(value), time)  # type: ignore[call-overload]
        elif name == "gesture_clear":
            self.gestures.clear()
        else:
            if name == "gesture_record" and not value:
                self.gestures.end_pass()
            self._actions.append((name, value))

    def _tap(self, time: float) -> None:
        """A tap: from the fourth in time on, it sets the tempo, and it lands on a beat."""
        bpm = None if self.following_clock else tap_tempo(self.cues.taps, time)
        if bpm is not None:
            self.set("tempo", bpm, time, source="tap")
            beat = self.beat(time)
            self._beat += round(beat) - beat

    def _event_time(self, s: _Smoothed, time: float) -> float:
        # An event stamped before the last frame it missed is applied at that frame's time: values never
        # run backwards, and a replay that applies the same events before the same frames agrees.
        return time if s.time is None else max(time, s.time)

    def _run_ramp(self, ramp: _Ramp, t: float) -> None:
        if t > ramp.time:
            target = self._num[ramp.name].target + ramp.rate * (t - ramp.time)
            self.set(ramp.name, target, t, smoothing=self._num[ramp.name].tau, source="ramp")
            ramp.time = t

    def _rebase_beat(self, t: float) -> None:
        if self._beat_time is not None and t > self._beat_time:
            self._beat += (t - self._beat_time) * self.value("tempo") / 60.0
            self._beat_time = t

    @property
    def following_clock(self) -> bool:
        """Tempo and beat come from a running MIDI clock (tempo source "clock")."""
        c = self.clock
        return self.tempo_source == "clock" and c is not None and bool(c.running) and bool(c.tempo_bpm)
