"""The controls stage: control events through the mapping into the values a frame is made from.

``Controls`` is the mapping side of a session in one object: control state, mapping engine and the mapping
file's watcher. ``Controls.read(n, t)`` makes frame ``n``'s ``FrameInput``: it drains the event queue,
applies each event, takes a saved edit of the mapping file, advances the state to ``t`` and sorts the
actions the loop reacts to. It reports what happened (events, reloads, unused controls, errors) and leaves
logging and the HUD to the renderer, so it runs the same live and offline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrument.events import ControlEvent, EventQueue

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


class Controls:
    """Control state, mapping engine and mapping watcher. Live, ``queue`` gets the mapping's exact (never
    coalesced) controls and the file at ``watch_path`` is read again when it is saved. Offline (replay), the
    mapping comes from the take's text and reloads from its log.
    """

    def __init__(self, mapping: Mapping, *, queue: EventQueue | None = None,
                 watch_path: str | Path | None = None) -> None:
        from instrument.control import ControlState
        from instrument.mapping import MappingEngine, MappingWatcher
        from instrument.midi.clock import MidiClock

        self.state = ControlState(clock=MidiClock())
        for name, value in mapping.initial:  # where the mapping says a session starts
            self.state.set(name, value, 0.0)
        self.engine = MappingEngine(mapping, self.state)
        self.queue = queue
        # Watch the file asked for, even when it was broken at the start and ``mapping`` is a fallback.
        self.watcher = MappingWatcher(watch_path) if watch_path else None
        self._exact()

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
        frame = FrameInput(n, t, self.queue.drain() if self.queue is not None else [], {})
        for event in frame.events:
            try:
                if not self.apply(event):
                    frame.unmapped.append(event)
            except Exception as exc:  # one bad event must not stop the instrument
                frame.errors.append(f"event {event.message}: {type(exc).__name__}: {exc}")
        self._poll(frame)
        self.advance(t)
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

    def _poll(self, frame: FrameInput) -> None:
        from instrument.mapping import MappingError

        change = self.watcher.poll() if self.watcher is not None else None
        if change is None:
            return
        if isinstance(change, MappingError):
            frame.errors.append(f"{change} (keeping the last good mapping)")
            return
        self.use(change)
        frame.reload = change.text

    # -- the parts -------------------------------------------------------------------------------------------

    def apply(self, event: ControlEvent) -> bool:
        """Apply ``event``; True if the mapping used it."""
        return self.engine.apply(event)

    def use(self, mapping: Mapping) -> None:
        """Play on ``mapping`` from now on (values stay where they are)."""
        self.engine.mapping = mapping
        self._exact()

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

    def describe(self) -> dict[str, Any]:
        """The mapping for a take's sidecar: file, name and the whole text."""
        return {"file": self.mapping.path, "name": self.name, "text": self.mapping.text}

    def keys(self) -> tuple[tuple[str, str], ...]:
        """(key, what it does) for the help overlay."""
        out = []
        for k in self.mapping.keys:
            what = k.label or {
                "set": f"{k.param} = {k.value}",
                "step": f"{k.param} {k.step:+g}" if k.step else f"next {k.param}",
                "ramp": f"{k.param} {k.rate or 0:+g}/s while held",
                "hold": f"{k.param} while held",
                "toggle": f"{k.param} on/off",
            }.get(k.action, k.param)
            out.append((k.key, what))
        return tuple(out)
