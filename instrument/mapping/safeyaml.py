"""Reading a mapping file's YAML: a safe loader that remembers lines, with limits a hostile file cannot pass.

The loader is a ``yaml.SafeLoader`` (no Python objects, ever) that builds ``LineDict`` / ``LineList`` so that
every later mistake can name its line, and refuses what a hand-written mapping never needs but an attack or
a wrong file does: more than ``MAX_BYTES``, nesting deeper than ``MAX_DEPTH`` (aliases included), more than
``MAX_NODES`` values once aliases and merges are expanded (a few hundred bytes of nested aliases can stand
for billions of values), an alias that contains itself, numbers of more than ``MAX_NUMBER_CHARS`` characters,
and the tags ``!!set``, ``!!omap``, ``!!pairs`` and ``!!binary``. Each is refused in milliseconds, before
anything is built. Every problem is a MappingError with a line.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from instrument.mapping.model import MappingError

MAX_BYTES = 128 * 1024  # the shipped presets are 3-5 KB; a controller with 500 controls fits in 64 KB
MAX_DEPTH = 32  # a mapping needs 5 levels (file, controls, entry, points, pair)
MAX_NODES = 50_000  # values after expanding aliases and merges
MAX_NUMBER_CHARS = 40

_MERGE_TAG = "tag:yaml.org,2002:merge"
# Brackets, and what hides them: quoted text and comments (for the pre-scan of flow nesting).
_FLOW_TOKENS = re.compile(r"""[\[\]{}]|'[^'\n]*'|"(?:[^"\\\n]|\\.)*"|#[^\n]*""")


class LineDict(dict):
    """A YAML mapping that knows its line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A YAML sequence that knows its line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _Refused(yaml.MarkedYAMLError):
    """A limit or a rule of this loader, at a place in the file (reported without "YAML syntax")."""


class LineLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` building LineDict / LineList, refusing keys written twice (plain YAML keeps the
    last silently, which hides mistakes) and anything past the limits above."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer recurses once per level: count levels here, before Python's recursion limit does.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineDict:
    own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own  # ``<<: *base`` entries come first; the entry's own keys override them
    out = LineDict()
    out.line, out.key_lines = node.start_mark.line + 1, {}
    own_keys: set[Any] = set()
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise _Refused(None, None, "a key must be a single word, not a list or a mapping",
                           key_node.start_mark)
        if i >= merged:
            if key in own_keys:
                raise _Refused(None, None, f"key {key!r} appears twice in this entry (first on line "
                               f"{out.key_lines[key]})", key_node.start_mark)
            own_keys.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.item_lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return out


def _construct_int(loader: LineLoader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_NUMBER_CHARS:
        raise _Refused(None, None, f"a number of {len(node.value)} digits", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _refuse_tag(loader: LineLoader, node: yaml.Node) -> None:
    raise _Refused(None, None, f"{node.tag.replace('tag:yaml.org,2002:', '!!')} is not used in mapping files",
                   node.start_mark)


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
# A date (name: 2024-05-01) stays the text it was written as.
LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
for _tag in ("set", "omap", "pairs", "binary"):
    LineLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_graph(root: yaml.Node) -> None:
    """Refuse a document whose values, with aliases expanded, number more than MAX_NODES or nest deeper
    than MAX_DEPTH, or that holds an alias inside its own anchor. Iterative, each node visited once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # nodes on the current path: meeting one again is a loop
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_NODES:
                raise _Refused(None, None, f"more than {MAX_NODES} values once aliases (*name) are expanded",
                               node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise _Refused(None, None, f"aliases (*name) nest more than {MAX_DEPTH} levels deep",
                               node.start_mark)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise _Refused(None, None, "an alias (*name) inside the entry it names", node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def deep_flow_line(text: str) -> int:
    """The line where ``[`` and ``{`` nest more than MAX_DEPTH deep, or 0. A fast pre-scan: PyYAML's scanner
    looks far ahead through open brackets, in time that grows with their square, before the composer can
    count the levels."""
    depth = 0
    for m in _FLOW_TOKENS.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, m.start()) + 1
        elif token in "]}":
            depth = max(depth - 1, 0)
    return 0


def parse_yaml(text: str, file: str) -> Any:
    """YAML ``text`` -> LineDict / LineList / scalars (None for an empty document); MappingError (with the
    line) for a syntax error or a refused document."""
    if len(text) > MAX_BYTES:
        raise MappingError(file, 1, "", f"{len(text) // 1024} KB is too large for a mapping (at most "
                           f"{MAX_BYTES // 1024} KB; the presets are 3-5 KB): is this the right file?")
    if line := deep_flow_line(text):
        raise MappingError(file, line, "", f"nested more than {MAX_DEPTH} levels deep")
    loader = None
    try:
        loader = LineLoader(text)  # checks every character first: a ReaderError
        node = loader.get_single_node()
        if node is None:
            return None
        check_graph(node)
        return loader.construct_document(node)
    except _Refused as e:
        raise MappingError(file, _line(e, text), "", e.problem or "refused") from None
    except yaml.MarkedYAMLError as e:
        raise MappingError(file, _line(e, text), "", _syntax(e, text, _line(e, text))) from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        char = chr(e.character) if isinstance(e.character, int) else e.character
        raise MappingError(file, line, "", f"character {char!r} is not allowed in a mapping "
                           "(is this a text file?)") from None
    except yaml.YAMLError as e:
        raise MappingError(file, 1, "", f"YAML syntax: {e}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _line(e: yaml.MarkedYAMLError, text: str) -> int:
    mark = e.problem_mark or e.context_mark
    # The end of a truncated file is reported one past its last line: point at the last line instead.
    return min(mark.line + 1, max(text.count("\n") + (not text.endswith("\n")), 1)) if mark else 1


def _syntax(e: yaml.MarkedYAMLError, text: str, line: int) -> str:
    problem = e.problem or "not valid YAML"
    lines = text.splitlines()
    if 0 < line <= len(lines) and "\t" in lines[line - 1]:
        problem += " (a tab: indent with spaces only)"
    if e.context and e.context_mark and e.context_mark.line + 1 != line:
        problem += f" ({e.context.removeprefix('while ')} that starts on line {e.context_mark.line + 1})"
    if "<stream end>" in problem:
        problem += "; the file ends too soon (still being written, or a bracket or quote left open?)"
    return f"YAML syntax: {problem}"


# --- files ------------------------------------------------------------------------------------------------
def read_text(path: str | Path) -> str:
    """The text of the mapping file at ``path``: UTF-8 (a byte-order mark is fine), or UTF-16 with its mark.
    MappingError for a missing, unreadable, special (a FIFO would block) or too large file, or one that is
    not text; never blocks on anything but the disk."""
    file = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as err:  # ValueError: a NUL in the name
        raise MappingError(file, 0, "", f"cannot read: {getattr(err, 'strerror', None) or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MappingError(file, 0, "", "not a regular file (a folder, device or pipe?)")
        if info.st_size > MAX_BYTES:
            raise MappingError(file, 1, "", f"{info.st_size // 1024} KB is too large for a mapping (at most "
                               f"{MAX_BYTES // 1024} KB; the presets are 3-5 KB): is this the right file?")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise MappingError(file, 0, "", f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    return decode(data, file)


def decode(data: bytes, file: str) -> str:
    """File bytes -> text; MappingError with the line of the first byte that is not text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
        nul = data.find(b"\0")
        if nul >= 0:
            raise MappingError(file, data[:nul].count(b"\n") + 1, "", "binary data (a NUL byte): not a text "
                               "file, or UTF-16 without its byte-order mark (save it as UTF-8)")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1 if encoding != "utf-16" else 1
        raise MappingError(file, line, "", f"not UTF-8 text ({err.reason} at byte {err.start}); "
                           "save the file as UTF-8") from None
