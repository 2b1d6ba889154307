"""What the HUD and the log say about the loop: rates, latency, errors (each said once), hints, the Status.

``StatusBoard`` belongs to the render thread: the loop tells it what happened (``tick`` per published frame,
``error``, ``unmapped``) and ``build`` makes the immutable ``mailbox.Status`` the display reads.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instrument.events import ControlEvent
from instrument.mailbox import Status
from instrument.performance import Coords

log = logging.getLogger("instrument.render")

ERRORS_KEPT = 5  # the newest errors on the HUD


def describe(coords: Coords, names: Sequence[str] = ()) -> str:
    """Coordinates in words for the HUD."""
    home = names[coords.home] if coords.home < len(names) else str(coords.home)
    text = f"{coords.path} s={coords.s:.3f}  anchor {home}"
    if coords.glide < 1:
        text += f" gliding {coords.glide:.2f}"
    if coords.noise:
        text += f" noise {coords.noise:.2f}"
    if coords.offset:
        text += f" offset ch{coords.offset_channel} {coords.offset:+.2f}"
    if coords.lock_channels or coords.lock_region != "none":
        text += f" lock {coords.lock_channels}ch/{coords.lock_region}"
    return text


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
    """Rates, latency and messages of one session, and the ``Status`` built from them."""

    def __init__(self, problems: Sequence[str] = ()) -> None:
        self.errors: collections.deque[str] = collections.deque(maxlen=ERRORS_KEPT)
        self._repeats = 0
        self.fps = 0.0  # frames published per second
        self.latency: float | None = None  # control event -> published frame, seconds (latest)
        self._step: float | None = None  # mean interval between published frames
        self._last_publish: float | None = None
        self._decoded: collections.deque[tuple[float, int]] = collections.deque()  # (time, exact decodes)
        self._told_unmapped: set[str] = set()  # MIDI ports told of a control the mapping does not use
        self._drops_said: dict[str, int] = {}  # events dropped in floods, as last said
        self._drops_said_at = float("-inf")
        for problem in problems:
            self.error(problem)

    def error(self, text: str, level: int = logging.ERROR) -> None:
        """Log ``text`` and show it; the same failure frame after frame is counted, not repeated."""
        if self.errors and self.errors[-1].split(" (x")[0] == text:
            self._repeats += 1
            self.errors[-1] = f"{text} (x{self._repeats + 1})"
            return
        log.log(level, "%s", text)
        self._repeats = 0
        self.errors.append(text)

    def unmapped(self, event: ControlEvent, mapping_name: str, mapping_path: str) -> None:
        """Say once per MIDI port (and mapping) that a control does nothing here: a controller plugged in
        after a start on the keyboard mapping, or one the mapping does not know."""
        what = unmapped_text(event)
        if what is None or event.source in self._told_unmapped:
            return
        from instrument.mapping import DEFAULT_MAPPING

        self._told_unmapped.add(event.source)
        hint = "map it with `latent-instrument learn`"
        if Path(mapping_path).resolve() != Path(DEFAULT_MAPPING).resolve():
            hint = f"play with --mapping FILE (mappings/default.yaml fits any controller) or {hint}"
        self.error(f"{event.source}: {what} does nothing in {mapping_name}; {hint}", level=logging.WARNING)

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

    def mapping_changed(self) -> None:
        """A new mapping: controls it ignores are named again."""
        self._told_unmapped.clear()

    def tick(self, now: float, latency: float | None) -> None:
        """A frame was published at ``now``."""
        last, self._last_publish = self._last_publish, now
        if last is not None and now > last:
            # Average the intervals, not the rates: a burst of cached frames must not read as 200 fps.
            step = now - last
            self._step = step if self._step is None else 0.9 * self._step + 0.1 * step
            self.fps = 1 / self._step
        if latency is not None:
            self.latency = latency

    def exact_fps(self, now: float, decoded: int | None) -> float | None:
        """Exact decodes per second over the last two seconds, given the count of exact decodes so far (None
        where every frame is decoded: no blends in between)."""
        if decoded is None:
            return None
        self._decoded.append((now, decoded))
        while len(self._decoded) > 2 and now - self._decoded[1][0] >= 2.0:
            self._decoded.popleft()
        (t0, d0), (t1, d1) = self._decoded[0], self._decoded[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def build(self, phase: str, message: str, **fields: Any) -> Status:
        """The Status for the display; ``fields`` are Status fields the loop knows (decoder, frames...)."""
        return Status(phase=phase, message=message, render_fps=self.fps, latency=self.latency,
                      errors=tuple(self.errors), **fields)


def session_status(board: StatusBoard, parts: Any, phase: str, message: str, coords: Coords | None,
                   values: dict[str, Any] | None, now: float, **fields: Any) -> Status:
    """The Status of a session whose stages (``loop.parts.Parts``) are built; ``fields``: the loop's own
    (frames, midi, ui, ui_version, quit)."""
    decoding, progressive = parts.decoding, parts.decoding.progressive
    lab_lines, minimap = parts.lab.hud(coords, values)
    return board.build(
        phase, message,
        decoder=decoding.fast.label,
        full_decoder=decoding.full.label if decoding.full is not None else None,
        mapping=parts.controls.name,
        anchors=tuple(parts.names),
        exact_fps=board.exact_fps(now, progressive.decoded if progressive is not None else None),
        where=describe(coords, parts.names) if coords is not None else "",
        recording=parts.takes.status(),
        keys=parts.controls.keys(),
        lab=lab_lines,
        minimap=minimap,
        **(parts.sculpting.status() if parts.sculpting is not None else {}),
        **fields,
    )
