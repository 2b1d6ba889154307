"""MIDI learn: move a control, choose a parameter, get a mapping file.

``latent-instrument learn`` is a terminal dialogue (``LearnDialogue``): each round waits for a moved control
(``instrument.mapping.detect``; ``q`` finishes), then asks for the parameter by number or name (``--assign
noise --assign speed`` answers in advance; answers can also come on stdin). The file is saved after every
binding, written into the base mapping's text with its comments kept; a control the base already used is
replaced, and said so. Ctrl-C ends it with a summary of what was learned.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from instrument.events import ControlEvent, EventQueue
from instrument.mapping.detect import SETTLE, Detected, Detector
from instrument.mapping.fields import suggest
from instrument.mapping.loader import clash, load_mapping, parse_mapping
from instrument.mapping.model import DEFAULT_SMOOTHING, Control, Mapping, MappingError, NoteRange
from instrument.mapping.presets import preset_path
from instrument.mapping.sections import default_action
from instrument.mapping.writer import dump_mapping, edit_entries, save_mapping
from instrument.params import PARAMS

HEADER = "Written by latent-instrument learn. Edit freely (see mappings/README.md): learn keeps comments\n" \
         "when it saves this file again."


# --- binding ---------------------------------------------------------------------------------------------
def note_anchor(mapping: Mapping, note: int, channel: int | None) -> int:
    """The anchor a pad learned for ``anchor`` selects: the one the note selects in the mapping's note
    ranges; else the first anchor no other control sets (pads learned in turn get anchors in turn)."""
    for r in mapping.notes:
        if r.low <= note <= r.high and (r.channel is None or channel is None or r.channel == channel):
            return r.anchor + note - r.low
    taken = {c.value for c in mapping.controls if c.param == "anchor" and c.action == "set"}
    return next((i for i in range(128) if i not in taken), 0)


def control_for(d: Detected, param: str, mapping: Mapping | None = None) -> Control:
    """A new control for ``d`` driving ``param`` with the usual settings (channel as detected). A pad (a
    note) for ``anchor`` selects its own anchor (``note_anchor``); for another number or choice it steps."""
    p = PARAMS[param]
    action, value = default_action(p), None
    if d.source == "note" and param == "anchor":
        action, value = "set", note_anchor(mapping or Mapping(), d.number or 0, d.channel)
    elif d.source == "note" and p.kind in ("integer", "choice"):
        action = "step"  # a pad steps through banks, path kinds
    relative = d.relative if p.kind in ("continuous", "integer", "choice") else None
    smoothing = DEFAULT_SMOOTHING if p.kind == "continuous" and action == "follow" else 0.0
    return Control(source=d.source, param=param, number=d.number, lsb=d.lsb,
                   channel=d.channel if d.source != "program" else None, low=float(p.low), high=float(p.high),
                   smoothing=smoothing, relative=relative, action=action, value=value)


def replaced_by(mapping: Mapping, d: Detected) -> list[Control]:
    """The controls of ``mapping`` that the control ``d`` would replace (they answer the same message)."""
    probe = control_for(d, "position")
    return [c for c in mapping.controls if clash(c, probe)]


def _split_notes(notes: tuple[NoteRange, ...], d: Detected) -> tuple[NoteRange, ...]:
    """The note ranges with ``d``'s note taken out (a range is split around it)."""
    n = d.number or 0
    out: list[NoteRange] = []
    for r in notes:
        if not (r.low <= n <= r.high and (r.channel is None or d.channel is None or r.channel == d.channel)):
            out.append(r)
            continue
        if r.low < n:
            out.append(replace(r, high=n - 1))
        if n < r.high:
            out.append(replace(r, low=n + 1, anchor=r.anchor + n + 1 - r.low))
    return tuple(out)


def bind(mapping: Mapping, d: Detected, param: str) -> Mapping:
    """``mapping`` with ``d`` driving ``param``. The entry it replaces (the same control) gives up its
    place and its label (the control's name on the controller); a note learned as a button is taken out
    of its note range. The text is edited, not rewritten: comments stay. MappingError when the pair makes no
    sense (a program change cannot drive ``noise``): the result always loads back."""
    if param not in PARAMS:
        raise KeyError(f"unknown parameter {param!r}")
    old = replaced_by(mapping, d)
    new = control_for(d, param, mapping)
    if old and old[0].label:
        new = replace(new, label=old[0].label)
    at = next((i for i, c in enumerate(mapping.controls) if c is old[0]), 0) if old else len(mapping.controls)
    kept = [c for c in mapping.controls if not any(c is o for o in old)]
    controls = tuple(kept[:at] + [new] + kept[at:])
    notes = _split_notes(mapping.notes, d) if d.source == "note" else mapping.notes
    try:
        text = edit_entries(mapping.text or dump_mapping(mapping, HEADER), mapping, controls, notes)
    except ValueError:  # a file only the mapping loader reads: written out whole (its comments are lost)
        text = dump_mapping(replace(mapping, controls=controls, notes=notes), HEADER)
    result, errors = parse_mapping(text, mapping.path or "learned.yaml")
    if errors:
        raise MappingError("learn", 0, param, f"{d.describe()} cannot drive {param}: {errors[0].message}")
    assert result is not None
    return result


def learned_path(path: str | Path) -> Path:
    """Where learn saves by default: beside ``path``, named ``<stem>-learned.yaml`` (presets stay intact)."""
    path = Path(path)
    return path if path.stem.endswith("-learned") else path.with_name(f"{path.stem}-learned.yaml")


# --- the dialogue ----------------------------------------------------------------------------------------
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


def check_params(names: list[str]) -> None:
    """ValueError naming the first of ``names`` that is not a parameter (``--assign`` answers)."""
    for name in names:
        if name not in PARAMS:
            raise ValueError(f"--assign {name!r} is not a parameter{suggest(name, PARAMS)}")


class Console:
    """The terminal: ``say`` a line, ``ask`` for one (EOFError at the end of input), and ``typed()``: a line
    typed while learn waits for a control, without blocking (None when there is none, or when input is not
    a terminal: piped answers are for the questions)."""

    def __init__(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.stdin, self.stdout = stdin, stdout
        try:
            self._tty = stdin.isatty()
        except (ValueError, OSError):
            self._tty = False
        self._partial = ""  # Windows: characters typed so far on the current line

    def say(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)

    def ask(self, prompt: str) -> str:
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def typed(self) -> str | None:
        if not self._tty:
            return None
        if os.name == "nt":
            return self._typed_windows()
        import select

        ready, _, _ = select.select([self.stdin], [], [], 0)
        return self.stdin.readline().rstrip("\r\n") if ready else None

    def _typed_windows(self) -> str | None:
        import msvcrt

        while msvcrt.kbhit():  # type: ignore[attr-defined]
            char = msvcrt.getwche()  # type: ignore[attr-defined]
            if char in "\r\n":
                line, self._partial = self._partial, ""
                self.say("")
                return line
            self._partial += char
        return None


@dataclass(frozen=True)
class Learned:
    """One binding made, for the summary: ``param`` <- ``control``; ``replaced``: what it took over."""

    param: str
    control: str
    replaced: str = ""


class _Finished(Exception):
    """The player asked to finish (q, end of input, no control moved in time)."""


class LearnDialogue:
    """The learn command's rounds: wait for a moved control, get its parameter (from ``assign`` in order,
    else ``console.ask``), bind, save to ``output``. ``run()`` returns the final mapping; it ends when
    ``assign`` is used up, the player answers or types q, input ends, no control moves for ``timeout``
    seconds, or Ctrl-C. ``learned`` lists what was bound, for ``summary()``."""

    def __init__(self, drain: Callable[[], list[ControlEvent]], console: Console, mapping: Mapping,
                 output: Path, *, assign: list[str] | None = None, settle: float = SETTLE,
                 timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        check_params(assign or [])
        self.drain, self.console, self.mapping, self.output = drain, console, mapping, Path(output)
        self.pending = list(assign) if assign is not None else None
        self.timeout, self.clock, self.sleep = timeout, clock, sleep
        self.detector = Detector(settle)
        self.learned: list[Learned] = []

    def run(self) -> Mapping:
        try:
            while self.pending is None or self.pending:
                self._round()
        except _Finished:
            pass
        except KeyboardInterrupt:
            self.console.say("\nStopped (Ctrl-C).")
        return self.mapping

    def _round(self) -> None:
        target = self.pending[0] if self.pending else None
        found = self._wait(target)
        self.console.say(f"Got {found.describe()}.")
        if target is None:
            target = self._ask_param()
            if target is None:
                return
        replaced = self._replacing(found)
        try:
            mapping = bind(self.mapping, found, target)
        except MappingError as err:
            self.console.say(f"{err.message}; try another control.")
            return
        if replaced:
            self.console.say(f"{found.describe()} was used by {replaced}: this replaces it.")
        try:
            save_mapping(mapping, self.output, header=HEADER)
        except OSError as err:  # a read-only folder, a full disk: say so and stop, nothing half-written
            self.console.say(f"Could not save {self.output}: {err.strerror or err}; choose another file "
                             "with -o.")
            raise _Finished from None
        self.mapping = replace(mapping, path=str(self.output))
        if self.pending:
            self.pending.pop(0)
        new = next(c for c in mapping.controls if clash(c, control_for(found, "position")))
        self.learned.append(Learned(_control_words(new), found.describe(), replaced))
        self.console.say(f"{_control_words(new)} <- {found.describe()}; saved {self.output}")

    def _wait(self, target: str | None) -> Detected:
        """The next control moved (q typed, or ``timeout`` without one: _Finished)."""
        self.console.say(f"Move a control{f' for {target}' if target else ''} ... (q and Enter to finish)")
        self.detector.reset()
        self.drain()  # forget what moved before the prompt
        started = self.clock()
        while True:
            typed = self.console.typed()
            if typed is not None and typed.strip().lower() in ("q", "quit"):
                raise _Finished
            if typed:
                self.console.say("Waiting for a control to move (q and Enter to finish).")
            found = None
            for event in self.drain():
                found = found or self.detector.feed(event)
            found = found or self.detector.decide(self.clock(), final=False)
            if found is not None:
                return found
            if self.timeout is not None and self.clock() - started > self.timeout:
                self.console.say("No control moved; done.")
                raise _Finished
            self.sleep(0.01)

    def _ask_param(self) -> str | None:
        """The parameter for the control just moved, from the player; None to skip it."""
        self.console.say(param_menu())
        while True:
            try:
                answer = self.console.ask("Parameter (number or name, Enter to skip, q to finish): ")
            except EOFError:
                raise _Finished from None
            if answer.strip().lower() in ("q", "quit"):
                raise _Finished
            try:
                return choose(answer)
            except ValueError as err:
                self.console.say(str(err))

    def _replacing(self, found: Detected) -> str:
        """What the mapping does with this control now, which binding it replaces; "" if nothing."""
        words = []
        for c in replaced_by(self.mapping, found):
            where = f"line {c.line}" + (f", {c.label}" if c.label else "")
            words.append(f"{_control_words(c)} ({where})")
        if found.source == "note":
            words += [f"notes {r.low}-{r.high} (line {r.line})" for r in self.mapping.notes
                      if r.low <= (found.number or 0) <= r.high]
        return "; ".join(words)

    def summary(self) -> str:
        """What was learned and where it is, for the end of the command."""
        if not self.learned:
            return "Nothing learned; nothing written."
        lines = [f"Learned {len(self.learned)} control{'s' if len(self.learned) > 1 else ''}, saved in "
                 f"{self.output}:"]
        for item in self.learned:
            lines.append(f"  {item.param} <- {item.control}" + (f" (replaces {item.replaced})"
                                                                  if item.replaced else ""))
        return "\n".join(lines)


def _control_words(c: Control) -> str:
    """What a control does, briefly: "noise", "anchor 3" (anchors from 1), "next bank"."""
    from instrument.mapping.describe import describe_controls

    return describe_controls(Mapping(controls=(c,)))[0][1]


def configure_learn(parser: argparse.ArgumentParser) -> None:
    from instrument.config import number
    from instrument.midi.listener import APIS

    parser.add_argument("--base", default="", help="mapping to start from (a file or preset name); "
                        "default: an empty mapping")
    parser.add_argument("-o", "--output", default="", help="file to write (default: <base>-learned.yaml, "
                        "or mappings/learned.yaml); the base's comments are kept")
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
        check_params(args.assign or [])
    except (MappingError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else (
        learned_path(base.path) if base.path else preset_path("learned"))
    queue = EventQueue()
    queue.set_exact_controls((None, cc) for cc in range(128))  # every value counts to tell encoders apart
    listener = MidiListener(queue, ports=args.ports, api=args.api, virtual=True)
    if not listener.start():
        print("No MIDI system: nothing to learn from (see `latent-instrument doctor`).", file=sys.stderr)
        return 1
    dialogue = LearnDialogue(queue.drain, Console(), base, output, assign=args.assign, timeout=args.timeout)
    try:
        print(f"Listening on: {', '.join(listener.open_ports()) or 'no port yet (waiting)'}", flush=True)
        dialogue.run()
    finally:
        listener.stop()
    print(dialogue.summary(), flush=True)
    return 0
