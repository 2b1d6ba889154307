"""Hot reload: a saved edit applies within a second; a broken, hostile or half-written file keeps the old
mapping and comes back as a MappingError, never as an exception; reading happens off the polling thread."""

from __future__ import annotations

import os
import threading
import time

import pytest

from instrument.mapping import Mapping, MappingError, MappingWatcher, load_mapping
from instrument.mapping import watcher as watcher_module

GOOD = "version: 1\ncontrols:\n  - {cc: 1, param: noise}\n"
EDITED = "version: 1\ncontrols:\n  - {cc: 1, param: offset}\n"


def poll_until(watcher: MappingWatcher, seconds: float = 3.0):
    """Poll as the render thread would (every 10 ms) until something comes back or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        change = watcher.poll()
        if change is not None:
            return change
        time.sleep(0.01)
    return None


@pytest.fixture
def watched(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    watcher = MappingWatcher(path)
    try:
        yield path, watcher
    finally:
        watcher.close()


def test_valid_edit_applies(watched):
    path, watcher = watched
    assert poll_until(watcher, 0.3) is None  # nothing changed
    path.write_text(EDITED)
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and change.controls[0].param == "offset"
    assert watcher.current is change and poll_until(watcher, 0.3) is None  # answered once


def test_invalid_edit_reports_and_keeps_last_good(watched):
    path, watcher = watched
    in_force = load_mapping(path)
    path.write_text(GOOD.replace("noise", "nosie"))
    change = poll_until(watcher)
    assert isinstance(change, MappingError) and change.line == 3 and "did you mean noise" in str(change)
    assert watcher.error is change and watcher.current is None
    assert in_force.controls[0].param == "noise"  # the caller keeps what it had
    path.write_text(EDITED)  # fixed: applies, error cleared
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and watcher.error is None


HOSTILE = {
    "a list where a name goes": "version: 1\ncontrols:\n  - {cc: 1, param: [noise]}\n",
    "a mapping where a name goes": "version: 1\ncontrols:\n  - {cc: 1, param: {a: 1}}\n",
    "a set key": "version: 1\ncontrols:\n  - {? [cc, 1] : 2, param: noise}\n",
    "a set value": "version: 1\nports: !!set {a, b}\n",
    "NaN": "version: 1\ncontrols:\n  - {cc: 1, param: noise, smoothing: .nan}\n",
    "Inf": "version: 1\ncontrols:\n  - {cc: 1, param: noise, range: [0, .inf]}\n",
    "initial NaN": "version: 1\ninitial: {position: .nan}\n",
    "version true": "version: true\n",
    "deep nesting": "version: 1\nname: " + "[" * 5000 + "]" * 5000 + "\n",
    "alias bomb": "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)),
    "alias loop": "version: 1\nname: &a [*a]\n",
    "binary": "version: 1\nname: \x00\x01\x02\n",
    "3 MB": "version: 1\ncontrols:\n" + "  - {cc: 1, param: noise}\n" * 120_000,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_reload_is_an_error_and_the_next_good_save_applies(watched, text):
    path, watcher = watched
    path.write_text(text)
    change = poll_until(watcher, 10)
    assert isinstance(change, MappingError), change
    assert change.file == str(path) and change.line >= 1 and "\n" not in str(change)
    path.write_text(EDITED)
    assert isinstance(poll_until(watcher), Mapping)


def test_reading_happens_off_the_polling_thread(watched, monkeypatch):
    """While the file is read (a slow disk, held here by a gate), poll keeps answering None at once."""
    path, watcher = watched
    gate, readers = threading.Event(), []
    real = watcher_module.validate_file

    def slow_read(p):
        readers.append(threading.current_thread())
        gate.wait(10)
        return real(p)

    monkeypatch.setattr(watcher_module, "validate_file", slow_read)
    path.write_text(EDITED)
    deadline = time.monotonic() + 3
    while not readers and time.monotonic() < deadline:
        assert watcher.poll() is None  # would hang here if the poll read the file itself
        time.sleep(0.01)
    assert readers and readers[0] is not threading.current_thread()
    assert [watcher.poll() for _ in range(20)] == [None] * 20
    gate.set()
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and change.controls[0].param == "offset"


def test_a_file_changed_while_read_is_read_again(watched, monkeypatch):
    path, watcher = watched
    real = watcher_module.validate_file

    def read_then_edit(p):
        result = real(p)
        if "nosie" in p.read_text():
            path.write_text(EDITED)  # the editor saves again while the first save is being read
        return result

    monkeypatch.setattr(watcher_module, "validate_file", read_then_edit)
    path.write_text(GOOD.replace("noise", "nosie"))
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and change.controls[0].param == "offset"  # no stale error first


def test_half_written_file_is_not_applied(watched):
    path, watcher = watched
    path.write_text(EDITED[: EDITED.index("param") + 3])  # truncated mid-line, mid-flow-mapping
    change = poll_until(watcher)
    assert isinstance(change, MappingError) and "YAML syntax" in str(change)
    path.write_text(EDITED)  # the editor finishes
    assert isinstance(poll_until(watcher), Mapping)


def test_truncated_then_written_file_gives_no_error(tmp_path):
    """Editors that save in place truncate the file first: an empty file is waited out, not reported."""
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    now = [0.0]
    watcher = MappingWatcher(path, clock=lambda: now[0], threaded=False)
    path.write_text("")
    answers = []
    for i in range(1, 6):  # one second empty
        now[0] = i * 0.2
        answers.append(watcher.poll())
    path.write_text(EDITED)
    for i in range(6, 12):
        now[0] = i * 0.2
        answers.append(watcher.poll())
    changes = [a for a in answers if a is not None]
    assert len(changes) == 1 and isinstance(changes[0], Mapping)
    path.write_text("")  # left empty: said after missing_after seconds
    for i in range(12, 30):
        now[0] = i * 0.2
        change = watcher.poll()
        if change is not None:
            break
    assert isinstance(change, MappingError) and "empty" in str(change)


def test_save_by_rename_and_brief_absence(watched):
    path, watcher = watched
    os.unlink(path)
    assert poll_until(watcher, 0.5) is None  # gone for a moment: wait, no error yet
    tmp = path.with_name(".live.yaml.swp")
    tmp.write_text(EDITED)
    os.replace(tmp, path)
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and change.controls[0].param == "offset"


def test_edit_applies_within_a_second_and_polls_are_cheap(tmp_path):
    """100 frames in one second of (fake) time: the edit is in use by the end, with a handful of stats."""
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    now = [0.0]
    watcher = MappingWatcher(path, interval=0.25, clock=lambda: now[0], threaded=False)
    path.write_text(EDITED)
    stats = []
    original = os.stat
    try:
        os.stat = lambda p, *a, **k: stats.append(p) or original(p, *a, **k)
        for i in range(100):  # one second of frames at 100 fps
            now[0] = i / 100
            watcher.poll()
    finally:
        os.stat = original
    assert len(stats) <= 8
    assert isinstance(watcher.current, Mapping)


def test_poll_never_raises(watched, monkeypatch):
    path, watcher = watched

    def broken(p):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(watcher_module, "_signature", broken)
    change = watcher.poll()
    assert isinstance(change, MappingError) and "disk on fire" in str(change)
