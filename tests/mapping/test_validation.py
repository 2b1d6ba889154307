"""Every shipped mapping validates; every broken file gives its expected message on the right line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from instrument.mapping import MappingError, load_mapping, parse_mapping, validate_file
from instrument.mapping.commands import run_check_mapping
from instrument.mapping.loader import parse_note

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "mappings").glob("*.yaml"))
BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def test_there_are_presets_and_broken_files():
    names = {p.stem for p in PRESETS}
    assert {"default", "keyboard"} <= names and len(names) >= 6
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_validates(path):
    mapping = load_mapping(path)
    assert mapping.controls or mapping.keys


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_file_names_line_and_key(path):
    expect = re.match(r"# expect: (\d+) (.*)", path.read_text().splitlines()[0])
    assert expect, f"{path.name} has no '# expect: LINE MESSAGE' first line"
    line, message = int(expect.group(1)), expect.group(2)
    mapping, errors = validate_file(path)
    assert mapping is None and errors
    first = errors[0]
    assert isinstance(first, MappingError)
    assert first.line == line, str(first)
    assert str(first).startswith(f"{path}:{line}: "), str(first)
    assert message in str(first)
    with pytest.raises(MappingError) as raised:
        load_mapping(path)
    assert str(raised.value) == str(first)


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

    assert run_check_mapping(Args()) == 1
    out = capsys.readouterr()
    assert f"{BROKEN[0]}:" in out.err and "ok" in out.out
    Args.files = [str(p) for p in PRESETS]
    assert run_check_mapping(Args()) == 0


def test_readme_example_is_valid():
    text = (ROOT / "mappings" / "README.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    mapping, errors = parse_mapping(example, "README.md")
    assert not errors, [str(e) for e in errors]
    assert len(mapping.controls) == 14 and len(mapping.notes) == 3 and len(mapping.pointer) == 2
