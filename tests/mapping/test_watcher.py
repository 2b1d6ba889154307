"""Hot reload: a saved edit applies within a second; a broken or half-written file keeps the old mapping."""

from __future__ import annotations

import os
import time

from instrument.mapping import Mapping, MappingError, MappingWatcher, load_mapping

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


def test_valid_edit_applies(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    watcher = MappingWatcher(path)
    assert poll_until(watcher, 0.3) is None  # nothing changed
    path.write_text(EDITED)
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and change.controls[0].param == "offset"
    assert watcher.current is change and poll_until(watcher, 0.3) is None  # answered once


def test_invalid_edit_reports_and_keeps_last_good(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    in_force = load_mapping(path)
    watcher = MappingWatcher(path)
    path.write_text(GOOD.replace("noise", "nosie"))
    change = poll_until(watcher)
    assert isinstance(change, MappingError) and change.line == 3 and "did you mean noise" in str(change)
    assert watcher.error is change and watcher.current is None
    assert in_force.controls[0].param == "noise"  # the caller keeps what it had
    path.write_text(EDITED)  # fixed: applies, error cleared
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and watcher.error is None


def test_half_written_file_is_not_applied(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    watcher = MappingWatcher(path)
    path.write_text(EDITED[: EDITED.index("param") + 3])  # truncated mid-line, mid-flow-mapping
    change = poll_until(watcher)
    assert isinstance(change, MappingError) and "YAML syntax" in str(change)
    path.write_text(EDITED)  # the editor finishes
    assert isinstance(poll_until(watcher), Mapping)


def test_save_by_rename_and_brief_absence(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    watcher = MappingWatcher(path)
    os.unlink(path)
    assert poll_until(watcher, 0.5) is None  # gone for a moment: wait, no error yet
    tmp = tmp_path / ".live.yaml.swp"
    tmp.write_text(EDITED)
    os.replace(tmp, path)
    change = poll_until(watcher)
    assert isinstance(change, Mapping) and change.controls[0].param == "offset"


def test_edit_applies_within_a_second_and_polls_are_cheap(tmp_path):
    """100 frames in one second of (fake) time: the edit is in use by the end, with a handful of stats."""
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    now = [0.0]
    watcher = MappingWatcher(path, interval=0.25, clock=lambda: now[0])
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
    assert len(stats) <= 5
    assert isinstance(watcher.current, Mapping)
