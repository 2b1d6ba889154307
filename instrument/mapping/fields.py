"""Typed reading of one YAML entry of a mapping: each getter checks type and range and raises a MappingError
at the key's line, with the nearest known word as a suggestion (typos are the common mistake).

Numbers are finite (``.nan`` and ``.inf`` are YAML numbers, never mapping values) and inside the bounds the
caller gives; text is short; a list or a mapping where a word belongs is refused by name. Values are shown
in messages abbreviated, so a hostile value cannot flood a terminal.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Iterable
from typing import Any

from instrument.mapping.model import MappingError
from instrument.params import PARAMS, Param

TEXT_LIMIT = 200  # characters of a name or label (the HUD and the help overlay show them)



class _Short(reprlib.Repr):
    """reprlib's abbreviations, also for the loader's LineDict and LineList."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring, self.maxother, self.maxlist, self.maxdict, self.maxlevel = 40, 40, 4, 4, 2

    def repr_LineDict(self, x: dict, level: int) -> str:  # noqa: N802 - reprlib dispatches on type names
        return self.repr_dict(x, level)

    def repr_LineList(self, x: list, level: int) -> str:  # noqa: N802
        return self.repr_list(x, level)


_short = _Short()


def show(value: object) -> str:
    """``repr(value)`` abbreviated (long text, big lists and deep nesting cut with ...)."""
    return _short.repr(value)


def suggest(word: object, options: Iterable[str]) -> str:
    """" (did you mean X?)" for the nearest option, or ""."""
    if not isinstance(word, (str, int)) or isinstance(word, bool):
        return ""
    options = list(options)
    text = str(word).lower()[:100]
    near = [o for o in options if text and o.startswith(text)][:1]
    near = near or difflib.get_close_matches(text, options, n=1, cutoff=0.5)
    return f" (did you mean {near[0]}?)" if near else ""


def one_of(value: object, options: Iterable[str]) -> str:
    options = list(options)
    return f"{show(value)} is not one of {', '.join(options)}{suggest(value, options)}"


def fmt(x: float | None) -> str:
    """A number as written in a mapping: 2, 0.5, -3."""
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def kind(v: Any) -> str:
    """What a YAML value is, in words, for "should be X, not Y" messages."""
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return "nothing" if v is None else show(v)


def is_number(v: Any) -> bool:
    """An int or float (not a bool), finite."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def not_number(v: Any) -> str:
    """Why ``v`` is not a number a mapping can use: "'x' is not a number", "nan is not a finite number"."""
    if isinstance(v, float) and not math.isfinite(v):
        return f"{v} is not a finite number"
    return f"{show(v)} is not a number"


class Entry:
    """One YAML mapping being read: typed getters that raise MappingError at the key's line.

    ``where`` is the key path of the entry (``controls[3]``); unknown keys are refused at once."""

    def __init__(self, file: str, data: Any, where: str, line: int, allowed: tuple[str, ...]) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            raise MappingError(file, getattr(data, "line", 0) or line, where, f"should be a mapping of keys "
                               f"({', '.join(allowed)}), not {kind(data)}")
        self.data = data
        self.line = getattr(data, "line", 0) or line
        self.lines: dict[Any, int] = getattr(data, "key_lines", {})
        for key in data:
            if key not in allowed:
                raise self.error(key, f"unknown key {show(key)}{suggest(key, allowed)}; "
                                 f"allowed: {', '.join(allowed)}")

    def key_path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else str(key)

    def error(self, key: Any, message: str) -> MappingError:
        return MappingError(self.file, self.lines.get(key, self.line), self.key_path(str(key)), message)

    def missing(self, key: str, message: str) -> MappingError:
        """A required key not written: reported at the entry's line."""
        return MappingError(self.file, self.line, self.key_path(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def number(self, key: str, default: float | None, low: float, high: float) -> float | None:
        """A finite number in low..high, or ``default`` when the key is not written."""
        if key not in self.data:
            return default
        return self.check_number(key, self.data[key], low, high)

    def check_number(self, key: str, v: Any, low: float, high: float) -> float:
        if not is_number(v):
            raise self.error(key, f"{not_number(v)}: write a number within {fmt(low)}..{fmt(high)}")
        if not low <= v <= high:
            raise self.error(key, f"{fmt(v) if abs(v) < 1e15 else f'{v:.3g}'} is outside "
                             f"{fmt(low)}..{fmt(high)}")
        return float(v)

    def integer(self, key: str, low: int, high: int, default: int | None = None,
                what: str = "") -> int | None:
        if key not in self.data:
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"{show(v)} is not a whole number{what}")
        if not low <= v <= high:
            raise self.error(key, f"{show(v)} is outside {low}..{high}{what}")
        return v

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str | None:
        if key not in self.data:
            return default
        v = self.data[key]
        if not isinstance(v, str) or v not in options:
            raise self.error(key, one_of(v, options))
        return v

    def boolean(self, key: str, default: bool = False) -> bool:
        if key not in self.data:
            return default
        v = self.data[key]
        if not isinstance(v, bool):
            raise self.error(key, f"{show(v)} is not true or false")
        return v

    def text(self, key: str, default: str = "", limit: int = TEXT_LIMIT) -> str:
        if key not in self.data:
            return default
        v = self.data[key]
        if not (isinstance(v, str) or is_number(v)):
            raise self.error(key, f"{show(v)} should be text")
        if len(str(v)) > limit:
            raise self.error(key, f"{len(str(v))} characters is too long (at most {limit})")
        return str(v)

    def param(self) -> Param:
        if "param" not in self.data:
            raise self.missing("param", "missing: every entry needs `param:` (`latent-instrument learn` "
                               "lists them)")
        name = self.data["param"]
        if not isinstance(name, str):
            raise self.error("param", f"{show(name)} should be a parameter name, e.g. noise "
                             "(`latent-instrument learn` lists them)")
        if name not in PARAMS:
            hint = suggest(name, PARAMS) or f"; parameters: {', '.join(PARAMS)}"
            raise self.error("param", f"unknown parameter {show(name)}{hint}")
        return PARAMS[name]

    def channel(self) -> int | None:
        """``channel: 1..16`` -> 0..15; ``any`` or not written -> None."""
        if "channel" not in self.data or self.data["channel"] == "any":
            return None
        v = self.data["channel"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 16:
            raise self.error("channel", f"{show(v)} is not a MIDI channel: write 1..16 or any")
        return v - 1

    def pair(self, key: str, low: float, high: float, shape: str) -> tuple[float, float]:
        """A ``[a, b]`` list of two finite numbers within low..high; ``shape`` says what it should be."""
        v = self.data[key]
        if not isinstance(v, list) or len(v) != 2:
            raise self.error(key, f"{show(v)} should be {shape}")
        for x in v:
            if not is_number(x):
                raise self.error(key, f"{not_number(x)} ({key} should be {shape})")
            if not low <= x <= high:
                raise self.error(key, f"{show(v)}: each number must be within {fmt(low)}..{fmt(high)} "
                                 f"({key} should be {shape})")
        return float(v[0]), float(v[1])
