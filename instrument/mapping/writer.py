"""Writing mappings as YAML (MIDI learn saves with this): one entry per line, defaults left out.

``dump_mapping(m)`` writes a whole Mapping: ``parse_mapping(dump_mapping(m))`` gives a mapping equal to
``m``. ``edit_entries(text, old, controls, notes)`` changes the controls and note ranges of a file a person
wrote, through a round-trip YAML loader (ruamel.yaml): the entries kept stay exactly as written, comments
included, and only the new ones are written out. It is only given text that already validated, so the
limits of ``safeyaml`` hold for it too.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ruamel.yaml
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from instrument.events import AUDIO_FEATURES
from instrument.mapping.loader import parse_mapping
from instrument.mapping.model import (
    DEFAULT_SMOOTHING,
    Control,
    Curve,
    KeyBinding,
    Mapping,
    NoteRange,
    PointerAxis,
)
from instrument.mapping.sections import default_action
from instrument.params import PARAMS
from instrument.recorder import atomic_write


def _flow(entry: dict[str, Any]) -> str:
    return yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=1 << 16).strip()


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _shape(entry: dict[str, Any], low: float, high: float, default: tuple[float, float], curve: Curve,
           invert: bool, smoothing: float, default_smoothing: float) -> None:
    if (low, high) != default:
        entry["range"] = [_number(low), _number(high)]
    if curve.kind != "linear":
        entry["curve"] = curve.kind
    if curve.kind == "points":
        entry["points"] = [[_number(x), _number(y)] for x, y in curve.points]
    if invert:
        entry["invert"] = True
    if smoothing != default_smoothing:
        entry["smoothing"] = _number(smoothing)


def control_entry(c: Control) -> dict[str, Any]:
    """The YAML mapping for one control, defaults left out."""
    p = PARAMS[c.param]
    entry: dict[str, Any] = {}
    if c.source in ("pitchbend", "aftertouch", "program") or (c.source == "polytouch" and c.number is None):
        entry[c.source] = True
    elif c.source == "audio":
        entry[c.source] = AUDIO_FEATURES[c.number or 0]
    else:
        entry[c.source] = c.address if c.source == "osc" else c.number
    if c.source == "cc14" and c.lsb != (c.number or 0) + 32:
        entry["lsb"] = c.lsb
    if c.channel is not None:
        entry["channel"] = c.channel + 1
    entry["param"] = c.param
    width = p.high - p.low
    default_range = (-width / 2, width / 2) if c.mode == "nudge" else (float(p.low), float(p.high))
    smooth = DEFAULT_SMOOTHING if p.kind == "continuous" and c.action == "follow" else 0.0
    if c.mode == "nudge":
        entry["mode"] = "nudge"
    _shape(entry, c.low, c.high, default_range, c.curve, c.invert, c.smoothing, smooth)
    if c.takeover != "jump":
        entry["takeover"] = c.takeover
    if c.relative:
        entry["relative"] = c.relative
    if c.step is not None:
        entry["step"] = _number(c.step)
    if c.action != default_action(p):
        entry["action"] = c.action
    if c.value is not None:
        entry["value"] = c.value
    if c.source == "nrpn" and c.bits != 14:
        entry["bits"] = c.bits
    if c.feedback:
        entry["feedback"] = True
    for name in ("attack", "release"):
        if getattr(c, name):
            entry[name] = _number(getattr(c, name))
    if c.label:
        entry["label"] = c.label
    return entry


def _note_entry(r: NoteRange) -> dict[str, Any]:
    entry: dict[str, Any] = {"notes": r.low if r.low == r.high else f"{r.low}-{r.high}"}
    if r.channel is not None:
        entry["channel"] = r.channel + 1
    entry["anchor"] = r.anchor
    entry["behaviour"] = r.behaviour
    if r.glide is not None:
        entry["glide"] = [_number(g) for g in r.glide]
    if r.label:
        entry["label"] = r.label
    return entry


def _key_entry(k: KeyBinding) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": k.key, "param": k.param, "action": k.action}
    for name in ("value", "step", "rate"):
        if getattr(k, name) is not None:
            entry[name] = getattr(k, name)
    if k.label:
        entry["label"] = k.label
    return entry


def _axis_entry(a: PointerAxis) -> dict[str, Any]:
    p = PARAMS[a.param]
    entry: dict[str, Any] = {"param": a.param}
    default_range = (float(p.low), float(p.high))
    _shape(entry, a.low, a.high, default_range, a.curve, a.invert, a.smoothing, DEFAULT_SMOOTHING)
    if a.button != "none":
        entry["button"] = a.button
    if a.label:
        entry["label"] = a.label
    return entry


def dump_mapping(m: Mapping, header: str = "") -> str:
    """The mapping as YAML text; ``header`` (lines without '#') goes on top as a comment."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    out.append("version: 1")
    if m.name:
        out.append(f"name: {_flow({'n': m.name})[4:-1]}")
    if m.description:
        out.append(f"description: {_flow({'d': m.description})[4:-1]}")
    out.append("ports: any" if m.ports is None else f"ports: {_flow({'p': list(m.ports)})[4:-1]}")
    if m.tempo == "fixed" and m.bpm is not None:
        out.append(f"tempo: {_number(m.bpm)}")
    elif m.tempo == "fixed":
        out.append("tempo: {source: fixed}")
    elif m.bpm is not None:
        out.append(f"tempo: {{source: clock, bpm: {_number(m.bpm)}}}")
    else:
        out.append("tempo: clock")
    if m.initial:
        out.append(f"initial: {_flow(dict(m.initial))}")
    for title, items, entry in (("controls", m.controls, control_entry), ("notes", m.notes, _note_entry),
                                ("keys", m.keys, _key_entry)):
        if items:
            out.append(f"\n{title}:")
            out.extend(f"  - {_flow(entry(item))}" for item in items)
    if m.pointer:
        out.append("\npointer:")
        out.extend(f"  {a.axis}: {_flow(_axis_entry(a))}" for a in m.pointer)
    return "\n".join(out) + "\n"


def _flow_map(entry: dict[str, Any]) -> CommentedMap:
    out = CommentedMap(entry)
    out.fa.set_flow_style()
    return out


def _edit_list(doc: CommentedMap, key: str, old: Sequence[Any], new: Sequence[Any],
               entry: Callable[[Any], dict[str, Any]]) -> None:
    """Make the list ``doc[key]`` (whose items were read as ``old``) hold ``new``: items of ``old`` that
    ``new`` keeps (the same objects, in the same order) keep their text and comments; the others go, and
    their comments pass to the next item without comments of its own (an entry that replaces one keeps the
    comment of the line it replaces); new items are written where they stand in ``new``."""
    if not new and key not in doc:
        return
    seq = doc.get(key)
    if not isinstance(seq, CommentedSeq):
        seq = doc[key] = CommentedSeq()
    slots = dict(seq.ca.items)  # item index -> its comments (before it, and at the end of its line)
    where = {id(item): i for i, item in enumerate(old)}
    items: list[Any] = []
    comments: dict[int, Any] = {}
    carried: list[Any] = []
    next_old = 0

    def place(item: Any, slot: Any) -> None:
        if slot is None and carried:
            slot = carried[0]
        carried.clear()
        if slot is not None:
            comments[len(items)] = slot
        items.append(item)

    for n, item in enumerate(new):
        # The old entries dropped from here to the next one kept: their comments go to this item.
        i = where.get(id(item), next((where[id(x)] for x in new[n:] if id(x) in where), len(old)))
        carried.extend(slots[j] for j in range(next_old, i) if j in slots)
        next_old = i
        if id(item) not in where:
            place(_flow_map(entry(item)), None)
            continue
        place(seq[i], slots.get(i))
        next_old = i + 1
    carried.extend(slots[j] for j in range(next_old, len(old)) if j in slots)
    if carried and items and len(items) - 1 not in comments:
        comments[len(items) - 1] = carried[0]
    list.clear(seq)
    list.extend(seq, items)
    seq.ca.items.clear()
    seq.ca.items.update(comments)


def edit_entries(text: str, old: Mapping, controls: tuple[Control, ...], notes: tuple[NoteRange, ...]) -> str:
    """``text`` (the file ``old`` was read from) with its controls and notes made ``controls`` and ``notes``.

    Entries of ``old`` that are kept (the same objects) stay as written, comments and all; new entries are
    written one per line, defaults left out, where they stand in the new tuples. ValueError if the round-trip
    loader (YAML 1.2) cannot read what the mapping loader (YAML 1.1) read."""
    try:
        doc, indent, offset = load_yaml_guess_indent(text)
    except ruamel.yaml.YAMLError as err:
        raise ValueError(f"cannot edit this file in place: {err}") from None
    if not isinstance(doc, CommentedMap):
        raise ValueError("cannot edit this file in place: not a mapping of keys")
    writer = YAML()
    writer.indent(mapping=2, sequence=indent or 4, offset=2 if offset is None else offset)
    writer.width = 1 << 16  # one entry per line, however long
    writer.preserve_quotes = True
    _edit_list(doc, "controls", old.controls, controls, control_entry)
    _edit_list(doc, "notes", old.notes, notes, _note_entry)
    out = io.StringIO()
    writer.dump(doc, out)
    return out.getvalue()


def save_mapping(m: Mapping, path: str | Path, header: str = "") -> Path:
    """Write ``m`` to ``path`` atomically (a watcher never reads half a file): its own text when that text
    says exactly ``m`` (a file as read or as learn edited it, comments kept), else ``dump_mapping(m)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    same = bool(m.text) and parse_mapping(m.text, str(path))[0] == m
    atomic_write(path, (m.text if same else dump_mapping(m, header)).encode("utf-8"))
    return path
