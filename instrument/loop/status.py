"""What the HUD and the log say about the loop: rates, messages that expire, the last control moved, the
picture's place in words, the Status.

``StatusBoard`` belongs to the render thread: the loop tells it what happened (``tick`` per published frame,
``error``, ``notice``, ``unmapped``, ``moved``) and ``build`` makes the immutable ``mailbox.Status`` the
display reads. Every message leaves the HUD on its own (an error ``ERROR_SECONDS`` after it last happened,
a hint or a confirmation sooner); a message with a ``key`` also leaves when what it is about is fixed
(``clear``: a mapping file that reads again clears its error).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from instrument.events import ControlEvent
from instrument.mailbox import Status
from instrument.params import PARAMS
from instrument.performance import Coords, anchor_position

log = logging.getLogger("instrument.render")

ERRORS_KEPT = 5  # the newest errors on the HUD
ERROR_SECONDS = 15.0  # an error stays on the HUD this long after it last happened
START_SECONDS = 30.0  # a problem found at the start (an anchor that did not load) stays this long
HINT_SECONDS = 8.0  # "CC 30 does nothing here"
NOTICE_SECONDS = 4.0  # "mapping reloaded"
PENDING_SECONDS = 1.0  # a control that has not moved the picture within this long is not timed
MOVED_SECONDS = 5.0  # "noise 0.42 <- fader 3 (CC 2)" stays this long after the control last moved
AT_ANCHOR = 1e-3  # path positions this close to an anchor's are "at" it
# A parameter that shows nothing while another is 0: said beside it, so that a knob does not seem dead.
NEEDS = {"offset_channel": "offset", "walk_speed": "noise"}


@dataclasses.dataclass
class _Message:
    text: str
    until: float  # time it leaves the HUD
    key: str | None = None  # what it is about (clear(key) removes it)
    count: int = 1

    def __str__(self) -> str:
        return self.text if self.count == 1 else f"{self.text} (x{self.count})"


def value_text(param: str, value: Any, names: Sequence[str] = ()) -> str:
    """A parameter's value as the HUD shows it: anchors and banks counted from 1 (with the anchor's name),
    toggles on/off, numbers to two places."""
    p = PARAMS.get(param)
    if value is None or p is None or p.kind == "trigger":
        return ""
    if param == "anchor":
        k = int(value)
        return f"{k + 1}" + (f" ({names[k % len(names)]})" if names else "")
    if param == "bank":
        return str(int(value) + 1)
    if p.kind == "toggle":
        return "on" if value else "off"
    if p.kind == "continuous":
        return f"{float(value):.2f}"
    return str(value)


def place(coords: Coords, names: Sequence[str]) -> str:
    """Where on the path the picture is, in words: "at pastry", "between dog and pastry (40%)"."""
    n = len(names)
    if n == 0:
        return f"s={coords.s:.3f}"
    loop = coords.path == "loop"
    for k in range(n):
        d = abs(coords.s - anchor_position(k, n, loop))
        if (min(d, 1 - d) if loop else d) <= AT_ANCHOR:
            return f"at {names[k]}"
    span = coords.s * (n if loop else n - 1)
    i = min(int(span), n - 1 if loop else n - 2)
    return f"between {names[i]} and {names[(i + 1) % n]} ({span - i:.0%})"


def describe(coords: Coords, names: Sequence[str] = (), *, held: bool = False, mode: str = "relative",
             channels: int = 0) -> str:
    """The picture's coordinates in words for the HUD: where it is, which anchor was picked, what else
    moves it. ``held``: the picked anchor is held until the position control moves (absolute mode)."""
    picked = names[coords.home] if coords.home < len(names) else str(coords.home + 1)
    if coords.atlas:
        text = f"atlas ({coords.atlas_x:.2f}, {coords.atlas_y:.2f})"
    elif coords.glide < 1:
        text = f"{coords.path}: gliding to {picked} ({coords.glide:.0%})"
    else:
        text = f"{coords.path}: {place(coords, names)}"
        if held:
            text += f", held until the position control moves ({mode})"
        elif not text.endswith(f"at {picked}"):
            text += f", picked {picked} (position {mode})"
    if coords.noise:
        text += f"  noise {coords.noise:.2f}"
    if coords.offset:
        of = f"/{channels}" if channels else ""
        text += f"  offset ch {coords.offset_channel}{of} {coords.offset:+.2f}"
    if coords.lock_channels or coords.lock_region != "none":
        text += f"  lock {coords.lock_channels} ch/{coords.lock_region}"
    return text


class ControlTimes:
    """Which control events each published frame is the first to show, for the display's control -> screen
    timing (``mailbox.Frame.controls_time``): the first frame whose coordinates moved after them (a smoothed
    control moves them a frame later; a control that moves nothing is forgotten after ``PENDING_SECONDS``).
    Events from before ``start`` (applied at the first frame after a model loaded) are not timed: they waited
    for the model, not for the loop."""

    def __init__(self, start: float) -> None:
        self.start = start
        self._pending: float | None = None  # oldest event whose effect no frame has shown yet
        self._coords: Coords | None = None  # the last frame's

    def frame(self, events: Sequence[ControlEvent], coords: Coords, exact: bool,
              now: float) -> dict[str, Any]:
        """The timing fields of a ``mailbox.Frame`` at ``coords`` published at ``now`` with ``events``
        applied (a blend of other frames: ``exact`` False): latency, controls_time, exact."""
        latency = now - min(e.time for e in events) if events else None
        times = [e.time for e in events if e.time >= self.start]
        if times and self._pending is None:
            self._pending = min(times)
        shown = None
        if self._pending is not None and coords != self._coords:
            shown, self._pending = self._pending, None
        elif self._pending is not None and now - self._pending > PENDING_SECONDS:
            self._pending = None
        self._coords = coords
        return {"latency": latency, "controls_time": shown, "exact": exact}


def unmapped_text(event: ControlEvent) -> str | None:
    """"CC 30 (channel 1)" for a MIDI control worth naming, else None (clock, note-offs, keys)."""
    msg = event.message
    kind = getattr(msg, "type", "")
    if kind == "control_change":
        what = f"CC {msg.control}"
    elif kind == "note_on" and msg.velocity:
        what = f"note {msg.note}"
    elif kind == "pitchwheel":
        what = "pitch bend"
    elif kind == "program_change":
        what = f"program {msg.program}"
    else:
        return None
    return f"{what} (channel {msg.channel + 1})"


class StatusBoard:
    """Rates, messages and the last control moved of one session, and the ``Status`` built from
    them. ``clock()`` gives the time messages expire by (the loop's clock)."""

    def __init__(self, problems: Sequence[str] = (), clock: Callable[[], float] = time.monotonic, *,
                 fullscreen: bool = False) -> None:
        self.clock = clock
        self.ui = {"hud": True, "help": False, "fullscreen": fullscreen}  # as the controls set them
        self.ui_version = 0  # changes when the controls change ``ui``
        self._errors: list[_Message] = []
        self._notices: list[_Message] = []
        self._moved: tuple[str, str, float] | None = None  # (param, control in words, when)
        self.fps = 0.0  # frames published per second
        self._step: float | None = None  # mean interval between published frames
        self._last_publish: float | None = None
        self._decoded: list[tuple[float, int]] = []  # (time, exact decodes)
        self._told_unmapped: set[str] = set()  # MIDI ports told of a control the mapping does not use
        self._drops_said: dict[str, int] = {}  # events dropped in floods, as last said
        self._drops_said_at = float("-inf")
        for problem in problems:
            self.error(problem, seconds=START_SECONDS)

    # -- messages --------------------------------------------------------------------------------------------

    def error(self, text: str, level: int = logging.ERROR, *, key: str | None = None,
              seconds: float = ERROR_SECONDS) -> None:
        """Log ``text`` and show it for ``seconds``; the same failure again is counted (and shown longer),
        not repeated."""
        now = self.clock()
        same = next((m for m in self._errors if m.text == text and m.until > now), None)
        if same is not None:
            same.count += 1
            same.until = now + seconds
            return
        log.log(level, "%s", text)
        self._errors = [m for m in self._errors if m.until > now][-(ERRORS_KEPT - 1):]
        self._errors.append(_Message(text, now + seconds, key))

    def notice(self, text: str, seconds: float = NOTICE_SECONDS) -> None:
        """Log ``text`` and confirm it on the HUD for ``seconds``."""
        log.info("%s", text)
        now = self.clock()
        self._notices = [m for m in self._notices if m.until > now and m.text != text] + [
            _Message(text, now + seconds)]

    def clear(self, key: str) -> None:
        """Take the messages about ``key`` off the HUD: what they said is fixed."""
        self._errors = [m for m in self._errors if m.key != key]

    @property
    def errors(self) -> tuple[str, ...]:
        """The errors on the HUD now, oldest first."""
        now = self.clock()
        return tuple(str(m) for m in self._errors if m.until > now)

    @property
    def notices(self) -> tuple[str, ...]:
        now = self.clock()
        return tuple(m.text for m in self._notices if m.until > now)

    def unmapped(self, event: ControlEvent, mapping_name: str, mapping_path: str) -> None:
        """Say once per MIDI port (and mapping) that a control does nothing here: a controller plugged in
        after a start on the keyboard mapping, or one the mapping does not know. A port that a preset is
        made for gets that preset's name."""
        what = unmapped_text(event)
        if what is None or event.source in self._told_unmapped:
            return
        from instrument.loop.interim import match_preset
        from instrument.mapping import DEFAULT_MAPPING

        self._told_unmapped.add(event.source)
        preset = match_preset([event.source])
        hint = "map it with `latent-instrument learn`"
        if preset is not None and Path(preset).resolve() != Path(mapping_path).resolve():
            hint = f"its preset: play with --mapping mappings/{Path(preset).name}"
        elif Path(mapping_path).resolve() != Path(DEFAULT_MAPPING).resolve():
            hint = f"play with --mapping FILE (mappings/default.yaml fits any controller) or {hint}"
        self.error(f"{event.source}: {what} does nothing in {mapping_name}; {hint}", level=logging.WARNING,
                   key=f"unmapped {event.source}", seconds=HINT_SECONDS)

    def drops(self, counts: dict[str, int], now: float) -> None:
        """Say, at most once a second, how many control events a flood dropped since it was last said
        (``counts``: every drop so far, by message type)."""
        if now - self._drops_said_at < 1.0:
            return
        new = {kind: n - self._drops_said.get(kind, 0) for kind, n in counts.items()
               if n > self._drops_said.get(kind, 0)}
        if new:
            self._drops_said, self._drops_said_at = dict(counts), now
            kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(new.items()))
            self.error(f"control flood: {sum(new.values())} events dropped ({kinds}); no note left hanging")

    def mapping_changed(self, name: str) -> None:
        """The mapping file ``name`` was read again: its error is fixed, controls it ignores are named
        again, and the HUD says so."""
        self._told_unmapped.clear()
        self.clear("mapping")
        self.notice(f"mapping reloaded: {name}")

    def moved(self, param: str, control: str) -> None:
        """A control set ``param`` ("" when a pickup control waits to meet its parameter)."""
        self._moved = (param, control, self.clock())

    def moved_line(self, values: dict[str, Any] | None, names: Sequence[str]) -> str:
        """"noise 0.42 <- fader 3 (CC 2)": the last control moved and the value it set, for a few seconds."""
        if self._moved is None or values is None or self.clock() - self._moved[2] > MOVED_SECONDS:
            return ""
        param, control, _ = self._moved
        if not param:
            return control
        text = f"{param} {value_text(param, values.get(param), names)}".rstrip() + f" <- {control}"
        needs = NEEDS.get(param)
        if needs is not None and not values.get(needs):
            text += f" (nothing to see while {needs} is 0)"
        return text

    def follow_ui(self, changes: dict[str, bool]) -> None:
        """The controls turned the HUD, help or full screen on or off (the window follows)."""
        if changes:
            self.ui.update(changes)
            self.ui_version += 1

    # -- rates -----------------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """A frame was published at ``now``."""
        last, self._last_publish = self._last_publish, now
        if last is not None and now > last:
            # Average the intervals, not the rates: a burst of cached frames must not read as 200 fps.
            step = now - last
            self._step = step if self._step is None else 0.9 * self._step + 0.1 * step
            self.fps = 1 / self._step

    def exact_fps(self, now: float, decoded: int | None) -> float | None:
        """Exact decodes per second over the last two seconds, given the count of exact decodes so far (None
        where every frame is decoded: no blends in between)."""
        if decoded is None:
            return None
        self._decoded.append((now, decoded))
        while len(self._decoded) > 2 and now - self._decoded[1][0] >= 2.0:
            self._decoded.pop(0)
        (t0, d0), (t1, d1) = self._decoded[0], self._decoded[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def build(self, phase: str, message: str, **fields: Any) -> Status:
        """The Status for the display; ``fields`` are Status fields the loop knows (decoder, frames...)."""
        return Status(phase=phase, message=message, render_fps=self.fps,
                      errors=self.errors, notices=self.notices, ui=tuple(self.ui.items()),
                      ui_version=self.ui_version, **fields)


def session_status(board: StatusBoard, parts: Any, phase: str, message: str, coords: Coords | None,
                   values: dict[str, Any] | None, now: float, **fields: Any) -> Status:
    """The Status of a session whose stages (``loop.parts.Parts``) are built; ``fields``: the loop's own
    (frames, midi, quit)."""
    decoding, progressive = parts.decoding, parts.decoding.progressive
    controls, performance = parts.controls, parts.lab.performance
    lab_lines, minimap = parts.lab.hud(coords, values)
    mode = str(values.get("position_mode", "relative")) if values else "relative"
    where = describe(coords, parts.names, held=performance.held is not None, mode=mode,
                     channels=int(decoding.anchors.shape[1])) if coords is not None else ""
    mapping = controls.name + (f" ({controls.origin})" if controls.origin else "")
    if controls.broken:
        mapping += " - the file has an error: this plays until it reads again"
    return board.build(
        phase, message,
        decoder=decoding.fast.label,
        full_decoder=decoding.full.label if decoding.full is not None else None,
        mapping=mapping,
        anchors=tuple(parts.names),
        exact_fps=board.exact_fps(now, progressive.decoded if progressive is not None else None),
        where=where,
        frozen=bool(values and values.get("freeze")),
        moved=board.moved_line(values, parts.names),
        recording=parts.takes.status(),
        keys=controls.keys(),
        midi_help=controls.midi_help(),
        lab=lab_lines,
        minimap=minimap,
        **(parts.sculpting.status() if parts.sculpting is not None else {}),
        scenes=controls.scenes_line(),
        **fields,
    )
