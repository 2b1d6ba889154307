"""A mapping in words, for the help overlay: what each MIDI control, note range and key does.

``describe_controls(mapping)`` -> [("CC 16 (knob 1)", "noise 0..1"), ("notes 60-127", "anchors 1-68, glide")]:
the control as the player finds it on the controller (its label is its name there), then what it does.
Anchors are counted from 1, as a player counts pads; the mapping file counts from 0.
"""

from __future__ import annotations

from instrument.mapping.fields import fmt
from instrument.mapping.model import Control, KeyBinding, Mapping, NoteRange
from instrument.params import PARAMS

_SOURCE_NAMES = {"pitchbend": "pitch bend", "aftertouch": "aftertouch", "program": "program change"}


def _number(param: str, value: object) -> str:
    """A value of ``param`` as shown: anchors from 1, on/off for toggles."""
    if param == "anchor" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt(value + 1)
    if isinstance(value, bool):
        return "on" if value else "off"
    return fmt(value) if isinstance(value, (int, float)) else str(value)


def _step(param: str, step: float | None) -> str:
    if step is None or step == 1:
        return f"next {param}"
    if step == -1:
        return f"previous {param}"
    return f"{param} {step:+g}"


def _action(param: str, action: str, value: object = None, step: float | None = None) -> str:
    """What a button (a press) does: ``freeze on/off``, ``anchor 3``, ``next path``."""
    if action == "toggle":
        return f"{param} on/off"
    if action == "hold":
        return f"{param} while held"
    if action == "trigger":
        return param
    if action == "set":
        return f"{param} {_number(param, value)}"
    if action == "step":
        return _step(param, step)
    return param


def _follow(c: Control) -> str:
    """What a knob, fader, wheel or encoder does: ``noise 0..1``, ``path slerp/lerp/...``."""
    p = PARAMS[c.param]
    if c.source == "program":
        return f"{c.param} by program number"
    if p.kind == "choice":
        text = f"{c.param} {'/'.join(p.choices)}"
    elif p.kind == "toggle":
        text = f"{c.param} on in the upper half"
    elif c.mode == "nudge":
        text = f"{c.param} {c.low:+g}..{c.high:+g}, springs back"
    else:
        text = f"{c.param} {_number(c.param, c.low)}..{_number(c.param, c.high)}"
    extras = [f"{c.relative.replace('_', ' ')} encoder" if c.relative else "",
              "reversed" if c.invert else "", "" if c.curve.kind == "linear" else f"{c.curve.kind} curve",
              "" if c.takeover == "jump" else c.takeover]
    extras = [x for x in extras if x]
    return f"{text} ({', '.join(extras)})" if extras else text


def _source(c: Control, channels: bool) -> str:
    """The control's message in words: "CC 16", "CC 0/32 (14-bit)", "note 36", "pitch bend"."""
    name = {
        "cc": f"CC {c.number}", "cc14": f"CC {c.number}/{c.lsb} (14-bit)", "nrpn": f"NRPN {c.number}",
        "note": f"note {c.number}", "osc": f"OSC {c.address}",
        "audio": c.describe() if c.source == "audio" else "",  # (only an audio control has a feature)
        "polytouch": "poly aftertouch" if c.number is None else f"poly aftertouch on note {c.number}",
    }.get(c.source, _SOURCE_NAMES.get(c.source, c.source))
    if channels and c.channel is not None:
        name += f" ch {c.channel + 1}"
    return f"{name} ({c.label})" if c.label else name


def _notes(r: NoteRange) -> tuple[str, str]:
    notes = f"note {r.low}" if r.low == r.high else f"notes {r.low}-{r.high}"
    first, last = r.anchor + 1, r.anchor + 1 + r.high - r.low
    anchors = f"anchor {first}" if first == last else f"anchors {first}-{last}"
    how = {"jump": "cut", "glide": "glide", "hold": "while held"}[r.behaviour]
    return (f"{notes} ({r.label})" if r.label else notes), f"{anchors}, {how}"


def describe_controls(mapping: Mapping) -> list[tuple[str, str]]:
    """(control, what it does) for each MIDI control and note range of ``mapping``, in file order.

    The channel is named only where the mapping tells channels apart (one number on several channels)."""
    numbers = [(c.source, c.number) for c in mapping.controls]
    out = []
    for c in mapping.controls:
        channels = numbers.count((c.source, c.number)) > 1
        what = _follow(c) if c.action == "follow" else _action(c.param, c.action, c.value, c.step)
        out.append((_source(c, channels), what))
    return out + [_notes(r) for r in mapping.notes]


def describe_key(k: KeyBinding) -> str:
    """What a computer key does: its label, else in words (``anchor 1``, ``speed +0.1/s while held``)."""
    if k.label:
        return k.label
    if k.action == "ramp":
        return f"{k.param} {k.rate or 0:+g}/s while held"
    return _action(k.param, k.action, k.value, k.step)


def describe_keys(mapping: Mapping) -> list[tuple[str, str]]:
    """(key, what it does) for each computer key of ``mapping``, in file order."""
    return [(k.key, describe_key(k)) for k in mapping.keys]
