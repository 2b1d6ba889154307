"""The render's parts in this process: the plan computed once, the command line each process gets, the
frame ranges, the devices processes take, and renders that must refuse."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from instrument.errors import UserError
from instrument.recorder import FRAMES, read_jsonl
from instrument.render_job.job import RenderSpec, process_device, render
from instrument.render_job.launch import command_line, failure_report
from instrument.render_job.output import FrameRange, Progress
from instrument.render_job.team import Team
from instrument.replay import configure_render, rerender


def parse(line: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_render(parser)
    return parser.parse_args(line)


def test_each_process_gets_the_command_line_back_without_processes():
    line = ["my take", "--decoder", "full", "--fps", "12.5", "--size", "96x64", "--out", "-odd folder",
            "--video", "v.mp4", "--processes", "3", "--frames", "4:", "--resume", "--threads", "2",
            "--model", "m.pth", "--full-model", "vae", "--device", "cpu", "--dtype", "fp32", "--offline"]
    args = parse(line)
    again = parse(command_line(args))
    assert again.processes == 1 and "--processes" not in " ".join(command_line(args))
    assert {**vars(again), "processes": 3} == vars(args)
    assert command_line(parse(["take"])) == ["take"]  # defaults are left out


@pytest.mark.parametrize(("text", "total", "frames"), [
    ("3:8", 20, range(3, 8)), ("5:", 20, range(5, 20)), (":4", 20, range(0, 4)), ("15:99", 20, range(15, 20)),
])
def test_a_frame_range_selects_output_frames(text, total, frames):
    assert FrameRange.parse(text).select(total) == frames
    assert str(FrameRange.parse(text)) == text


@pytest.mark.parametrize("text", ["5", "a:b", "-1:3", "3:-1", "1:2:3", ""])
def test_a_malformed_frame_range_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="A:B"):
        FrameRange.parse(text)


def test_a_range_outside_the_render_says_what_there_is():
    with pytest.raises(UserError, match="0:20"):
        FrameRange.parse("20:30").select(20)
    with pytest.raises(UserError, match="no frames"):
        FrameRange.parse("8:8").select(20)


def test_processes_take_their_own_gpu_and_share_when_more():
    assert process_device("cpu", Team(size=4, rank=2, local_rank=2)) is None
    assert process_device("cuda:1", Team()) is None  # alone: the device as given
    if not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    assert process_device("cuda", Team(rank=count, size=count + 1, local_rank=count)) == "cuda:0"


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs a Mac's MPS device")
def test_a_mac_renders_in_one_process():
    with pytest.raises(UserError, match="one MPS device"):
        process_device("mps", Team(size=2, rank=1, local_rank=1))


def test_the_plan_is_the_replay_computed_once(take, taef2, tmp_path):
    """The library call draws what the take played (every frame of its span, the live ones exact), writes
    the plan as frames.jsonl, and a second run into the same folder draws nothing with --resume."""
    load = lambda config: (taef2, None)  # noqa: E731
    result = rerender(take, out=tmp_path / "r", load=load, progress=False)
    live = {f["n"]: f["coords"] for f in read_jsonl(take / FRAMES)}
    lines = read_jsonl(result.folder / FRAMES)
    assert result.mismatches == 0 and len(lines) == result.frames == result.drawn > len(live)
    assert [line["file"] for line in lines] == [f"frame_{k:06d}.png" for k in range(result.frames)]
    assert all(line["coords"] == live[line["n"]] for line in lines if line["n"] in live)
    assert len({json.dumps(line["coords"]) for line in lines}) == len(lines)  # the wander: all different
    again = render(RenderSpec(take, out=tmp_path / "r", resume=True), load=load, progress=False)
    assert again.drawn == 0 and again.info["plan"] == result.info["plan"]


def test_a_stopped_render_is_reported_per_process(tmp_path):
    class Failure:
        def __init__(self, exitcode):
            self.exitcode = exitcode

    ok, cut, broken = (Progress(tmp_path, rank, list(range(10 * rank, 10 * rank + 10))) for rank in range(3))
    ok.update(10, 1.0)
    cut.update(4, 1.0)
    cut.write()  # (counts are written at most twice a second)
    broken.update(2, 1.0)
    broken.fail("at frame 22: disk full")
    text = failure_report(tmp_path, 4, {1: Failure(-15), 2: Failure(1), 3: Failure(-9)})
    assert "process 0" not in text  # it finished
    assert "process 1 (frames 10-19) stopped after 4 of 10: stopped by the launcher" in text
    assert "process 2 (frames 20-29) stopped after 2 of 10: at frame 22: disk full (exit status 1)" in text
    assert "process 3 failed before drawing (killed by SIGKILL)" in text and text.endswith("rest")
