"""Writing a Mapping back to YAML (MIDI learn saves with this): one entry per line, defaults left out.

``parse_mapping(dump_mapping(m))`` gives a mapping equal to ``m``. Comments of a hand-written file are not
kept, which is why learn saves to a file of its own unless told otherwise.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from instrument.mapping.loader import DEFAULT_SMOOTHING, default_action
from instrument.mapping.model import Control, Curve, KeyBinding, Mapping, NoteRange, PointerAxis
from instrument.params import PARAMS


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
    else:
        entry[c.source] = c.number
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


def save_mapping(m: Mapping, path: str | Path, header: str = "") -> Path:
    """Write ``m`` to ``path`` atomically (a temporary file renamed over it): a watcher never reads half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump_mapping(m, header))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
