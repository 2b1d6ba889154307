"""The schema of a mapping file, section by section: each reader turns one YAML entry into a model object
or raises a MappingError at the line and key of the first mistake in it.

Top level: ``version``, ``name``, ``description``, ``ports``, ``tempo``, ``initial``, ``controls`` (MIDI
controls, OSC addresses and audio features), ``notes`` (note ranges selecting anchors), ``keys`` (computer
keys), ``pointer`` (mouse axes).
"""

from __future__ import annotations

import re
from typing import Any

from instrument.events import AUDIO_FEATURES
from instrument.mapping.fields import Entry, fmt, is_number, kind, not_number, show, suggest
from instrument.mapping.model import (
    ACTIONS,
    CONTROL_MODES,
    CURVES,
    DEFAULT_SMOOTHING,
    NOTE_BEHAVIOURS,
    POINTER_BUTTONS,
    SOURCES,
    TAKEOVERS,
    Control,
    Curve,
    KeyBinding,
    MappingError,
    NoteRange,
    PointerAxis,
)
from instrument.midi.messages import RELATIVE_MODES
from instrument.params import PARAMS, Param

TOP_KEYS = ("version", "name", "description", "ports", "tempo", "initial", "controls", "notes", "keys",
            "pointer")
CONTROL_KEYS = SOURCES + ("lsb", "channel", "param", "range", "curve", "points", "invert", "smoothing",
                          "takeover", "relative", "step", "action", "value", "mode", "bits", "label",
                          "feedback", "attack", "release", "scene", "slot")
NOTE_KEYS = ("notes", "channel", "anchor", "behaviour", "glide", "label")
KEY_KEYS = ("key", "param", "action", "value", "step", "rate", "label", "scene", "slot")
AXIS_KEYS = ("param", "range", "curve", "points", "invert", "smoothing", "button", "label")

RELATIVE_ALIASES = {"binary_offset": "offset_binary", "signed_bit": "sign_bit"}
MAX_SMOOTHING = 10.0  # seconds
MAX_PORTS = 32

# pygame key names (pygame.key.name) a binding may use, besides single printable characters.
NAMED_KEYS = frozenset(
    ["space", "return", "escape", "tab", "backspace", "delete", "insert", "home", "end", "page up",
     "page down", "up", "down", "left", "right", "left shift", "right shift", "left ctrl", "right ctrl",
     "left alt", "right alt", "caps lock"]
    + [f"f{i}" for i in range(1, 16)]
    + [f"[{c}]" for c in "0123456789+-*/."] + ["enter"]
)

# An OSC address: /, then parts without spaces or the characters OSC keeps for patterns.
_OSC_ADDRESS = re.compile(r"^(/[^\s\x00-\x1f\x7f/#*,?\[\]{}]+)+$")
_NOTE_NAME = re.compile(r"^([a-g])([#b]?)(-?\d)$", re.IGNORECASE)
_NOTE_RANGE = re.compile(r"^\s*([A-Ga-g][#b]?-?\d|\d+)\s*-\s*([A-Ga-g][#b]?-?\d|\d+)\s*$")
_SEMITONE = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def parse_note(v: Any) -> int:
    """60, "60" or a note name ("C4" = 60, "F#2", "Bb3") -> 0..127; ValueError otherwise."""
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and v.strip().isdigit() and len(v) < 8:
        n = int(v)
    elif isinstance(v, str) and (m := _NOTE_NAME.match(v.strip())):
        n = (int(m.group(3)) + 1) * 12 + _SEMITONE[m.group(1).lower()] + {"#": 1, "b": -1, "": 0}[m.group(2)]
    else:
        raise ValueError(f"{show(v)} is not a note: write 0..127 or a name like C4 (= 60)")
    if not 0 <= n <= 127:
        raise ValueError(f"{show(v)} is outside the notes 0..127")
    return n


def default_action(p: Param) -> str:
    """What a control or key does to ``p`` when the file does not say: toggle, trigger, or follow."""
    return {"toggle": "toggle", "trigger": "trigger"}.get(p.kind, "follow")


# --- shared pieces ----------------------------------------------------------------------------------------
def value_range(e: Entry, p: Param, *, nudge: bool = False) -> tuple[float, float]:
    """``range: [low, high]`` within the param's range; a nudge (an amount added) may span -width..width."""
    width = p.high - p.low
    bounds = (-width, width) if nudge else (p.low, p.high)
    if not e.has("range"):
        return (-width / 2, width / 2) if nudge else (float(p.low), float(p.high))
    if p.kind not in ("continuous", "integer"):
        raise e.error("range", f"{p.name} is a {p.kind} parameter; range is for numbers")
    v = e.raw("range")
    if not isinstance(v, list) or len(v) != 2:
        raise e.error("range", f"{show(v)} should be [low, high], e.g. [{fmt(p.low)}, {fmt(p.high)}]")
    for x in v:
        if not is_number(x):
            raise e.error("range", f"{not_number(x)} (range should be [low, high])")
    low, high = float(v[0]), float(v[1])
    if low >= high:
        raise e.error("range", f"low {fmt(low)} is not below high {fmt(high)}; "
                      "to turn a control round, keep [low, high] and add `invert: true`")
    if low < bounds[0] or high > bounds[1]:
        what = "a nudge on " if nudge else ""
        raise e.error("range", f"[{low:g}, {high:g}] goes outside {what}{p.name}'s "
                      f"{fmt(bounds[0])}..{fmt(bounds[1])}")
    return low, high


def curve(e: Entry) -> Curve:
    """``curve:`` and, for ``curve: points``, ``points: [[x, y], ...]`` with x rising, all within 0..1."""
    shape = e.choice("curve", CURVES, "points" if e.has("points") else "linear")
    if shape != "points":
        if e.has("points"):
            raise e.error("points", f"points need `curve: points` (curve is {shape})")
        return Curve(shape or "linear")
    if not e.has("points"):
        raise e.error("curve", "`curve: points` needs `points: [[x, y], ...]` with x rising")
    pts = e.raw("points")
    example = "should be a list of [x, y] pairs, e.g. [[0, 0], [0.5, 0.2], [1, 1]]"
    if not isinstance(pts, list) or not 2 <= len(pts) <= 64:
        raise e.error("points", f"{example} (2 to 64 of them)")
    out: list[tuple[float, float]] = []
    for pair in pts:
        if not (isinstance(pair, list) and len(pair) == 2 and all(is_number(c) for c in pair)):
            raise e.error("points", f"{show(pair)}: {example}")
        x, y = float(pair[0]), float(pair[1])
        if not (0 <= x <= 1 and 0 <= y <= 1):
            raise e.error("points", f"{show(pair)}: x and y must be within 0..1")
        if out and x <= out[-1][0]:
            raise e.error("points", f"x must rise from point to point: {fmt(x)} comes after "
                          f"{fmt(out[-1][0])}")
        out.append((x, y))
    return Curve("points", tuple(out))


def value_for(e: Entry, key: str, p: Param) -> float | int | str | bool:
    """What ``action: set`` sets ``p`` to: true/false, one of its choices, or a number in its range."""
    v = e.raw(key)
    if p.kind == "toggle":
        if not isinstance(v, bool):
            raise e.error(key, f"{p.name} is on or off: write true or false, not {show(v)}")
        return v
    if p.kind == "choice":
        return e.choice(key, p.choices) or ""
    if p.kind == "trigger":
        raise e.error(key, f"{p.name} is a trigger; it takes no value")
    number = e.check_number(key, v, p.low, p.high)
    if p.kind == "integer":
        if number != int(number):
            raise e.error(key, f"{show(v)} is not a whole number ({p.name} counts)")
        return int(number)
    return number


def step_for(e: Entry, p: Param) -> float | None:
    """``step:``: units per press or encoder tick; at most the param's whole range (choices: places)."""
    if not e.has("step"):
        return None
    if p.kind == "choice":
        return float(e.integer("step", -len(p.choices), len(p.choices), what=f" ({p.name} moves by places)")
                     or 0)
    width = p.high - p.low if p.kind in ("continuous", "integer") else 1.0
    return e.number("step", None, -width, width)


def check_action(e: Entry, p: Param, action: str, *, relative: bool = False) -> None:
    if not _fits(action, p):
        good = [a for a in ACTIONS if a != "ramp" or e.where.startswith("keys")]
        ok = [a for a in good if _fits(a, p)]
        raise e.error("action", f"{action!r} does not suit {p.name} (a {p.kind} parameter); "
                      f"use {', '.join(ok)}")
    if action == "set" and not e.has("value"):
        raise e.missing("value", f"`action: set` needs `value:` for {p.name}")
    if action == "step" and p.kind == "continuous" and not e.has("step"):
        raise e.missing("step", f"`action: step` on {p.name} needs `step:` (how much one press adds; "
                        "negative to go down)")
    if relative and action != "follow":
        raise e.error("relative", "relative encoders follow a parameter; remove `action:`")


def _fits(action: str, p: Param) -> bool:
    return {
        "follow": p.kind in ("continuous", "integer", "choice", "toggle"),
        "toggle": p.kind == "toggle", "hold": p.kind == "toggle", "trigger": p.kind == "trigger",
        "step": p.kind in ("continuous", "integer", "choice"), "set": p.kind != "trigger",
        "ramp": p.kind in ("continuous", "integer"),
    }[action]


# --- controls ---------------------------------------------------------------------------------------------
def source(e: Entry) -> tuple[str, int | None, int | None]:
    """(source, number, lsb) of a control entry: exactly one of SOURCES."""
    given = [s for s in SOURCES if e.has(s)]
    if not given:
        raise MappingError(e.file, e.line, e.where, f"says nothing about what drives it: give one of "
                           f"{', '.join(SOURCES)} (e.g. `cc: 74`)")
    if len(given) > 1:
        raise e.error(given[1], f"one source per entry, but this one has {' and '.join(given)}")
    name = given[0]
    v = e.raw(name)
    if name == "osc":
        if not (isinstance(v, str) and len(v) <= 200 and _OSC_ADDRESS.match(v)):
            raise e.error(name, f"{show(v)} is not an OSC address: write one like /1/fader1 (a / before each "
                          "part; no spaces, no * ? [ ] { } # ,)")
        return name, None, None
    if name in ("pitchbend", "aftertouch", "program"):
        if v is not True:
            raise e.error(name, f"write `{name}: true` (got {show(v)})")
        return name, None, None
    if name in ("note", "polytouch"):
        if name == "polytouch" and v is True:
            return name, None, None
        try:
            return name, parse_note(v), None
        except ValueError as err:
            raise e.error(name, str(err)) from None
    if name == "cc":
        return name, e.integer("cc", 0, 127, what=" (CC numbers are 0..127)"), None
    if name == "audio":
        return name, AUDIO_FEATURES.index(e.choice("audio", AUDIO_FEATURES) or ""), None
    if name == "cc14":
        msb = e.integer("cc14", 0, 31, what=" (a 14-bit pair's MSB is CC 0..31; its LSB is MSB + 32)")
        assert msb is not None
        lsb = e.integer("lsb", 0, 127, msb + 32, what=" (CC numbers are 0..127)")
        if lsb == msb:
            raise e.error("lsb", f"the LSB must be another CC than the MSB ({msb}); usually MSB + 32")
        return name, msb, lsb
    # nrpn: a number 0..16383 or [msb, lsb]
    if isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 127 for x in v):
        return name, v[0] * 128 + v[1], None
    return name, e.integer("nrpn", 0, 16383, what=" (NRPN numbers are 0..16383, or [msb, lsb])"), None


def _relative(e: Entry, src: str, p: Param) -> str | None:
    written = e.raw("relative")
    if isinstance(written, str) and written in RELATIVE_ALIASES:  # the names Ableton and others use
        e.data["relative"] = RELATIVE_ALIASES[written]
    relative = e.choice("relative", RELATIVE_MODES)
    if relative and src != "cc":
        raise e.error("relative", f"relative modes are for `cc:` encoders, not {src}")
    if relative and p.kind not in ("continuous", "integer", "choice"):
        raise e.error("relative", f"{p.name} is a {p.kind} parameter; encoders drive numbers and choices")
    return relative


def _feedback(e: Entry, src: str, action: str, mode: str) -> bool:
    """``feedback: true``: the parameter's value goes back to the control (lights, rings, motor faders)."""
    if not e.boolean("feedback"):
        return False
    if src not in ("cc", "note", "osc"):
        raise e.error("feedback", f"feedback goes back to `cc:`, `note:` and `osc:` controls, not {src}")
    if action in ("step", "trigger") or mode == "nudge":
        raise e.error("feedback", f"{'a nudge' if mode == 'nudge' else f'a {action} button'} has no value "
                      "of its own to show; remove `feedback:`")
    return True


def scene_action(e: Entry) -> None:
    """``scene: store|recall`` with ``slot: N`` (counted from 0): a button that stores or recalls scene N (a
    recall button stores while ``shift`` is held). Read as ``param: scene_<what>, action: set, value: N``."""
    if not e.has("scene"):
        if e.has("slot"):
            raise e.error("slot", "slot is for `scene: store` and `scene: recall` entries")
        return
    for key in ("param", "action", "value"):
        if e.has(key):
            raise e.error(key, f"a scene entry takes no `{key}:` (it stores or recalls its slot)")
    what = e.choice("scene", ("store", "recall"))
    if not e.has("slot"):
        raise e.missing("slot", "missing: which scene, e.g. `slot: 0` (the first)")
    slot = e.integer("slot", 0, 127, what=" (scene slots are 0..127)")
    e.data.update(param=f"scene_{what}", action="set", value=slot)


def envelope(e: Entry, src: str) -> tuple[float, float]:
    """``attack:`` and ``release:`` seconds, for ``audio:`` sources only."""
    for key in ("attack", "release"):
        if e.has(key) and src != "audio":
            raise e.error(key, f"{key} shapes an `audio:` feature's envelope; {src} has none")
    return (e.number("attack", 0.0, 0.0, MAX_SMOOTHING) or 0.0, e.number("release", 0.0, 0.0, MAX_SMOOTHING)
            or 0.0)


def control(file: str, data: Any, line: int, where: str) -> Control:
    """One ``controls:`` entry."""
    e = Entry(file, data, where, line, CONTROL_KEYS)
    src, number, lsb = source(e)
    if e.has("lsb") and src != "cc14":
        raise e.error("lsb", "lsb is for `cc14:` pairs")
    if e.has("channel") and src in ("osc", "audio"):
        raise e.error("channel", f"{'OSC' if src == 'osc' else 'audio'} has no channels; remove `channel:`")
    scene_action(e)
    attack, release = envelope(e, src)
    p = e.param()
    low, high = value_range(e, p, nudge=e.raw("mode") == "nudge")
    # An OSC toggle (TouchOSC's) holds its own state and says it: a toggle parameter follows it.
    default = "follow" if src == "osc" and p.kind == "toggle" else default_action(p)
    action = e.choice("action", tuple(a for a in ACTIONS if a != "ramp"), default) or "follow"
    relative = _relative(e, src, p)
    check_action(e, p, action, relative=relative is not None)
    if src == "program" and action != "follow":
        raise e.error("action", "program change selects a value directly; remove `action:`")
    if src == "program" and p.kind not in ("integer", "choice"):
        raise e.error("param", f"program change selects a number or choice (e.g. bank), not {p.name} "
                      f"(a {p.kind} parameter)")
    mode = e.choice("mode", CONTROL_MODES, "absolute") or "absolute"
    if mode == "nudge" and (p.kind != "continuous" or action != "follow" or relative):
        raise e.error("mode", "nudge adds a follow control's value on top of a continuous parameter")
    takeover = e.choice("takeover", TAKEOVERS, "jump") or "jump"
    if takeover != "jump" and (relative or action != "follow" or mode == "nudge" or src == "program"):
        raise e.error("takeover", "takeover is for absolute knobs and faders following a parameter")
    bits = e.integer("bits", 7, 14, 14) or 14
    if e.has("bits") and (src != "nrpn" or bits not in (7, 14)):
        raise e.error("bits", "bits (7 or 14) is for `nrpn:` data resolution")
    default_smoothing = DEFAULT_SMOOTHING if p.kind == "continuous" and action == "follow" else 0.0
    return Control(
        source=src, param=p.name, number=number, lsb=lsb, channel=e.channel(), low=low, high=high,
        curve=curve(e), invert=e.boolean("invert"),
        smoothing=e.number("smoothing", default_smoothing, 0.0, MAX_SMOOTHING) or 0.0,
        takeover=takeover, relative=relative, step=step_for(e, p), action=action,
        value=value_for(e, "value", p) if e.has("value") else None, mode=mode, bits=bits,
        label=e.text("label"), address=e.raw("osc") if src == "osc" else "",
        feedback=_feedback(e, src, action, mode), attack=attack, release=release, line=e.line,
    )


# --- notes, keys, pointer ---------------------------------------------------------------------------------
def _notes(e: Entry) -> tuple[int, int]:
    if not e.has("notes"):
        raise e.missing("notes", "missing: which notes, e.g. `notes: 60-84` or `notes: C4-C6`")
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
        raise e.error("notes", f"the range {show(v)} runs downwards; write the lower note first")
    return low, high


def note_range(file: str, data: Any, line: int, where: str) -> NoteRange:
    """One ``notes:`` entry."""
    e = Entry(file, data, where, line, NOTE_KEYS)
    low, high = _notes(e)
    anchor = e.integer("anchor", 0, 127, 0) or 0
    if anchor + (high - low) > 127:
        raise e.error("anchor", f"anchors {anchor}..{anchor + high - low} go past 127")
    glide = None
    if e.has("glide"):
        glide = e.pair("glide", 0.0, 8.0, "[soft, hard]: seconds of glide for the softest and the hardest "
                       "note, each 0..8, e.g. [2.0, 0.1]")
    behaviour = e.choice("behaviour", NOTE_BEHAVIOURS, "glide") or "glide"
    if glide is not None and behaviour == "jump":
        raise e.error("glide", "a jump has no glide time; use `behaviour: glide` or remove `glide:`")
    return NoteRange(low=low, high=high, channel=e.channel(), anchor=anchor, behaviour=behaviour, glide=glide,
                     label=e.text("label"), line=e.line)


def _key_name(e: Entry) -> str:
    if not e.has("key"):
        raise e.missing("key", "missing: which key, e.g. `key: space`")
    k = e.raw("key")
    name = str(k).lower() if isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool)) else ""
    if not (len(name) == 1 and name.isprintable()) and name not in NAMED_KEYS:
        hint = suggest(name, NAMED_KEYS) or (": a single character, or a name like space, return, escape, "
                                             "up, f1 (see mappings/README.md)")
        if isinstance(k, bool):
            hint = " (YAML reads yes, no, on and off as true or false: put the key in quotes)"
        raise e.error("key", f"{show(k)} is not a key name{hint}")
    return name


def key(file: str, data: Any, line: int, where: str) -> KeyBinding:
    """One ``keys:`` entry."""
    e = Entry(file, data, where, line, KEY_KEYS)
    name = _key_name(e)
    scene_action(e)
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
        raise e.missing("action", f"a key on {p.name} needs `value:` (set it), `step:` (add per press) or "
                        "`rate:` (units per second while held)")
    check_action(e, p, action)
    if action == "ramp" and not e.has("rate"):
        raise e.missing("rate", "`action: ramp` needs `rate:` (units a second)")
    width = p.high - p.low
    return KeyBinding(key=name, param=p.name, action=action,
                      value=value_for(e, "value", p) if e.has("value") else None,
                      step=step_for(e, p), rate=e.number("rate", None, -100 * width, 100 * width),
                      label=e.text("label"), line=e.line)


def pointer(file: str, top: Entry) -> tuple[PointerAxis, ...]:
    """``pointer: {x: {...}, y: {...}}``: the mouse axes."""
    v = top.raw("pointer")
    if v is None:
        return ()
    e = Entry(file, v, "pointer", top.lines.get("pointer", 0), ("x", "y"))
    axes = []
    for axis in ("x", "y"):
        if e.has(axis):
            a = Entry(file, e.raw(axis), f"pointer.{axis}", e.lines.get(axis, e.line), AXIS_KEYS)
            p = a.param()
            if p.kind not in ("continuous", "integer", "choice"):
                raise a.error("param", f"the pointer follows numbers and choices; {p.name} is a {p.kind}")
            low, high = value_range(a, p)
            axes.append(PointerAxis(
                axis=axis, param=p.name, low=low, high=high, curve=curve(a), invert=a.boolean("invert"),
                smoothing=a.number("smoothing", DEFAULT_SMOOTHING, 0.0, MAX_SMOOTHING) or 0.0,
                button=a.choice("button", POINTER_BUTTONS, "none") or "none", label=a.text("label"),
                line=a.line))
    return tuple(axes)


# --- top level --------------------------------------------------------------------------------------------
def version(top: Entry) -> None:
    if not top.has("version"):
        raise MappingError(top.file, 1, "version", "missing: the first line should be `version: 1`")
    v = top.raw("version")
    if isinstance(v, bool) or not isinstance(v, int) or v != 1:
        raise top.error("version", f"{show(v)} is not a version this program reads (write 1)")


def ports(top: Entry) -> tuple[str, ...] | None:
    """``ports:``: any, a port name, or a list of them (parts of names, any case)."""
    v = top.raw("ports", "any")
    if v == "any" or v is None:
        return None
    names = [v] if isinstance(v, str) else v
    if isinstance(names, list) and 0 < len(names) <= MAX_PORTS and all(
            isinstance(x, str) and 0 < len(x.strip()) <= 200 for x in names):
        return None if "any" in names else tuple(names)
    raise top.error("ports", f"{show(v)} should be any, a port name, or a list of up to {MAX_PORTS} port "
                    "names (parts of the names that `latent-instrument ports` lists)")


def initial(top: Entry) -> tuple[tuple[str, Any], ...]:
    """``initial: {speed: 0.05, noise: 0.1}``: where the parameters start when a session starts."""
    if not top.has("initial"):
        return ()
    settable = tuple(name for name, p in PARAMS.items() if p.kind != "trigger")
    entry = Entry(top.file, top.raw("initial"), "initial", top.lines.get("initial", top.line), settable)
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


def tempo(top: Entry) -> tuple[str, float | None]:
    """``tempo:`` clock, a BPM, or {source: clock|fixed, bpm: N} -> (source, bpm or None)."""
    v = top.raw("tempo", "clock")
    if v == "clock":
        return "clock", None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return "fixed", top.check_number("tempo", v, 20, 300)
    if isinstance(v, dict):
        t = Entry(top.file, v, "tempo", top.lines.get("tempo", top.line), ("source", "bpm"))
        return t.choice("source", ("clock", "fixed"), "clock") or "clock", t.number("bpm", None, 20, 300)
    raise top.error("tempo", f"{kind(v)} should be clock, a BPM (20..300), or {{source: clock, bpm: 120}}")
