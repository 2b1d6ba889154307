"""Every shipped mapping validates; every broken file gives its expected message on the right line, as one
clean line, and ``check-mapping`` says so without a traceback, a hang or pages of output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.mapping import MappingError, load_mapping, parse_mapping, validate_file
from instrument.mapping.commands import run_check_mapping
from instrument.mapping.sections import parse_note

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "mappings").glob("*.yaml"))
BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
# Files that cannot carry an "# expect:" first line (binary, other encodings, empty) are listed here.
_MANIFEST_LINES = (Path(__file__).parent / "broken" / "EXPECTED").read_text().splitlines()
MANIFEST = dict(line.split(" ", 1) for line in _MANIFEST_LINES if line and not line.startswith("#"))


def expectation(path: Path) -> tuple[int, str]:
    """(line, message part) that validating ``path`` must give first."""
    first = path.read_bytes().decode("utf-8-sig", errors="replace").splitlines()[:1]
    found = re.match(r"# expect: (\d+) (.*)", first[0]) if first else None
    if found is None:
        assert path.name in MANIFEST, f"{path.name} has no '# expect: LINE MESSAGE' first line"
        found = re.match(r"(\d+) (.*)", MANIFEST[path.name])
    return int(found.group(1)), found.group(2)


def test_there_are_presets_and_broken_files():
    names = {p.stem for p in PRESETS}
    assert {"default", "keyboard"} <= names and len(names) >= 6
    assert len(BROKEN) >= 60


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_validates(path):
    mapping = load_mapping(path)
    assert mapping.controls or mapping.keys


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_file_names_line_and_key(path):
    line, message = expectation(path)
    mapping, errors = validate_file(path)
    assert mapping is None and errors
    first = errors[0]
    assert isinstance(first, MappingError)
    assert first.line == line, str(first)
    assert str(first).startswith(f"{path}:{line}: "), str(first)
    assert message in str(first)
    assert "could not be read" not in str(first)  # the loader's last resort: a bug, not a check
    for error in errors:
        assert error.line >= 1 and "\n" not in str(error) and len(str(error)) < 400 + len(str(path))
    with pytest.raises(MappingError) as raised:
        load_mapping(path)
    assert str(raised.value) == str(first)


def test_check_mapping_on_the_whole_corpus(tmp_path):
    """The command a user runs: exit 2, every broken file named with a line, one line per mistake, no
    traceback; the presets beside them "ok". Generated files add what is too big to commit."""
    huge = tmp_path / "three_megabytes.yaml"
    huge.write_text("version: 1\ncontrols:\n" + "  - {cc: 1, param: noise}\n" * 120_000)
    long_line = tmp_path / "long_line.yaml"
    long_line.write_text("version: 1\nname: " + "x" * 120_000 + "\n")
    fifo = tmp_path / "fifo.yaml"
    __import__("os").mkfifo(fifo)
    files = [*map(str, BROKEN), str(huge), str(long_line), str(fifo), *map(str, PRESETS)]
    run = subprocess.run([sys.executable, "-m", "instrument", "check-mapping", *files], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr + run.stdout
    lines = run.stderr.splitlines()
    assert len(lines) < 20 * len(files)
    named = set()
    for line in lines:
        found = re.match(r"(.+?\.yaml):(\d+): ", line)
        assert found or line.startswith(str(fifo)), line
        named.add(found.group(1) if found else str(fifo))
        assert len(line) < 600
    assert named == set(files) - {str(p) for p in PRESETS}
    assert "too large" in run.stderr and "not a regular file" in run.stderr
    assert [line.split(":")[0] for line in run.stdout.splitlines()] == [str(p) for p in PRESETS]
    assert all(line.split(": ", 1)[1].startswith("ok (") for line in run.stdout.splitlines())


def test_a_byte_order_mark_and_utf16_with_its_mark_are_fine(tmp_path):
    text = "version: 1\ncontrols:\n  - {cc: 1, param: noise}\n"
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (tmp_path / "utf16.yaml").write_text(text, encoding="utf-16")
    for name in ("bom.yaml", "utf16.yaml"):
        assert load_mapping(tmp_path / name).controls[0].param == "noise"


def test_yaml_conveniences_still_work():
    """Anchors and merge keys, within the limits, are for people: a merged entry's own keys win."""
    mapping, errors = parse_mapping(
        "version: 1\nknob: &knob {param: noise, curve: exponential, label: knob}\n"
        "controls:\n  - {<<: *knob, cc: 1}\n  - {<<: *knob, cc: 2, label: other}\n".replace("knob: &", "x: &")
        .replace("version: 1\nx:", "version: 1\ncontrols_base:"), "x.yaml")
    assert errors and "unknown key 'controls_base'" in str(errors[0])  # top-level keys stay checked
    mapping, errors = parse_mapping(
        "version: 1\ncontrols:\n  - &knob {cc: 1, param: noise, curve: exponential, label: knob}\n"
        "  - {<<: *knob, cc: 2, label: other}\n", "x.yaml")
    assert not errors, errors
    assert [(c.number, c.curve.kind, c.label) for c in mapping.controls] == \
        [(1, "exponential", "knob"), (2, "exponential", "other")]


def test_all_errors_of_a_file_are_reported(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("version: 1\ncontrols:\n  - {cc: 1, param: postion}\n"
                    "  - {cc: 2, param: noise, curve: x}\nnotes:\n  - {notes: 72-60}\n")
    _, errors = validate_file(path)
    assert [(e.line, e.key) for e in errors] == [(3, "controls[1].param"), (4, "controls[2].curve"),
                                                (6, "notes[1].notes")]


def test_error_format_matches_the_brief():
    e = MappingError("mappings/x.yaml", 12, "controls[3].curve", "'expo' is not one of linear")
    assert str(e) == "mappings/x.yaml:12: controls[3].curve: 'expo' is not one of linear"
    assert (e.file, e.line, e.key) == ("mappings/x.yaml", 12, "controls[3].curve")


def test_missing_and_empty_files(tmp_path):
    _, errors = validate_file(tmp_path / "nope.yaml")
    assert "cannot read" in str(errors[0])
    (tmp_path / "empty.yaml").write_text("")
    _, errors = validate_file(tmp_path / "empty.yaml")
    assert "empty" in str(errors[0])


def test_note_names():
    assert parse_note("C4") == 60 and parse_note("F#2") == 42
    assert parse_note("Bb3") == 58 and parse_note(0) == 0
    with pytest.raises(ValueError):
        parse_note("H2")


def test_check_mapping_command(capsys):
    class Args:
        files = [str(PRESETS[0]), str(BROKEN[0])]
        quiet = False

    assert run_check_mapping(Args()) == 2
    out = capsys.readouterr()
    assert f"{BROKEN[0]}:" in out.err and "ok" in out.out
    Args.files = [str(p) for p in PRESETS]
    assert run_check_mapping(Args()) == 0


def test_readme_example_is_valid():
    text = (ROOT / "mappings" / "README.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    mapping, errors = parse_mapping(example, "README.md")
    assert not errors, [str(e) for e in errors]
    assert len(mapping.controls) == 18 and len(mapping.notes) == 3 and len(mapping.pointer) == 2
    assert [c.source for c in mapping.controls[-2:]] == ["audio", "note"]  # a sound feature, a scene pad
