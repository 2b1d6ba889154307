"""Reading and validating mapping files, with errors that name the file, the line and the key.

``validate_file`` reads a file (``safeyaml``: bounded size, depth and aliases, lines remembered), checks each
section against the schema (``sections``), then checks the whole: no control, note or key mapped twice. Every
mistake found is returned, sorted by line: ``mappings/x.yaml:12: controls[3].curve: 'expo' is not one of
linear, exponential, logarithmic, points (did you mean exponential?)``. Nothing here raises anything but
MappingError, whatever the file holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instrument.mapping import sections
from instrument.mapping.fields import Entry, kind
from instrument.mapping.model import Control, Mapping, MappingError
from instrument.mapping.safeyaml import parse_yaml, read_text

log = logging.getLogger(__name__)

_SECTIONS: tuple[tuple[str, Callable[[str, Any, int, str], Any]], ...] = (
    ("controls", sections.control), ("notes", sections.note_range), ("keys", sections.key))


def parse_mapping(text: str, file: str = "<mapping>") -> tuple[Mapping | None, list[MappingError]]:
    """Read mapping YAML ``text``; returns (mapping or None, every error found, by line); never raises."""
    try:
        return _parse(text, file)
    except MappingError as err:
        return None, [err]
    except Exception as exc:  # a mistake in this program, not in the file: still an error, never a crash
        log.exception("reading %s", file)
        return None, [MappingError(file, 1, "", f"could not be read ({type(exc).__name__}: {exc}); "
                                   "please report this with the file")]


def _parse(text: str, file: str) -> tuple[Mapping | None, list[MappingError]]:
    data = parse_yaml(text, file)
    if data is None:
        raise MappingError(file, 1, "", "the file is empty; it needs at least `version: 1`")
    top = Entry(file, data, "", 1, sections.TOP_KEYS)
    sections.version(top)
    errors: list[MappingError] = []

    def read(build: Callable[[], Any], default: Any) -> Any:
        try:
            return build()
        except MappingError as err:
            errors.append(err)
            return default

    tempo, bpm = read(lambda: sections.tempo(top), ("clock", None))
    lists = {name: _section(file, top, name, build, errors) for name, build in _SECTIONS}
    mapping = Mapping(
        version=1, name=read(lambda: top.text("name"), ""),
        description=read(lambda: top.text("description", limit=4000), ""),
        ports=read(lambda: sections.ports(top), None), tempo=tempo, bpm=bpm,
        initial=read(lambda: sections.initial(top), ()),
        pointer=read(lambda: sections.pointer(file, top), ()),
        **lists, path=file, text=text,
    )
    errors.extend(duplicates(file, mapping))
    errors.sort(key=lambda err: err.line)
    return (None if errors else mapping), errors


def _section(file: str, top: Entry, key: str, build: Callable[[str, Any, int, str], Any],
             errors: list[MappingError]) -> tuple[Any, ...]:
    """Every entry of the list ``key`` built, each mistake added to ``errors`` (the others still read)."""
    v = top.raw(key)
    if v is None:
        return ()
    if not isinstance(v, list):
        errors.append(top.error(key, f"should be a list of entries, each starting with '- ', not {kind(v)}"))
        return ()
    lines = getattr(v, "item_lines", [top.lines.get(key, 0)] * len(v))
    out = []
    for i, item in enumerate(v):
        try:
            out.append(build(file, item, lines[i], f"{key}[{i + 1}]"))
        except MappingError as err:
            errors.append(err)
    return tuple(out)


def _overlap(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def clash(c: Control, d: Control) -> bool:
    """Whether two controls would answer the same message (one control, two entries: a mistake)."""
    if "osc" in (c.source, d.source):
        return c.source == d.source and c.address == d.address
    if not _overlap(c.channel, d.channel) or c.source == "audio":  # (one feature may drive several params)
        return False
    if c.source == d.source and (c.number == d.number or (c.source == "polytouch" and None in (c.number,
                                                                                             d.number))):
        return True
    if {c.source, d.source} <= {"cc", "cc14"}:  # a 14-bit pair's MSB or LSB used again as a plain CC
        return bool({c.number, c.lsb} & {d.number, d.lsb} - {None})
    return False


def duplicates(file: str, m: Mapping) -> list[MappingError]:
    """A control, note or key mapped twice: one error at each later entry."""
    errors = []
    for i, c in enumerate(m.controls):
        d = next((d for d in m.controls[:i] if clash(c, d)), None)
        if d is not None:
            errors.append(MappingError(file, c.line, f"controls[{i + 1}]", f"{c.describe()} is already "
                                       f"mapped on line {d.line} (to {d.param}); one entry per control"))
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
    return errors


def validate_file(path: str | Path) -> tuple[Mapping | None, list[MappingError]]:
    """(mapping or None, every error) for the file at ``path``; unreadable files give one error."""
    try:
        text = read_text(path)
    except MappingError as err:
        return None, [err]
    return parse_mapping(text, str(path))


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; raises MappingError (the first mistake, by line) if it has any."""
    mapping, errors = validate_file(path)
    if errors:
        raise errors[0]
    assert mapping is not None
    return mapping
