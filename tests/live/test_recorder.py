"""The recorder: files of a take, disk faults, dropped frames, and a process killed mid-take."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mido
import numpy as np
import pytest
from PIL import Image

from instrument.events import ControlEvent, KeyInput, PointerInput
from instrument.recorder import (
    EVENTS,
    FRAMES,
    MIDI_FILE,
    SIDECAR,
    Recorder,
    atomic_write,
    event_from_json,
    event_to_json,
    read_jsonl,
)

REPO = Path(__file__).parents[2]


def image(k: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), k % 256, np.uint8)


def meta(n: int) -> dict:
    return {"n": n, "t": 100.0 + n / 30, "coords": {"s": n / 10}}


def test_a_take_has_frames_sidecar_control_stream_and_midi(tmp_path):
    rec = Recorder(tmp_path / "take", {"settings": {"fps": 30}, "anchors": ["a", "b"]})
    rec.start()
    notes = [ControlEvent(100.0, "pads", mido.Message("note_on", note=60, velocity=100)),
             ControlEvent(100.5, "pads", mido.Message("note_off", note=60)),
             ControlEvent(100.6, "keyboard", KeyInput("a", True)),
             ControlEvent(100.7, "pointer", PointerInput(0.25, 0.5, 1)),
             ControlEvent(100.8, "pads", mido.Message("clock"))]
    for n in range(5):
        rec.add_events(n, notes[n:n + 1])
        assert rec.add_frame(image(n), meta(n))
    rec.stop()
    folder = tmp_path / "take"
    assert rec.error is None and rec.written == 5 and rec.dropped == 0
    sidecar = json.loads((folder / SIDECAR).read_text())
    assert sidecar["status"] == "finished" and sidecar["frames_written"] == 5
    assert sidecar["anchors"] == ["a", "b"]
    assert json.loads((folder / "config.json").read_text()) == {"fps": 30}
    frames = read_jsonl(folder / FRAMES)
    assert [f["file"] for f in frames] == [f"frame_{k:06d}.png" for k in range(5)]
    assert np.asarray(Image.open(folder / frames[3]["file"]))[0, 0, 0] == 3
    events = read_jsonl(folder / EVENTS)
    assert [event_from_json(e) for e in events] == notes
    midi = mido.MidiFile(folder / MIDI_FILE)
    played = [m for m in midi.tracks[0] if not m.is_meta]
    assert [m.type for m in played] == ["note_on", "note_off"]  # clock stays in events.jsonl only
    assert sum(m.time for m in played) == round(0.5 * 960)  # 0.5 s at 120 bpm, 480 ticks per beat


def test_event_json_round_trip():
    for message in (mido.Message("control_change", channel=3, control=74, value=12),
                    mido.Message("pitchwheel", pitch=-8192), mido.Message("sysex", data=[1, 2, 3])):
        event = ControlEvent(1.5, "port", message)
        record = json.loads(json.dumps(event_to_json(event, 7)))
        assert record["n"] == 7 and event_from_json(record) == event


def full_disk_after(k: int):
    count = [0]

    def write(path: Path, data: bytes) -> None:
        if path.suffix == ".png":
            count[0] += 1
            if count[0] > k:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        atomic_write(path, data)

    return write


def test_full_disk_stops_the_take_with_a_message(tmp_path):
    rec = Recorder(tmp_path / "take", {}, write_file=full_disk_after(3))
    rec.start()
    for n in range(10):
        rec.add_frame(image(n), meta(n))
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while rec.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.error is not None and "No space left" in rec.error
    assert not rec.active and not rec.add_frame(image(0), meta(99))  # refuses, does not raise
    rec.stop()
    assert rec.written == 3
    assert json.loads((tmp_path / "take" / SIDECAR).read_text())["status"] == "failed"
    assert "No space" in rec.status()


def test_unwritable_destination_stops_the_take(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rec = Recorder(blocker / "take", {})  # a folder inside a file: cannot be made, root or not
    rec.start()
    rec.add_frame(image(0), meta(0))
    rec.stop()
    assert rec.error is not None and str(blocker) in rec.error


def test_slow_disk_drops_and_counts_frames(tmp_path):
    gate = threading.Event()

    def slow(path: Path, data: bytes) -> None:
        if path.suffix == ".png":
            gate.wait(5)
        atomic_write(path, data)

    rec = Recorder(tmp_path / "take", {}, max_pending=2, write_file=slow)
    rec.start()
    kept = [rec.add_frame(image(n), meta(n)) for n in range(8)]
    gate.set()
    rec.stop()
    assert kept.count(False) == rec.dropped >= 5
    frames = read_jsonl(tmp_path / "take" / FRAMES)
    assert len(frames) == 8  # dropped frames keep their line: a re-render still knows their time
    assert sum(f["file"] is None for f in frames) == rec.dropped
    assert json.loads((tmp_path / "take" / SIDECAR).read_text())["frames_dropped"] == rec.dropped


KILLED_TAKE = textwrap.dedent("""
    import sys, time
    import numpy as np
    from instrument.recorder import Recorder
    rec = Recorder(sys.argv[1], {"settings": {}})
    rec.start()
    n = 0
    while True:
        rec.add_frame(np.random.randint(0, 255, (96, 96, 3), np.uint8), {"n": n, "t": n / 30, "coords": {}})
        n += 1
        if rec.written >= 10:
            print("writing", flush=True)
        time.sleep(0.002)
""")


def test_killed_mid_take_leaves_a_readable_folder(tmp_path):
    folder = tmp_path / "take"
    process = subprocess.Popen([sys.executable, "-c", KILLED_TAKE, str(folder)], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        time.sleep(0.3)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    frames = read_jsonl(folder / FRAMES)  # parses (a torn last line would be skipped)
    listed = [f["file"] for f in frames if f["file"]]
    assert len(listed) >= 10
    for name in listed:
        assert Image.open(folder / name).convert("RGB").size == (96, 96)
    for png in folder.glob("frame_*.png"):  # every frame on disk is whole, listed or not
        Image.open(png).load()
    assert json.loads((folder / SIDECAR).read_text())["status"] == "recording"


def test_play_killed_mid_take_can_still_be_rendered(tmp_path):
    """SIGKILL to the real `play --headless --record`: the folder reads, and `render` re-renders it."""
    from instrument.replay import rerender

    folder = tmp_path / "take"
    command = [sys.executable, "-m", "instrument", "play", "--model", "procedural", "--offline",
               "--size", "64", "--fps", "20", "--headless", "--midi-ports", "none", "--record", str(folder),
               "--cache-dir", str(tmp_path / "cache")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(read_jsonl(folder / FRAMES)) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    frames = read_jsonl(folder / FRAMES)
    assert len(frames) >= 10
    for f in frames:
        if f["file"]:  # a frame the disk could not keep up with has no file
            assert Image.open(folder / f["file"]).size == (64, 64)
    result = rerender(folder, progress=False)
    # Every frame of the take's time span (a frame the live loop skipped too), the logged ones as played.
    assert result.mismatches == 0 and result.frames == frames[-1]["n"] - frames[0]["n"] + 1


@contextlib.contextmanager
def small_disk(path: Path, size: str, *options: str):
    """A tmpfs of ``size`` mounted at ``path`` (root only; skipped where mounting is not allowed)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def noise(k: int, size: int = 96) -> np.ndarray:
    """A frame PNG cannot compress: a disk of a few hundred KB holds only a few."""
    return np.random.default_rng(k).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_a_take_on_a_disk_that_fills_says_so_and_leaves_no_temporary_files(tmp_path):
    with small_disk(tmp_path / "disk", "400k") as disk:
        rec = Recorder(disk / "take", {"settings": {"fps": 30}})
        rec.start()
        for n in range(40):
            rec.add_frame(noise(n), meta(n))
            time.sleep(0.005)
        rec.stop()
        take = disk / "take"
        sidecar = json.loads((take / SIDECAR).read_text())
        pngs = sorted(take.glob("frame_*.png"))
        lines = [line for line in read_jsonl(take / FRAMES) if line.get("file")]
        leftovers = [p.name for p in take.iterdir() if p.name.endswith(".tmp")]
    assert rec.error is not None and "No space left" in rec.error
    assert sidecar["status"] == "failed" and "No space left" in sidecar["error"]
    assert 0 < sidecar["frames_written"] == rec.written == len(pngs) < 40
    assert len(lines) <= len(pngs)  # every line that names a file names a whole one on disk
    assert sidecar["frames_written"] + sidecar["frames_dropped"] >= len(lines)
    assert leftovers == []


def test_a_take_on_a_read_only_disk_fails_at_once_and_writes_nothing(tmp_path):
    with small_disk(tmp_path / "disk", "1m", "ro") as disk:
        rec = Recorder(disk / "take", {})
        rec.start()
        rec.add_frame(noise(0), meta(0))
        rec.stop()
        assert not (disk / "take").exists()
    assert rec.error is not None and "Read-only" in rec.error
    assert rec.done and "error" in rec.status()
