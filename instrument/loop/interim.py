"""Stand-ins for three functions the mapping package is getting: ``describe_controls``, ``describe_keys``
and ``match_preset``. Each name here is ``instrument.mapping``'s own where it has one, else the plain local
version below (same signature, same meaning). Once the mapping package has all three, import them from
there and delete this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import instrument.mapping as _mapping
from instrument.mapping import Mapping
from instrument.params import PARAMS


def _value(param: str, value: object) -> str:
    """A value as the screen shows it: anchors counted from 1, toggles on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if param == "anchor" and isinstance(value, (int, float)):
        return f"{value + 1:g}"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _press(param: str, action: str, value: object, step: float | None) -> str:
    if action == "set":
        return f"{param} {_value(param, value)}"
    if action == "step" and step not in (None, 1, -1):
        return f"{param} {step:+g}"
    if action == "step":
        return f"{'previous' if step == -1 else 'next'} {param}"
    return {"toggle": f"{param} on/off", "hold": f"{param} while held"}.get(action, param)


def _describe_controls(mapping: Mapping) -> list[tuple[str, str]]:
    out = []
    for c in mapping.controls:
        what = {"cc": f"CC {c.number}", "cc14": f"CC {c.number}/{c.lsb}", "nrpn": f"NRPN {c.number}",
                "note": f"note {c.number}"}.get(c.source, c.source)
        choices = PARAMS[c.param].choices
        if c.action == "follow" and choices:
            does = f"{c.param} {'/'.join(choices)}"
        elif c.action == "follow":
            does = f"{c.param} {_value(c.param, c.low)}..{_value(c.param, c.high)}"
        else:
            does = _press(c.param, c.action, c.value, c.step)
        out.append((f"{what} ({c.label})" if c.label else what, does))
    for r in mapping.notes:
        notes = f"notes {r.low}-{r.high}" if r.high > r.low else f"note {r.low}"
        out.append((notes, f"anchors {r.anchor + 1}-{r.anchor + 1 + r.high - r.low}, {r.behaviour}"))
    return out


def _describe_keys(mapping: Mapping) -> list[tuple[str, str]]:
    return [(k.key, k.label or (f"{k.param} {k.rate or 0:+g}/s while held" if k.action == "ramp"
                                else _press(k.param, k.action, k.value, k.step))) for k in mapping.keys]


def _match_preset(port_names: Iterable[str], folder: str | Path | None = None) -> Path | None:
    fits = []
    for path in sorted(Path(folder or _mapping.PRESETS).glob("*.yaml")):
        try:
            ports = _mapping.load_mapping(path).ports or ()
        except _mapping.MappingError:
            continue
        fits.append((path, [p.lower() for p in ports]))
    for port in port_names:
        best = max(((len(p), path) for path, ports in fits for p in ports if p in port.lower()), default=None,
                   key=lambda fit: fit[0])
        if best is not None:
            return best[1]
    return None


describe_controls = getattr(_mapping, "describe_controls", _describe_controls)
describe_keys = getattr(_mapping, "describe_keys", _describe_keys)
match_preset = getattr(_mapping, "match_preset", _match_preset)
