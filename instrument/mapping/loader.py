"""Reading and validating mapping files, with errors that name the file, the line and the key.

The YAML is read by a ``SafeLoader`` subclass that remembers the line of every mapping key and list item, so a
mistake anywhere in the file is reported where it was written: ``mappings/x.yaml:12: controls[3].curve: 'expo'
is not one of linear, exponential, logarithmic, points (did you mean exponential?)``. Unknown keys get the
nearest known key as a suggestion, because typos are the common mistake.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from instrument.mapping.model import (
    ACTIONS,
    CONTROL_MODES,
    CURVES,
    NOTE_BEHAVIOURS,
    POINTER_BUTTONS,
    RELATIVE_MODES,
    SOURCES,
    TAKEOVERS,
    Control,
    Curve,
    KeyBinding,
    Mapping,
    MappingError,
    NoteRange,
    PointerAxis,
)
from instrument.params import PARAMS, Param

TOP_KEYS = ("version", "name", "description", "ports", "tempo", "initial", "controls", "notes", "keys",
            "pointer")
CONTROL_KEYS = SOURCES + ("lsb", "channel", "param", "range", "curve", "points", "invert", "smoothing",
                          "takeover", "relative", "step", "action", "value", "mode", "bits", "label")
NOTE_KEYS = ("notes", "channel", "anchor", "behaviour", "glide", "label")
KEY_KEYS = ("key", "param", "action", "value", "step", "rate", "label")
AXIS_KEYS = ("param", "range", "curve", "points", "invert", "smoothing", "button", "label")

RELATIVE_ALIASES = {"binary_offset": "offset_binary", "signed_bit": "sign_bit"}
# Smoothing when a continuous control does not say: enough to hide 7-bit steps, short enough to feel direct.
DEFAULT_SMOOTHING = 0.05

# pygame key names (pygame.key.name) a binding may use, besides single printable characters.
NAMED_KEYS = frozenset(
    ["space", "return", "escape", "tab", "backspace", "delete", "insert", "home", "end", "page up",
     "page down", "up", "down", "left", "right", "left shift", "right shift", "left ctrl", "right ctrl",
     "left alt", "right alt", "caps lock"]
    + [f"f{i}" for i in range(1, 16)]
    + [f"[{c}]" for c in "0123456789+-*/."] + ["enter"]
)

_NOTE_NAME = re.compile(r"^([a-g])([#b]?)(-?\d)$", re.IGNORECASE)
_NOTE_RANGE = re.compile(r"^\s*([A-Ga-g][#b]?-?\d|\d+)\s*-\s*([A-Ga-g][#b]?-?\d|\d+)\s*$")
_SEMITONE = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


# --- YAML with line numbers --------------------------------------------------------------------------------
class LineDict(dict):
    """A YAML mapping that knows its line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A YAML sequence that knows its line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class LineLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that builds LineDict / LineList and rejects a key written twice in one mapping
    (plain YAML silently keeps the last one, which hides mistakes)."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line, out.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            raise _DuplicateKey(None, None, "a key must be a single word", key_node.start_mark)
        if key in out:
            raise _DuplicateKey(None, None, f"key {key!r} appears twice in this entry "
                                f"(first on line {out.key_lines[key]})", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.item_lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return out


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _parse_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as e:
        lines = text.splitlines()
        mark = e.problem_mark or e.context_mark
        # The end of a truncated file is reported one past its last line: point at the last line instead.
        line = min(mark.line + 1, max(len(lines), 1)) if mark else 0
        problem = e.problem or "not valid YAML"
        if isinstance(e, _DuplicateKey):
            raise MappingError(file, line, "", problem) from None
        if 0 < line <= len(lines) and "\t" in lines[line - 1]:
            problem += " (a tab: indent with spaces only)"
        if e.context and e.context_mark and e.context_mark.line + 1 != line:
            problem += f" ({e.context.removeprefix('while ')} that starts on line {e.context_mark.line + 1})"
        if "<stream end>" in problem:
            problem += "; the file ends too soon (still being written, or a bracket or quote left open?)"
        raise MappingError(file, line, "", f"YAML syntax: {problem}") from None
    except yaml.YAMLError as e:
        raise MappingError(file, 0, "", f"YAML syntax: {e}") from None


# --- suggestions --------------------------------------------------------------------------------------------
def suggest(word: object, options: Iterable[str]) -> str:
    """" (did you mean X?)" for the nearest option, or ""."""
    options = list(options)
    text = str(word).lower()
    near = [o for o in options if text and o.startswith(text)][:1]
    near = near or difflib.get_close_matches(text, options, n=1, cutoff=0.5)
    return f" (did you mean {near[0]}?)" if near else ""


def _one_of(value: object, options: Iterable[str]) -> str:
    options = list(options)
    return f"{value!r} is not one of {', '.join(options)}{suggest(value, options)}"


# --- entry reader ------------------------------------------------------------------------------------------
class _Entry:
    """One YAML mapping being read: typed getters that raise MappingError at the key's line."""

    def __init__(self, file: str, data: Any, where: str, line: int, allowed: tuple[str, ...]) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            raise MappingError(file, line, where, f"should be a mapping of keys ({', '.join(allowed)}), "
                               f"not {_kind(data)}")
        self.data = data
        self.line = getattr(data, "line", line)
        self.lines: dict[Any, int] = getattr(data, "key_lines", {})
        for key in data:
            if key not in allowed:
                raise self.error(key, f"unknown key {key!r}{suggest(key, allowed)}; "
                                 f"allowed: {', '.join(allowed)}")

    def key_path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else str(key)

    def error(self, key: Any, message: str) -> MappingError:
        return MappingError(self.file, self.lines.get(key, self.line), self.key_path(str(key)), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def number(self, key: str, default: float | None = None, low: float | None = None,
               high: float | None = None) -> float | None:
        if key not in self.data:
            return default
        return self._check_number(key, self.data[key], low, high)

    def _check_number(self, key: str, v: Any, low: float | None, high: float | None) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(key, f"{v!r} is not a number")
        if (low is not None and v < low) or (high is not None and v > high):
            raise self.error(key, f"{v} is outside {_fmt(low)}..{_fmt(high)}")
        return float(v)

    def integer(self, key: str, low: int, high: int, default: int | None = None,
                what: str = "") -> int | None:
        if key not in self.data:
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"{v!r} is not a whole number{what}")
        if not low <= v <= high:
            raise self.error(key, f"{v} is outside {low}..{high}{what}")
        return v

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str | None:
        if key not in self.data:
            return default
        v = self.data[key]
        if v not in options:
            raise self.error(key, _one_of(v, options))
        return v

    def boolean(self, key: str, default: bool = False) -> bool:
        if key not in self.data:
            return default
        v = self.data[key]
        if not isinstance(v, bool):
            raise self.error(key, f"{v!r} is not true or false")
        return v

    def text(self, key: str, default: str = "") -> str:
        if key not in self.data:
            return default
        v = self.data[key]
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise self.error(key, f"{v!r} should be text")
        return str(v)

    def param(self) -> Param:
        if "param" not in self.data:
            raise MappingError(self.file, self.line, self.key_path("param"),
                               "missing: every entry needs `param:` (`latent-instrument learn` lists them)")
        name = self.data["param"]
        if name not in PARAMS:
            hint = suggest(name, PARAMS) or f"; parameters: {', '.join(PARAMS)}"
            raise self.error("param", f"unknown parameter {name!r}{hint}")
        return PARAMS[name]

    def channel(self) -> int | None:
        if "channel" not in self.data or self.data["channel"] == "any":
            return None
        v = self.data["channel"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16:
            raise self.error("channel", f"{v!r} is not a MIDI channel: write 1..16 or any")
        return v - 1

    def range(self, p: Param, *, nudge: bool = False) -> tuple[float, float]:
        """[low, high] within the param's range; a nudge (an amount added) may span -width..width."""
        width = p.high - p.low
        bounds = (-width, width) if nudge else (p.low, p.high)
        if "range" not in self.data:
            return (-width / 2, width / 2) if nudge else (float(p.low), float(p.high))
        v = self.data["range"]
        if p.kind not in ("continuous", "integer"):
            raise self.error("range", f"{p.name} is a {p.kind} parameter; range is for numbers")
        if not isinstance(v, list) or len(v) != 2:
            raise self.error("range", f"{v!r} should be [low, high], e.g. [{_fmt(p.low)}, {_fmt(p.high)}]")
        for x in v:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise self.error("range", f"{x!r} is not a number (range should be [low, high])")
        low, high = float(v[0]), float(v[1])
        if low >= high:
            raise self.error("range", f"low {_fmt(low)} is not below high {_fmt(high)}; "
                             "to turn a control round, keep [low, high] and add `invert: true`")
        if low < bounds[0] or high > bounds[1]:
            what = "a nudge on " if nudge else ""
            raise self.error("range", f"[{_fmt(low)}, {_fmt(high)}] goes outside {what}{p.name}'s "
                             f"{_fmt(bounds[0])}..{_fmt(bounds[1])}")
        return low, high

    def curve(self) -> Curve:
        kind = self.choice("curve", CURVES, "points" if "points" in self.data else "linear")
        if kind != "points":
            if "points" in self.data:
                raise self.error("points", f"points need `curve: points` (curve is {kind})")
            return Curve(kind)
        if "points" not in self.data:
            raise self.error("curve", "`curve: points` needs `points: [[x, y], ...]` with x rising")
        pts = self.data["points"]
        shape = "should be a list of [x, y] pairs, e.g. [[0, 0], [0.5, 0.2], [1, 1]]"
        if not isinstance(pts, list) or len(pts) < 2:
            raise self.error("points", f"{shape} (at least two)")
        out: list[tuple[float, float]] = []
        for pair in pts:
            ok = isinstance(pair, list) and len(pair) == 2 and all(
                isinstance(c, (int, float)) and not isinstance(c, bool) for c in pair)
            if not ok:
                raise self.error("points", f"{pair!r}: {shape}")
            x, y = float(pair[0]), float(pair[1])
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise self.error("points", f"{pair!r}: x and y must be within 0..1")
            if out and x <= out[-1][0]:
                raise self.error("points", f"x must rise from point to point: {_fmt(x)} comes after "
                                 f"{_fmt(out[-1][0])}")
            out.append((x, y))
        return Curve("points", tuple(out))

    def value_for(self, key: str, p: Param) -> float | int | str | bool:
        v = self.data[key]
        if p.kind == "toggle":
            if not isinstance(v, bool):
                raise self.error(key, f"{p.name} is on or off: write true or false, not {v!r}")
            return v
        if p.kind == "choice":
            if v not in p.choices:
                raise self.error(key, _one_of(v, p.choices))
            return v
        if p.kind == "trigger":
            raise self.error(key, f"{p.name} is a trigger; it takes no value")
        number = self._check_number(key, v, p.low, p.high)
        if p.kind == "integer":
            if number != int(number):
                raise self.error(key, f"{v!r} is not a whole number ({p.name} counts)")
            return int(number)
        return number


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _kind(v: Any) -> str:
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return "nothing" if v is None else repr(v)


def parse_note(v: Any) -> int:
    """60, "60" or a note name ("C4" = 60, "F#2", "Bb3") -> 0..127; ValueError otherwise."""
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and v.strip().isdigit():
        n = int(v)
    elif isinstance(v, str) and (m := _NOTE_NAME.match(v.strip())):
        n = (int(m.group(3)) + 1) * 12 + _SEMITONE[m.group(1).lower()] + {"#": 1, "b": -1, "": 0}[m.group(2)]
    else:
        raise ValueError(f"{v!r} is not a note: write 0..127 or a name like C4 (= 60)")
    if not 0 <= n <= 127:
        raise ValueError(f"{v!r} is outside the notes 0..127")
    return n


# --- the sections ------------------------------------------------------------------------------------------
def _items(file: str, top: _Entry, key: str) -> list[tuple[Any, int, str]]:
    v = top.raw(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise top.error(key, f"should be a list of entries, each starting with '- ', not {_kind(v)}")
    lines = getattr(v, "item_lines", [top.lines.get(key, 0)] * len(v))
    return [(item, lines[i], f"{key}[{i + 1}]") for i, item in enumerate(v)]


def _source(e: _Entry) -> tuple[str, int | None, int | None]:
    given = [s for s in SOURCES if e.has(s)]
    if not given:
        raise MappingError(e.file, e.line, e.where, f"says nothing about what drives it: give one of "
                           f"{', '.join(SOURCES)} (e.g. `cc: 74`)")
    if len(given) > 1:
        raise e.error(given[1], f"one source per entry, but this one has {' and '.join(given)}")
    kind = given[0]
    v = e.raw(kind)
    if kind in ("pitchbend", "aftertouch", "program"):
        if v is not True:
            raise e.error(kind, f"write `{kind}: true` (got {v!r})")
        return kind, None, None
    if kind in ("note", "polytouch"):
        if kind == "polytouch" and v is True:
            return kind, None, None
        try:
            return kind, parse_note(v), None
        except ValueError as err:
            raise e.error(kind, str(err)) from None
    if kind == "cc":
        return kind, e.integer("cc", 0, 127, what=" (CC numbers are 0..127)"), None
    if kind == "cc14":
        msb = e.integer("cc14", 0, 31, what=" (a 14-bit pair's MSB is CC 0..31; its LSB is MSB + 32)")
        assert msb is not None
        return kind, msb, e.integer("lsb", 0, 127, msb + 32, what=" (CC numbers are 0..127)")
    # nrpn: a number 0..16383 or [msb, lsb]
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and 0 <= x <= 127 for x in v):
        return kind, v[0] * 128 + v[1], None
    return kind, e.integer("nrpn", 0, 16383, what=" (NRPN numbers are 0..16383, or [msb, lsb])"), None


def default_action(p: Param) -> str:
    """What a control or key does to ``p`` when the file does not say: toggle, trigger, or follow."""
    return {"toggle": "toggle", "trigger": "trigger"}.get(p.kind, "follow")


def _check_action(e: _Entry, p: Param, action: str, *, relative: bool = False) -> None:
    if not _fits(action, p):
        good = [a for a in ACTIONS if a != "ramp" or e.where.startswith("keys")]
        ok = [a for a in good if _fits(a, p)]
        raise e.error("action", f"{action!r} does not suit {p.name} (a {p.kind} parameter); "
                      f"use {', '.join(ok)}")
    if action == "set" and not e.has("value"):
        raise MappingError(e.file, e.line, e.key_path("value"), f"`action: set` needs `value:` for {p.name}")
    if action == "step" and p.kind == "continuous" and not e.has("step"):
        raise MappingError(e.file, e.line, e.key_path("step"), f"`action: step` on {p.name} needs `step:` "
                           "(how much one press adds; negative to go down)")
    if relative and action != "follow":
        raise e.error("relative", "relative encoders follow a parameter; remove `action:`")


def _fits(action: str, p: Param) -> bool:
    return {
        "follow": p.kind in ("continuous", "integer", "choice", "toggle"),
        "toggle": p.kind == "toggle", "hold": p.kind == "toggle", "trigger": p.kind == "trigger",
        "step": p.kind in ("continuous", "integer", "choice"), "set": p.kind != "trigger",
        "ramp": p.kind in ("continuous", "integer"),
    }[action]


def _control(file: str, data: Any, line: int, where: str) -> Control:
    e = _Entry(file, data, where, line, CONTROL_KEYS)
    source, number, lsb = _source(e)
    if e.has("lsb") and source != "cc14":
        raise e.error("lsb", "lsb is for `cc14:` pairs")
    p = e.param()
    low, high = e.range(p, nudge=e.raw("mode") == "nudge")
    action = e.choice("action", tuple(a for a in ACTIONS if a != "ramp"), default_action(p))
    if e.raw("relative") in RELATIVE_ALIASES:  # the names instrument.midi.messages and Ableton use
        e.data["relative"] = RELATIVE_ALIASES[e.raw("relative")]
    relative = e.choice("relative", RELATIVE_MODES)
    if relative and source != "cc":
        raise e.error("relative", f"relative modes are for `cc:` encoders, not {source}")
    if relative and p.kind not in ("continuous", "integer", "choice"):
        raise e.error("relative", f"{p.name} is a {p.kind} parameter; encoders drive numbers and choices")
    _check_action(e, p, action, relative=relative is not None)  # type: ignore[arg-type]
    if source == "program" and action != "follow":
        raise e.error("action", "program change selects a value directly; remove `action:`")
    if source == "program" and p.kind not in ("integer", "choice"):
        raise e.error("param", f"program change selects a number or choice (e.g. bank), not {p.name} "
                      f"(a {p.kind} parameter)")
    mode = e.choice("mode", CONTROL_MODES, "absolute")
    if mode == "nudge" and (p.kind != "continuous" or action != "follow" or relative):
        raise e.error("mode", "nudge adds a follow control's value on top of a continuous parameter")
    takeover = e.choice("takeover", TAKEOVERS, "jump")
    if takeover != "jump" and (relative or action != "follow" or mode == "nudge" or source == "program"):
        raise e.error("takeover", "takeover is for absolute knobs and faders following a parameter")
    bits = int(e.integer("bits", 7, 14, 14) or 14)
    if e.has("bits") and (source != "nrpn" or bits not in (7, 14)):
        raise e.error("bits", "bits (7 or 14) is for `nrpn:` data resolution")
    default_smoothing = DEFAULT_SMOOTHING if p.kind == "continuous" and action == "follow" else 0.0
    return Control(
        source=source, param=p.name, number=number, lsb=lsb, channel=e.channel(), low=low, high=high,
        curve=e.curve(), invert=e.boolean("invert"),
        smoothing=float(e.number("smoothing", default_smoothing, 0.0, 10.0) or 0.0),
        takeover=takeover or "jump", relative=relative, step=e.number("step"), action=action or "follow",
        value=e.value_for("value", p) if e.has("value") else None, mode=mode or "absolute", bits=bits,
        label=e.text("label"), line=e.line,
    )


def _note_range(file: str, data: Any, line: int, where: str) -> NoteRange:
    e = _Entry(file, data, where, line, NOTE_KEYS)
    if not e.has("notes"):
        raise MappingError(file, e.line, e.key_path("notes"), "missing: which notes, e.g. `notes: 60-84` "
                           "or `notes: C4-C6`")
    v = e.raw("notes")
    try:
        if isinstance(v, str) and (m := _NOTE_RANGE.match(v)):
            low, high = parse_note(m.group(1)), parse_note(m.group(2))
        elif isinstance(v, list) and len(v) == 2:
            low, high = parse_note(v[0]), parse_note(v[1])
        else:
            low = high = parse_note(v)
    except ValueError as err:
        raise e.error("notes", f"{err}; write one note or a range like 60-84, C4-C6 or [60, 84]") from None
    if low > high:
        raise e.error("notes", f"the range {v!r} runs downwards; write the lower note first")
    anchor = int(e.integer("anchor", 0, 127, 0) or 0)
    if anchor + (high - low) > 127:
        raise e.error("anchor", f"anchors {anchor}..{anchor + high - low} go past 127")
    glide = None
    if e.has("glide"):
        g = e.raw("glide")
        if not (isinstance(g, list) and len(g) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 8 for x in g)):
            raise e.error("glide", f"{g!r} should be [soft, hard]: seconds of glide for the softest and the "
                          "hardest note, each 0..8, e.g. [2.0, 0.1]")
        glide = (float(g[0]), float(g[1]))
    behaviour = e.choice("behaviour", NOTE_BEHAVIOURS, "glide") or "glide"
    if glide is not None and behaviour == "jump":
        raise e.error("glide", "a jump has no glide time; use `behaviour: glide` or remove `glide:`")
    return NoteRange(low=low, high=high, channel=e.channel(), anchor=anchor, behaviour=behaviour, glide=glide,
                     label=e.text("label"), line=e.line)


def _key(file: str, data: Any, line: int, where: str) -> KeyBinding:
    e = _Entry(file, data, where, line, KEY_KEYS)
    if not e.has("key"):
        raise MappingError(file, e.line, e.key_path("key"), "missing: which key, e.g. `key: space`")
    k = e.raw("key")
    name = str(k).lower() if not isinstance(k, bool) else ""
    if not (len(name) == 1 and name.isprintable()) and name not in NAMED_KEYS:
        hint = suggest(name, NAMED_KEYS) or (": a single character or one of " + ", ".join(
            sorted(n for n in NAMED_KEYS if not n.startswith("["))))
        raise e.error("key", f"{k!r} is not a key name{hint}")
    p = e.param()
    if e.has("rate"):
        default = "ramp"
    elif e.has("step"):
        default = "step"
    elif e.has("value"):
        default = "set"
    else:
        default = {"toggle": "toggle", "trigger": "trigger", "choice": "step"}.get(p.kind)
    action = e.choice("action", ACTIONS, default)
    if action is None or action == "follow":
        raise MappingError(file, e.line, e.key_path("action"), f"a key on {p.name} needs `value:` (set it), "
                           "`step:` (add per press) or `rate:` (units per second while held)")
    _check_action(e, p, action)
    if action == "ramp" and not e.has("rate"):
        raise MappingError(file, e.line, e.key_path("rate"), "`action: ramp` needs `rate:` (units a second)")
    return KeyBinding(key=name, param=p.name, action=action,
                      value=e.value_for("value", p) if e.has("value") else None,
                      step=e.number("step"), rate=e.number("rate"), label=e.text("label"), line=e.line)


def _pointer(file: str, top: _Entry) -> tuple[PointerAxis, ...]:
    v = top.raw("pointer")
    if v is None:
        return ()
    e = _Entry(file, v, "pointer", top.lines.get("pointer", 0), ("x", "y"))
    axes = []
    for axis in ("x", "y"):
        if e.has(axis):
            a = _Entry(file, e.raw(axis), f"pointer.{axis}", e.lines.get(axis, e.line), AXIS_KEYS)
            p = a.param()
            if p.kind not in ("continuous", "integer", "choice"):
                raise a.error("param", f"the pointer follows numbers and choices; {p.name} is a {p.kind}")
            low, high = a.range(p)
            axes.append(PointerAxis(
                axis=axis, param=p.name, low=low, high=high, curve=a.curve(), invert=a.boolean("invert"),
                smoothing=float(a.number("smoothing", DEFAULT_SMOOTHING, 0.0, 10.0) or 0.0),
                button=a.choice("button", POINTER_BUTTONS, "none") or "none", label=a.text("label"),
                line=a.line))
    return tuple(axes)


def _ports(top: _Entry) -> tuple[str, ...] | None:
    v = top.raw("ports", "any")
    if v == "any" or v is None:
        return None
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
        return None if "any" in v else tuple(v)
    raise top.error("ports", f"{v!r} should be any, a port name, or a list of port names "
                    "(parts of the names that `latent-instrument ports` lists)")


def _initial(top: _Entry) -> tuple[tuple[str, Any], ...]:
    """``initial: {speed: 0.05, noise: 0.1}``: where the parameters start when a session starts."""
    if not top.has("initial"):
        return ()
    settable = tuple(name for name, p in PARAMS.items() if p.kind != "trigger")
    entry = _Entry(top.file, top.raw("initial"), "initial", top.lines.get("initial", top.line), settable)
    values = []
    for name in entry.data:
        p = PARAMS[name]
        if p.kind == "continuous":
            value: Any = entry.number(name, None, p.low, p.high)
        elif p.kind == "integer":
            value = entry.integer(name, int(p.low), int(p.high))
        elif p.kind == "choice":
            value = entry.choice(name, p.choices)
        else:
            value = entry.boolean(name)
        values.append((name, value))
    return tuple(values)


def _tempo(top: _Entry) -> tuple[str, float | None]:
    v = top.raw("tempo", "clock")
    if v == "clock":
        return "clock", None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        top._check_number("tempo", v, 20, 300)
        return "fixed", float(v)
    if isinstance(v, dict):
        t = _Entry(top.file, v, "tempo", top.lines.get("tempo", top.line), ("source", "bpm"))
        return t.choice("source", ("clock", "fixed"), "clock") or "clock", t.number("bpm", None, 20, 300)
    raise top.error("tempo", f"{v!r} should be clock, a BPM (20..300), or {{source: clock, bpm: 120}}")


def _overlap(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def clash(c: Control, d: Control) -> bool:
    """Whether two controls would answer the same message (one control, two entries: a mistake)."""
    if not _overlap(c.channel, d.channel):
        return False
    if c.source == d.source and (c.number == d.number or (c.source == "polytouch" and None in (c.number,
                                                                                             d.number))):
        return True
    if {c.source, d.source} <= {"cc", "cc14"}:  # a 14-bit pair's MSB or LSB used again as a plain CC
        return bool({c.number, c.lsb} & {d.number, d.lsb} - {None})
    return False


def _check_duplicates(file: str, m: Mapping, errors: list[MappingError]) -> None:
    seen: list[Control] = []
    for i, c in enumerate(m.controls):
        for d in seen:
            if clash(c, d):
                errors.append(MappingError(file, c.line, f"controls[{i + 1}]", f"{c.describe()} is already "
                                           f"mapped on line {d.line} (to {d.param}); one entry per control"))
                break
        seen.append(c)
    for i, r in enumerate(m.notes):
        for j, q in enumerate(m.notes[:i]):
            if _overlap(r.channel, q.channel) and r.low <= q.high and q.low <= r.high:
                errors.append(MappingError(file, r.line, f"notes[{i + 1}].notes", f"notes {r.low}-{r.high} "
                                           f"overlap notes[{j + 1}] ({q.low}-{q.high}) on line {q.line}"))
        for c in m.controls:
            if c.source == "note" and _overlap(r.channel, c.channel) and r.low <= (c.number or 0) <= r.high:
                errors.append(MappingError(file, r.line, f"notes[{i + 1}].notes", f"note {c.number} is also "
                                           f"a button on line {c.line} ({c.param}); leave it out"))
    keys: dict[str, int] = {}
    for i, k in enumerate(m.keys):
        if k.key in keys:
            errors.append(MappingError(file, k.line, f"keys[{i + 1}].key", f"key {k.key!r} is already bound "
                                       f"on line {keys[k.key]}"))
        keys.setdefault(k.key, k.line)


# --- entry points ------------------------------------------------------------------------------------------
def parse_mapping(text: str, file: str = "<mapping>") -> tuple[Mapping | None, list[MappingError]]:
    """Read mapping YAML ``text``; returns (mapping or None, every error found), never raises MappingError."""
    try:
        data = _parse_yaml(text, file)
    except MappingError as err:
        return None, [err]
    if data is None:
        return None, [MappingError(file, 1, "", "the file is empty; it needs at least `version: 1`")]
    try:
        top = _Entry(file, data, "", 1, TOP_KEYS)
        if "version" not in top.data:
            raise MappingError(file, 1, "version", "missing: the first line should be `version: 1`")
        if top.raw("version") != 1:
            raise top.error("version", f"{top.raw('version')!r} is not a version this program reads "
                            "(write 1)")
    except MappingError as err:
        return None, [err]
    errors: list[MappingError] = []

    def section(key: str, build: Any) -> tuple[Any, ...]:
        out = []
        try:
            items = _items(file, top, key)
        except MappingError as err:
            errors.append(err)
            return ()
        for item, line, where in items:
            try:
                out.append(build(file, item, line, where))
            except MappingError as err:
                errors.append(err)
        return tuple(out)

    fields: dict[str, Any] = {}
    for key, read in (("name", lambda: top.text("name")), ("description", lambda: top.text("description")),
                      ("ports", lambda: _ports(top)), ("tempo", lambda: _tempo(top)),
                      ("initial", lambda: _initial(top)),
                      ("pointer", lambda: _pointer(file, top))):
        try:
            fields[key] = read()
        except MappingError as err:
            errors.append(err)
    tempo, bpm = fields.pop("tempo", ("clock", None))
    mapping = Mapping(
        version=1, tempo=tempo, bpm=bpm, **fields,
        controls=section("controls", _control), notes=section("notes", _note_range),
        keys=section("keys", _key),
        path=file, text=text,
    )
    _check_duplicates(file, mapping, errors)
    errors.sort(key=lambda err: err.line)
    return (None if errors else mapping), errors


def _presets_folder() -> Path:
    """The shipped presets: ``mappings/`` of a checkout (``pip install -e``), else where a wheel put them."""
    checkout = Path(__file__).resolve().parents[2] / "mappings"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "latent-instrument" / "mappings"


PRESETS = _presets_folder()
DEFAULT_MAPPING = PRESETS / "default.yaml"  # any MIDI controller (and a few keys)
KEYBOARD_MAPPING = PRESETS / "keyboard.yaml"  # computer keyboard and mouse, for playing without MIDI


def preset_path(name: str) -> Path:
    """The file of a shipped preset: ``preset_path("default")`` -> .../mappings/default.yaml. An existing
    path, or a name with a slash or ending in .yaml, is returned unchanged: a command line can take either."""
    if "/" in name or name.endswith((".yaml", ".yml")) or Path(name).exists():
        return Path(name)
    return PRESETS / f"{name}.yaml"


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; raises MappingError (the first mistake, by line) if it has any."""
    mapping, errors = validate_file(path)
    if errors:
        raise errors[0]
    assert mapping is not None
    return mapping


def validate_file(path: str | Path) -> tuple[Mapping | None, list[MappingError]]:
    """(mapping or None, every error) for the file at ``path``; unreadable files give one error."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        return None, [MappingError(file, 0, "", f"cannot read: {err.strerror or err}")]
    except UnicodeDecodeError as err:
        return None, [MappingError(file, 0, "", f"not UTF-8 text ({err.reason} at byte {err.start})")]
    return parse_mapping(text, file)
