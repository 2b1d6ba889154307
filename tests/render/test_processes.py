"""``render`` in several CPU processes through accelerate, run as a user runs it: the frames byte-identical to
one process, a killed process named and its frames finished by ``--resume``, ``--frames A:B`` alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from instrument.recorder import FRAMES

from .conftest import RENDER_TIMEOUT, REPO, pictures, render_command

pytestmark = pytest.mark.slow

ACCELERATE = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "0"]


def test_two_processes_draw_the_bytes_one_process_draws(take, reference, tmp_path):
    out, video = tmp_path / "two", tmp_path / "two.mp4"
    done = render_command(take, "--processes", "2", "--threads", "1", "--out", out, "--video", video)
    assert done.returncode == 0, done.stderr
    expected = pictures(reference)
    assert len(expected) > 40 and pictures(out) == expected
    assert (out / FRAMES).read_text() == (reference / FRAMES).read_text()  # one control replay, as one has
    info = json.loads((out / "render.json").read_text())
    assert info["status"] == "done" and info["drawn"] == info["frames"] == len(expected)
    shares = info["per_process"]
    assert [p["process"] for p in shares] == [0, 1]
    assert shares[0]["first"] == 0 and shares[1]["first"] == shares[0]["last"] + 1  # contiguous halves
    assert shares[1]["last"] == len(expected) - 1 and abs(shares[0]["frames"] - shares[1]["frames"]) <= 1
    assert all(p["frames_per_s"] > 0 and p["host_peak_rss_mib"] > 0 for p in shares)
    assert not (out / ".progress").exists()
    bar = done.stderr.replace("\r", "\n")  # one bar for the whole render, none per process
    assert f"{len(expected)}/{len(expected)}" in bar and f"/{shares[1]['frames']} [" not in bar
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                                "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(video)],
                               capture_output=True, text=True)
        assert probe.stdout.strip() == str(len(expected))  # muxed once, from every frame


def test_accelerate_launch_runs_the_render_command(take, reference, tmp_path):
    """``accelerate launch -m instrument render ...`` (its torchrun launcher: ``--multi_gpu``, also for CPU
    processes) renders the same frames."""
    out = tmp_path / "launched"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, *ACCELERATE, "-m", "instrument", "render", str(take), "--threads", "1",
               "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RENDER_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert pictures(out) == pictures(reference)
    assert len(json.loads((out / "render.json").read_text())["per_process"]) == 2


def test_a_killed_process_is_named_and_resume_draws_the_rest(take, reference, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "instrument", "render", str(take), "--processes", "2", "--threads", "1",
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    render = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        state = wait_for_progress(out / ".progress" / "process-1.json", render)
        os.kill(state["pid"], signal.SIGKILL)
        _, stderr = render.communicate(timeout=RENDER_TIMEOUT)
    finally:
        if render.poll() is None:
            render.kill()
            render.wait()
    assert render.returncode == 2
    last = stderr.strip().splitlines()[-1]
    assert "process 1 (frames" in last and "SIGKILL" in last and "--resume" in last, last
    left = pictures(out)
    expected = pictures(reference)
    assert 0 < len(left) < len(expected)
    assert all(expected[name] == data for name, data in left.items())  # what was written is whole and right

    done = render_command(take, "--processes", "2", "--threads", "1", "--out", out, "--resume")
    assert done.returncode == 0, done.stderr
    assert pictures(out) == expected
    info = json.loads((out / "render.json").read_text())
    assert info["drawn"] == len(expected) - len(left)  # only the missing frames were drawn again


def wait_for_progress(path, render: subprocess.Popen, timeout: float = RENDER_TIMEOUT) -> dict:
    """Process 1's progress once it has written a frame and has frames left (the test kills it then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and render.poll() is None:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = None
        if state and 1 <= state["done"] < state["count"] - 3:
            return state
        time.sleep(0.02)
    pytest.fail(f"process 1 did not report a frame in time (render ended: {render.poll()})")


def test_a_process_that_fails_is_named_with_its_frame_and_reason(take, reference, tmp_path):
    """A frame path process 1 cannot write (a folder in the way): the error names the process, the frame
    and the reason, and what process 0 drew is kept."""
    out = tmp_path / "blocked"
    total = len(pictures(reference))
    blocked = total - 5  # in process 1's half
    (out / f"frame_{blocked:06d}.png").mkdir(parents=True)
    done = render_command(take, "--processes", "2", "--threads", "1", "--out", out)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert f"process 1 (frames {(total + 1) // 2}-{total - 1})" in last, last
    assert f"at frame {blocked}" in last and "Is a directory" in last and "--resume" in last, last
    expected = pictures(reference)
    assert all(expected[name] == data for name, data in pictures(out).items())


def test_frames_a_to_b_redraws_that_range_alone(take, reference, tmp_path):
    out = tmp_path / "part"
    shutil.copytree(reference, out)
    for k in (3, 4, 5):
        (out / f"frame_{k:06d}.png").unlink()
    (out / "frame_000007.png").write_bytes(b"a damaged frame")
    untouched = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")
                 if not 3 <= int(p.stem[6:]) < 8}
    done = render_command(take, "--frames", "3:8", "--threads", "1", "--out", out)
    assert done.returncode == 0, done.stderr
    assert pictures(out) == pictures(reference)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png") if p.name in untouched} == untouched
    assert json.loads((out / "render.json").read_text())["drawn"] == 5

    # Another render's frames are never mixed in: another frame rate into this folder is refused.
    done = render_command(take, "--frames", "3:8", "--fps", "10", "--threads", "1", "--out", out)
    assert done.returncode == 2 and "holds another render" in done.stderr and "fps" in done.stderr
    assert pictures(out) == pictures(reference)
