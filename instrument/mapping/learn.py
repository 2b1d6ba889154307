"""MIDI learn: move a control, choose a parameter, get a mapping file.

``Detector`` watches control events and says which control the player moved: a CC (absolute, or a relative
encoder recognised by its values clustering around 1/127, 63/65 or 1/65), a 14-bit pair (CC n and n + 32
moving together), an NRPN, pitch bend, aftertouch, a note or a program change. A control that only wobbles
by a step or two (a worn pot, a fader resting between values) is jitter and is ignored.

Two ways in:

- ``latent-instrument learn``: a terminal prompt. Each round waits for a moved control, then asks for the
  parameter by number or name (``--assign noise --assign speed`` answers in advance; answers can also come
  on stdin, which the tests use). The file is saved after every binding.
- ``LearnSession``: the same while playing, driven by the render thread: ``start(param)``, then every
  drained event goes to ``feed`` (and ``poll(now)`` once a frame); the first control moved is bound to
  ``param``, the updated Mapping is returned (and saved) for ``engine.mapping = ...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import mido

from instrument.events import ControlEvent, EventQueue
from instrument.mapping.loader import (
    DEFAULT_SMOOTHING,
    clash,
    default_action,
    load_mapping,
    parse_mapping,
    preset_path,
    suggest,
)
from instrument.mapping.model import Control, Mapping, MappingError, NoteRange
from instrument.mapping.writer import dump_mapping, save_mapping
from instrument.params import PARAMS

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


HEADER = "Written by latent-instrument learn. Edit freely (see mappings/README.md); comments are not\n" \
         "kept when learn saves this file again."


# --- binding ---------------------------------------------------------------------------------------------
def control_for(d: Detected, param: str) -> Control:
    """A new control for ``d`` driving ``param`` with the usual settings (channel as detected)."""
    p = PARAMS[param]
    action = default_action(p)
    if d.source == "note" and p.kind in ("integer", "choice"):
        action = "step"  # a pad steps through anchors, banks, path kinds
    relative = d.relative if p.kind in ("continuous", "integer", "choice") else None
    low, high = float(p.low), float(p.high)
    smoothing = DEFAULT_SMOOTHING if p.kind == "continuous" and action == "follow" else 0.0
    return Control(source=d.source, param=param, number=d.number, lsb=d.lsb,
                   channel=d.channel if d.source != "program" else None, low=low, high=high,
                   smoothing=smoothing, relative=relative, action=action)


def bind(mapping: Mapping, d: Detected, param: str) -> Mapping:
    """``mapping`` with ``d`` driving ``param``: entries using the same control are replaced, and a note
    learned as a button is taken out of any note range (the range is split around it). MappingError when
    the pair makes no sense (a program change cannot drive ``noise``): the result always loads back."""
    if param not in PARAMS:
        raise KeyError(f"unknown parameter {param!r}")
    new = control_for(d, param)
    controls = tuple(c for c in mapping.controls if not clash(c, new)) + (new,)
    notes = mapping.notes
    if d.source == "note":
        split: list[NoteRange] = []
        for r in notes:
            hit = r.low <= (d.number or 0) <= r.high and (r.channel is None or d.channel is None
                                                          or r.channel == d.channel)
            if not hit:
                split.append(r)
                continue
            n = d.number or 0
            if r.low < n:
                split.append(replace(r, high=n - 1))
            if n < r.high:
                split.append(replace(r, low=n + 1, anchor=r.anchor + n + 1 - r.low))
        notes = tuple(split)
    # Read back what learn would write: the result always loads, and its ``text`` is the new file.
    result, errors = parse_mapping(dump_mapping(replace(mapping, controls=controls, notes=notes), HEADER),
                                   mapping.path or "learned.yaml")
    if errors:
        raise MappingError("learn", 0, param, f"{d.describe()} cannot drive {param}: {errors[0].message}")
    assert result is not None
    return result


def learned_path(path: str | Path) -> Path:
    """Where learn saves by default: beside ``path``, named ``<stem>-learned.yaml`` (presets stay intact)."""
    path = Path(path)
    return path if path.stem.endswith("-learned") else path.with_name(f"{path.stem}-learned.yaml")


class LearnSession:
    """MIDI learn while playing. Not thread-safe: the render thread drives it.

    ``start(param)``; then pass every drained event to ``feed`` and call ``poll(now)`` once a frame. Both
    return the updated Mapping (also saved to ``save_to`` when given) once a control was bound, else None.
    ``status`` is a line for the HUD; ``error`` holds a failed save (the binding still applies)."""

    def __init__(self, mapping: Mapping, save_to: str | Path | None = None, *,
                 settle: float = SETTLE) -> None:
        self.mapping = mapping
        self.save_to = Path(save_to) if save_to else None
        self.param: str | None = None
        self.status = ""
        self.error: OSError | None = None
        self._detector = Detector(settle)

    @property
    def active(self) -> bool:
        return self.param is not None

    def start(self, param: str) -> None:
        """Wait for a control to bind to ``param`` (a name from PARAMS)."""
        if param not in PARAMS:
            raise KeyError(f"unknown parameter {param!r}")
        self.param = param
        self._detector.reset()
        self.status = f"learn: move a control for {param}"

    def cancel(self) -> None:
        self.param = None
        self.status = ""

    def feed(self, event: ControlEvent) -> Mapping | None:
        if self.param is None:
            return None
        found = self._detector.feed(event)
        return self._bind(found) if found else None

    def poll(self, now: float) -> Mapping | None:
        if self.param is None:
            return None
        found = self._detector.decide(now, final=False)
        return self._bind(found) if found else None

    def _bind(self, found: Detected) -> Mapping | None:
        assert self.param is not None
        try:
            self.mapping = bind(self.mapping, found, self.param)
        except MappingError as err:  # that control cannot drive this param: keep waiting for another
            self._detector.reset()
            self.status = f"learn: {err.message}; move another control for {self.param}"
            return None
        self.status = f"learn: {self.param} <- {found.describe()}"
        self.param = None
        if self.save_to is not None:
            self.mapping = replace(self.mapping, path=str(self.save_to))
            try:
                save_mapping(self.mapping, self.save_to, header=HEADER)
                self.status += f", saved to {self.save_to}"
            except OSError as err:
                self.error = err
                self.status += f", NOT saved: {err}"
        return self.mapping


# --- the command -------------------------------------------------------------------------------------------
def param_menu() -> str:
    """PARAMS numbered from 1, in columns, for the prompt."""
    cells = [f"{i:>2} {name}" for i, name in enumerate(PARAMS, 1)]
    rows = (len(cells) + 2) // 3
    return "\n".join("   ".join(f"{cells[r + c * rows]:<20}" for c in range(3) if r + c * rows < len(cells))
                     .rstrip() for r in range(rows))


def choose(answer: str) -> str | None:
    """A prompt answer -> parameter name; "" or "skip" -> None. ValueError for anything else."""
    answer = answer.strip()
    if answer in ("", "skip", "s"):
        return None
    names = list(PARAMS)
    if answer.isdigit() and 1 <= int(answer) <= len(names):
        return names[int(answer) - 1]
    if answer in PARAMS:
        return answer
    raise ValueError(f"{answer!r} is not a parameter number or name{suggest(answer, PARAMS)}")


def learn_loop(drain: Callable[[], list[ControlEvent]], ask: Callable[[str], str], say: Callable[[str], None],
               mapping: Mapping, output: Path, *, assign: list[str] | None = None, settle: float = SETTLE,
               timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> Mapping:
    """The learn dialogue. Rounds: wait for a moved control, get its parameter (from ``assign`` in order,
    else ``ask``), bind, save. Ends when ``assign`` is used up, ``ask`` answers q / raises EOFError, or no
    control moves for ``timeout`` seconds. Returns the final mapping."""
    pending = list(assign or [])
    for name in pending:
        if name not in PARAMS:
            raise ValueError(f"--assign {name!r} is not a parameter{suggest(name, PARAMS)}")
    detector = Detector(settle)
    while assign is None or pending:
        target = pending[0] if pending else None
        say(f"Move a control{f' for {target}' if target else ''} ...")
        detector.reset()
        drain()  # forget what moved before the prompt
        found, started = None, clock()
        while found is None:
            for event in drain():
                found = found or detector.feed(event)
            found = found or detector.decide(clock(), final=False)
            if found is None:
                if timeout is not None and clock() - started > timeout:
                    say("No control moved; done.")
                    return mapping
                sleep(0.01)
        say(f"Got {found.describe()}.")
        assigned = target is not None
        if target is None:
            say(param_menu())
            while True:
                try:
                    answer = ask("Parameter (number or name, Enter to skip, q to finish): ")
                except EOFError:
                    return mapping
                if answer.strip() == "q":
                    return mapping
                try:
                    target = choose(answer)
                    break
                except ValueError as err:
                    say(str(err))
            if target is None:
                continue
        try:
            mapping = bind(mapping, found, target)
        except MappingError as err:
            say(f"{err.message}; try another control.")
            continue
        if assigned:
            pending.pop(0)
        save_mapping(mapping, output, header=HEADER)
        say(f"{target} <- {found.describe()}; saved {output}")
    return mapping


def configure_learn(parser: argparse.ArgumentParser) -> None:
    from instrument.config import number
    from instrument.midi.listener import APIS

    parser.add_argument("--base", default="", help="mapping to start from (a file or preset name); "
                        "default: an empty mapping")
    parser.add_argument("-o", "--output", default="", help="file to write (default: <base>-learned.yaml, "
                        "or mappings/learned.yaml)")
    parser.add_argument("--port", action="append", dest="ports", metavar="NAME",
                        help="MIDI input port (part of its name); repeat for several; default: all")
    parser.add_argument("--api", choices=APIS, default=None, help="MIDI API (see `latent-instrument ports`)")
    parser.add_argument("--assign", action="append", metavar="PARAM",
                        help="bind the next moved control to PARAM without asking; repeat for several")
    parser.add_argument("--timeout", type=number(float, 0, 1e6, above=True), default=None,
                        help="stop after this many seconds without a moved control")


def run_learn(args: argparse.Namespace) -> int:
    from instrument.midi.listener import MidiListener

    try:
        base = load_mapping(preset_path(args.base)) if args.base else Mapping(name="Learned")
    except MappingError as err:
        print(err, file=sys.stderr)
        return 1
    output = Path(args.output) if args.output else (
        learned_path(base.path) if base.path else preset_path("learned"))
    queue = EventQueue()
    queue.set_exact_controls((None, cc) for cc in range(128))  # every value counts to tell encoders apart
    listener = MidiListener(queue, ports=args.ports, api=args.api, virtual=True)
    if not listener.start():
        print("No MIDI system: nothing to learn from (see `latent-instrument doctor`).", file=sys.stderr)
        return 1
    try:
        print(f"Listening on: {', '.join(listener.open_ports()) or 'no port yet (waiting)'}")
        learn_loop(queue.drain, input, print, base, output, assign=args.assign, timeout=args.timeout)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    finally:
        listener.stop()
    print(f"Mapping: {output}" if output.exists() else "Nothing learned.")
    return 0
