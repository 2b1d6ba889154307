"""The controls stage: control events through the mapping into the values a frame is made from.

``Controls`` is the mapping side of a session in one object: control state, mapping engine and the mapping
file's watcher. ``Controls.read(n, t)`` makes frame ``n``'s ``FrameInput``: it drains the event queue,
applies each event, takes a saved edit of the mapping file, advances the state to ``t`` and sorts the
actions the loop reacts to. It reports what happened (events, reloads, unused controls, errors) and leaves
logging and the HUD to the renderer, so it runs the same live and offline.

``fit(ranges)`` narrows parameters to the model's ranges (``params.model_ranges``): a knob written for
``offset_channel``'s whole range then spans the model's latent channels, live and in a re-render alike.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrument.events import AudioFeatures, ControlEvent, EventQueue, KeyInput, PointerInput
from instrument.params import PARAMS

if TYPE_CHECKING:
    from instrument.mapping import Mapping

UI_TOGGLES = ("hud", "help", "fullscreen")  # parameters the window follows


@dataclasses.dataclass
class FrameInput:
    """What the controls say for frame ``n`` at time ``t``."""

    n: int
    t: float
    events: list[ControlEvent]  # applied, oldest first
    values: dict[str, Any]  # every parameter's value at t, with tempo and beat
    pick: int | None = None  # an anchor chosen in this frame (a note), even the current one
    record_toggles: int = 0  # record on/off presses: the loop runs them between frames
    quit: bool = False
    ui: dict[str, bool] = dataclasses.field(default_factory=dict)  # hud/help/fullscreen changes
    reload: str | None = None  # the mapping's new text after a good edit of its file
    unmapped: list[ControlEvent] = dataclasses.field(default_factory=list)  # events the mapping ignores
    errors: list[str] = dataclasses.field(default_factory=list)
    mapping_error: str | None = None  # the mapping file is broken (the last good mapping plays on)
    # The last control used in this frame: (the parameter it set, the control in words); the parameter is
    # "" when a pickup control has not met its parameter yet (then the words say which parameter it waits on).
    moved: tuple[str, str] | None = None


class Controls:
    """Control state, mapping engine and mapping watcher. Live, ``queue`` gets the mapping's exact (never
    coalesced) controls, the file at ``watch_path`` is read again when it is saved, and the scenes file at
    ``scenes`` (``instrument.scenes``) fills the scene bank and is written after each store. Offline
    (replay), the mapping comes from the take's text and reloads from its log, the scenes from its snapshot.
    """

    def __init__(self, mapping: Mapping, *, queue: EventQueue | None = None,
                 watch_path: str | Path | None = None, problem: str | None = None, origin: str = "",
                 scenes: str | Path | None = None) -> None:
        from instrument.control import ControlState
        from instrument.mapping import MappingEngine, MappingWatcher
        from instrument.midi.clock import MidiClock
        from instrument.scenes import SceneFile

        self.state = ControlState(clock=MidiClock())
        for name, value in mapping.initial:  # where the mapping says a session starts
            self.state.set(name, value, 0.0)
        self.state.touched = None
        self.engine = MappingEngine(mapping, self.state)
        self.queue = queue
        # Watch the file asked for, even when it was broken at the start and ``mapping`` is a fallback.
        self.watcher = MappingWatcher(watch_path) if watch_path else None
        self.broken = problem  # why the file asked for is not the one playing; None once it plays
        self._told = problem  # a problem not yet reported in a FrameInput
        self.origin = origin  # why this mapping plays, in words ("made for port nanoKONTROL2"), or ""
        self._help: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] | None = None
        self._exact()
        self.scene_file = SceneFile(scenes) if scenes else None
        unread = self.scene_file.load(self.state.scenes) if self.scene_file is not None else None
        self._problems = [unread] if unread else []  # said with the first frame

    @property
    def mapping(self) -> Mapping:
        return self.engine.mapping

    @property
    def path(self) -> str:
        return self.mapping.path

    @property
    def name(self) -> str:
        return self.mapping.name or Path(self.mapping.path).name

    def _exact(self) -> None:
        if self.queue is not None:
            self.queue.set_exact_controls(self.engine.exact_controls())

    # -- one frame -------------------------------------------------------------------------------------------

    def read(self, n: int, t: float) -> FrameInput:
        """Frame ``n``'s input: drain and apply the queue's events, take a mapping edit, advance to ``t``."""
        frame = FrameInput(n, t, self._drain(), {}, errors=self._problems)
        frame.mapping_error, self._told, self._problems = self._told, None, []
        for event in frame.events:
            self.state.touched = None
            try:
                if not self.apply(event):
                    frame.unmapped.append(event)
                    continue
            except Exception as exc:  # one bad event must not stop the instrument
                frame.errors.append(f"event {event.message}: {type(exc).__name__}: {exc}")
                continue
            frame.moved = self._moved(event) or frame.moved
        self._poll(frame)
        self.advance(t)
        if self.scene_file is not None and (problem := self.scene_file.sync(self.state.scenes)):
            frame.errors.append(problem)
        for name, value in self.pop_actions():
            if name == "anchor":
                frame.pick = int(value)
            elif name == "record":
                frame.record_toggles += 1
            elif name == "quit":
                frame.quit = True
            elif name in UI_TOGGLES:
                frame.ui[name] = bool(value)
        frame.values = self.values(t)
        return frame

    def _drain(self) -> list[ControlEvent]:
        """The queue's events; audio features only while the mapping binds some (else they are neither
        applied nor logged, and a still picture with sound coming in still rests)."""
        events = self.queue.drain() if self.queue is not None else []
        if self.engine.hears_audio:
            return events
        return [e for e in events if not isinstance(e.message, AudioFeatures)]

    def _poll(self, frame: FrameInput) -> None:
        from instrument.mapping import MappingError

        change = self.watcher.poll() if self.watcher is not None else None
        if change is None:
            return
        if isinstance(change, MappingError):
            self.broken = f"{change} (keeping the last good mapping)"
            frame.mapping_error = self.broken
            return
        self.use(change)
        self.broken = None
        frame.reload = change.text

    def _moved(self, event: ControlEvent) -> tuple[str, str] | None:
        """What the HUD says about a used event: (the parameter it set, the control in words); sound moves
        its parameters every hop, so the HUD keeps naming the hand's last control instead."""
        if isinstance(event.message, AudioFeatures):
            return None
        param = self.state.touched
        if param is not None:
            return param, self.control_text(event, param)
        waiting = self._pickup_waiting(event)
        if waiting is not None:
            return "", f"{self.control_text(event, waiting)} picks up {waiting} when it meets its value"
        return None

    def _matching(self, event: ControlEvent) -> list:
        """The mapping's MIDI controls that answer ``event`` (CCs, 14-bit pairs and notes)."""
        msg = event.message
        kind = getattr(msg, "type", "")
        if kind == "control_change":
            sources, number = ("cc", "cc14"), msg.control
        elif kind in ("note_on", "note_off"):
            sources, number = ("note",), msg.note
        else:
            return []
        return [c for c in self.mapping.controls if c.source in sources and number in (c.number, c.lsb)
                and c.channel in (None, msg.channel)]

    def _pickup_waiting(self, event: ControlEvent) -> str | None:
        """The parameter that a pickup control, moved by ``event`` without setting anything, waits to meet."""
        waiting = [c.param for c in self._matching(event) if c.takeover == "pickup" and c.action == "follow"]
        return waiting[0] if waiting else None

    def control_text(self, event: ControlEvent, param: str) -> str:
        """``event``'s control in words, with its label where the mapping gives one: "fader 3 (CC 2)",
        "note 62", "key space", "mouse"."""
        msg = event.message
        if isinstance(msg, KeyInput):
            return f"key {msg.key}"
        if isinstance(msg, PointerInput):
            return "mouse"
        kind = getattr(msg, "type", "")
        if kind == "control_change":
            what = f"CC {msg.control}"
        elif kind in ("note_on", "note_off"):
            what = f"note {msg.note}"
        elif kind == "program_change":
            what = f"program {msg.program}"
        else:
            what = {"pitchwheel": "pitch bend", "polytouch": "poly aftertouch"}.get(kind, kind)
        labels = [c.label for c in self._matching(event) if c.param == param and c.label]
        if not labels and kind == "note_on":
            labels = [r.label for r in self.mapping.notes if r.low <= msg.note <= r.high and r.label]
        return f"{labels[0]} ({what})" if labels else what

    # -- the parts -------------------------------------------------------------------------------------------

    def apply(self, event: ControlEvent) -> bool:
        """Apply ``event``; True if the mapping used it."""
        return self.engine.apply(event)

    def use(self, mapping: Mapping) -> None:
        """Play on ``mapping`` from now on (values stay where they are), fitted to the session's ranges."""
        self.engine.mapping = self._fitted(mapping)
        self._help = None
        self._exact()

    def fit(self, ranges: dict[str, tuple[float, float]]) -> None:
        """Narrow parameters to ``ranges`` (``params.model_ranges``): their values stay inside, and controls
        written for a parameter's whole range span the narrower one."""
        self.state.ranges = dict(ranges)
        self.use(self.mapping)

    def _fitted(self, mapping: Mapping) -> Mapping:
        ranges = self.state.ranges

        def fit(entry):
            p = PARAMS[entry.param]
            whole = (entry.low, entry.high) == (p.low, p.high)
            if entry.param not in ranges or not whole or getattr(entry, "mode", "") == "nudge":
                return entry
            low, high = ranges[entry.param]
            return dataclasses.replace(entry, low=low, high=high)

        return dataclasses.replace(mapping, controls=tuple(fit(c) for c in mapping.controls),
                                   pointer=tuple(fit(a) for a in mapping.pointer))

    def use_text(self, text: str, file: str) -> None:
        """Play on the mapping written in ``text`` (a reload logged in a take)."""
        from instrument.mapping import parse_mapping

        mapping, errors = parse_mapping(text, file)
        if errors:
            raise errors[0]
        self.use(mapping)

    def advance(self, t: float) -> None:
        self.state.advance(t)

    def pop_actions(self) -> list[tuple[str, object]]:
        return self.state.pop_actions()

    def values(self, t: float) -> dict[str, Any]:
        """Every parameter's value at ``t`` plus ``tempo`` and ``beat``: what Performance.step reads."""
        values = self.state.snapshot()
        values["beat"] = self.state.beat(t)
        return values

    def snapshot(self) -> dict[str, Any]:
        """The state and the engine's decoding state as JSON data: where a take starts from."""
        return {"state": self.state.state_dict(), "engine": self.engine.state_dict()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Continue from a ``snapshot`` taken on the same mapping."""
        self.state.load_state_dict(snapshot["state"])
        self.engine.load_state_dict(snapshot["engine"])

    def drops(self, since: dict[str, int] | None = None) -> dict[str, int]:
        """Events the queue dropped in a flood, by message type (``EventQueue.drops``); none offline."""
        return self.queue.drops(since) if self.queue is not None else {}

    def close(self) -> None:
        """Stop watching the mapping file."""
        if self.watcher is not None:
            self.watcher.close()

    def scenes_line(self) -> str:
        """The scenes and gesture loops in words, for the HUD."""
        return "   ".join(filter(None, (self.state.scenes.line(), self.state.gestures.line())))

    def describe(self) -> dict[str, Any]:
        """The mapping for a take's sidecar: file, name and the whole text."""
        return {"file": self.mapping.path, "name": self.name, "text": self.mapping.text}

    def keys(self) -> tuple[tuple[str, str], ...]:
        """(key, what it does) for the help overlay (anchors counted from 1, as on screen)."""
        return self._described()[0]

    def midi_help(self) -> tuple[tuple[str, str], ...]:
        """(control, what it does) for each MIDI control and note range, for the help overlay."""
        return self._described()[1]

    def _described(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        from instrument.loop.interim import describe_controls, describe_keys

        if self._help is None:  # (once per mapping: the HUD asks for it with every status)
            self._help = tuple(describe_keys(self.mapping)), tuple(describe_controls(self.mapping))
        return self._help
