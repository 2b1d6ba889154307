"""End to end: MIDI through JACK into `play --headless --record`, then `render` of the take.

A CC sweep on the mod wheel (the default mapping's position control) must carry the picture steadily from
the first anchor (dog) to the second (pastry); a note must send it back to the first; the take must hold
the frames and a valid sidecar; and the re-render must land on the same latents and the same pictures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import support
from PIL import Image
from support import Sender

from instrument.performance import Coords
from instrument.recorder import EVENTS, FRAMES, SIDECAR, read_jsonl

from .conftest import SIZE, wait_for

REPO = Path(__file__).parents[2]
pytestmark = [pytest.mark.jack, pytest.mark.slow]


@pytest.fixture(scope="module")
def take(jack_server, shared, tmp_path_factory):
    """Play a short performance into a take folder; returns the folder."""
    folder = tmp_path_factory.mktemp("e2e") / "take"
    sender = Sender("e2e-controller")
    command = [
        sys.executable, "-m", "instrument", "play",
        str(shared / "images" / "dog.png"), str(shared / "images" / "pastry.png"),
        "--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2", "--full-model", "none",
        "--offline", "--device", "cpu", "--size", str(SIZE), "--fps", "15", "--headless",
        "--record", str(folder), "--midi-api", "jack", "--midi-ports", "e2e-controller", "--no-midi-virtual",
        "--cache-dir", str(folder.parent / "anchor-cache"),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        frames = folder / FRAMES
        assert wait_for(lambda: frames.exists() and frames.stat().st_size > 0, 60), "the take never started"
        time.sleep(0.5)
        for value in range(0, 128, 4):  # the sweep: about 2.5 s from one end to the other
            sender.send([0xB0, 1, value])
            time.sleep(0.08)
        sender.send([0xB0, 1, 127])
        time.sleep(1.0)
        sender.send([0x90, 60, 127])  # note 60: anchor 0, hard hit -> a quick glide
        time.sleep(0.1)
        sender.send([0x80, 60, 0])
        time.sleep(1.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        sender.close()
    assert process.returncode == 0, output
    return folder


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_sweep_moves_from_a_to_b_and_a_note_goes_back(take, taef2):
    from safetensors.torch import load_file

    from instrument.loop.decoding import Decoding

    sidecar = json.loads((take / SIDECAR).read_text())
    assert sidecar["status"] == "finished" and sidecar["error"] is None
    assert sidecar["anchors"] == ["dog", "pastry"] and sidecar["model"]["family"] == "flux2"
    assert sidecar["mapping"]["text"].startswith("#") and sidecar["settings"]["size"] == [SIZE, SIZE]
    frames = read_jsonl(take / FRAMES)
    # How many frames a 2-core CPU renders in the take varies with load; the sweep checks below need ~10.
    assert sidecar["frames_written"] == sum(f["file"] is not None for f in frames) > 15
    events = read_jsonl(take / EVENTS)
    cc_frames = [e["n"] for e in events if e.get("midi", "").startswith("B0 01")]
    note_frame = next(e["n"] for e in events if e.get("midi", "").startswith("90 3C"))
    assert cc_frames and cc_frames[-1] < note_frame

    anchors = load_file(str(take / "anchors.safetensors"))["anchors"]
    decoding = Decoding(anchors, taef2, None, out_size=(SIZE, SIZE), seed=0)
    image_a = decoding.render(Coords("slerp", 0.0))
    image_b = decoding.render(Coords("slerp", 1.0))
    scale = distance(image_a, image_b)

    def picture(f):
        return np.asarray(Image.open(take / f["file"]).convert("RGB"))

    sweep = [f for f in frames if cc_frames[0] <= f["n"] < note_frame and f["file"]]
    s = [f["coords"]["s"] for f in sweep]
    assert s == sorted(s) and s[0] < 0.1 and s[-1] == 1.0  # the path position only moves forward
    to_a = [distance(picture(f), image_a) for f in sweep]
    to_b = [distance(picture(f), image_b) for f in sweep]
    tolerance = 0.03 * scale
    assert all(later >= earlier - tolerance for earlier, later in zip(to_a, to_a[1:], strict=False)), to_a
    assert all(later <= earlier + tolerance for earlier, later in zip(to_b, to_b[1:], strict=False)), to_b
    assert to_a[0] < 0.15 * scale and to_b[-1] < 0.05 * scale
    assert len({round(d, 1) for d in to_a}) > 5  # steadily, through in-between pictures, not a cut

    after = [f for f in frames if f["n"] > note_frame + 10 and f["file"]]
    assert after and after[-1]["coords"]["home"] == 0
    assert distance(picture(after[-1]), image_a) < 0.05 * scale  # the note went back to the dog


def test_render_reproduces_the_take(take, taef2):
    from instrument.replay import rerender

    result = rerender(take, load=lambda config: (taef2, None), progress=False)
    live = read_jsonl(take / FRAMES)
    again = read_jsonl(result.folder / FRAMES)
    # Every frame of the take's span (the ones the live loop skipped too), the played ones as played.
    assert len(again) == result.frames == live[-1]["n"] - live[0]["n"] + 1
    support.assert_as_played(result, again, live)  # the same latents, exactly
    worst = 0
    by_n = {line["n"]: line for line in again}
    for a, b in [(line, by_n[line["n"]]) for line in live]:
        if a["file"]:
            live_image = np.asarray(Image.open(take / a["file"]), dtype=np.int16)
            new_image = np.asarray(Image.open(result.folder / b["file"]), dtype=np.int16)
            worst = max(worst, int(np.abs(live_image - new_image).max()))
    assert worst <= 1  # floating-point tolerance, after rounding to 8 bits


def test_render_command_at_another_rate_and_size(take, tmp_path):
    out = tmp_path / "half"
    command = [sys.executable, "-m", "instrument", "render", str(take), "--fps", "5", "--size", "64",
               "--offline", "--out", str(out), "--video", str(tmp_path / "take.mp4")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env=os.environ | {"PATH": "/nonexistent"})
    frames = read_jsonl(out / FRAMES)
    duration = frames[-1]["t"] - frames[0]["t"]
    assert abs(len(frames) - (duration * 5 + 1)) <= 1
    assert Image.open(out / frames[0]["file"]).size == (64, 64)
    assert "ffmpeg" in done.stdout and done.returncode == 1  # no ffmpeg: a clear message, frames still made
