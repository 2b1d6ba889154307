"""A session's control state as JSON: what a take starts from, so that it re-renders exactly however late
in a session it began.

``encode(value)`` turns plain values, containers and the objects of ``ALLOWED`` into JSON-ready data;
``decode(data)`` builds them back. Objects are rebuilt field by field, only for the classes in the
allowlist: a take is a file people share, and reading one must never run code it names (no pickle).
Floats survive exactly (JSON's shortest round-trip repr); NaN and infinities are written as strings.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import math
from typing import Any

import numpy as np
import torch

# "module:Class" of every object a snapshot may hold.
ALLOWED = frozenset({
    "builtins:list",  # (factories of defaultdicts)
    "builtins:dict",
    "builtins:set",
    "builtins:int",
    "instrument.control:_Smoothed",
    "instrument.control:_Ramp",
    "instrument.midi.clock:MidiClock",
    "instrument.midi.messages:Cc14Decoder",
    "instrument.midi.messages:NrpnDecoder",
    "instrument.performance:Coords",
    "instrument.performance:Performance",
    "instrument.lab.pacing:PacingTable",
    "instrument.scenes:SceneBank",
    "instrument.cues:Cues",
    "instrument.gestures:GestureLoops",
    "instrument.gestures:Loop",
})


class SnapshotError(ValueError):
    """Snapshot data that does not decode (damaged, or naming a class outside the allowlist)."""


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _fields(obj: Any) -> list[str]:
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    slots = [s for klass in type(obj).__mro__ for s in getattr(klass, "__slots__", ())]
    return slots or list(vars(obj))


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data (see the module docstring); TypeError for anything else."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (list, tuple, set, frozenset, collections.deque)):
        ordered = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        items = [encode(v) for v in ordered]
        if isinstance(value, list):
            return items
        kind = "set" if isinstance(value, (set, frozenset)) else type(value).__name__
        return {kind: items, **({"maxlen": value.maxlen} if isinstance(value, collections.deque) else {})}
    if isinstance(value, dict):
        items = [[encode(k), encode(v)] for k, v in value.items()]
        if isinstance(value, collections.defaultdict):
            return {"defaultdict": items, "factory": _name(value.default_factory)}
        return {"dict": items}
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, torch.Tensor):
        return {"tensor": value.detach().cpu().tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, np.generic):
        return encode(value.item())
    name = _name(type(value))
    if name not in ALLOWED:
        raise TypeError(f"a snapshot cannot hold a {name}")
    return {"object": name, "fields": {f: encode(getattr(value, f)) for f in _fields(value)}}


def decode(data: Any) -> Any:
    """The value ``encode`` gave ``data`` for; SnapshotError when it cannot be."""
    try:
        return _decode(data)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"damaged snapshot: {type(exc).__name__}: {exc}") from None


def _class(name: str) -> type:
    if name not in ALLOWED:
        raise SnapshotError(f"a snapshot names {name!r}, which it may not hold")
    module, _, qualname = name.partition(":")
    return getattr(importlib.import_module(module), qualname)


def _decode(data: Any) -> Any:
    if not isinstance(data, dict):
        return [_decode(v) for v in data] if isinstance(data, list) else data
    if "float" in data:
        return float(data["float"])
    if "tuple" in data:
        return tuple(_decode(v) for v in data["tuple"])
    if "set" in data:
        return {_decode(v) for v in data["set"]}
    if "deque" in data:
        return collections.deque((_decode(v) for v in data["deque"]), maxlen=data["maxlen"])
    if "dict" in data:
        return {_decode(k): _decode(v) for k, v in data["dict"]}
    if "defaultdict" in data:
        out = collections.defaultdict(_class(data["factory"]))
        out.update((_decode(k), _decode(v)) for k, v in data["defaultdict"])
        return out
    if "array" in data:
        return np.asarray(data["array"], dtype=np.dtype(data["dtype"]))
    if "tensor" in data:
        dtype = getattr(torch, data["dtype"])
        if not isinstance(dtype, torch.dtype):
            raise SnapshotError(f"not a tensor dtype: {data['dtype']!r}")
        return torch.tensor(data["tensor"], dtype=dtype)
    cls = _class(data["object"])
    fields = {k: _decode(v) for k, v in data["fields"].items()}
    if dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen:
        return cls(**fields)
    obj = cls.__new__(cls)
    for key, value in fields.items():
        setattr(obj, key, value)
    return obj


def encode_fields(obj: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The instance attributes of ``obj`` (but ``skip``), encoded: the runtime state of an object whose
    structure is rebuilt otherwise."""
    return {name: encode(value) for name, value in vars(obj).items() if name not in skip}


def restore_fields(obj: Any, fields: dict[str, Any]) -> None:
    """Put ``encode_fields`` data back into ``obj``."""
    for name, data in fields.items():
        setattr(obj, name, decode(data))
