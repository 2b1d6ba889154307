"""One process's render: from the take folder to its share of the frames on disk, and, in the main process
once every process is done, ``render.json`` with each process's numbers.

Every process reads the take, loads the decoders on its own device (``process_device``) and computes the
plan (the control replay, ``plan.make_plan``). They check that they agree on the plan and on the frames to
draw (all of them, ``--frames A:B``, less those on disk with ``--resume``), and each draws its contiguous
share, counting in its progress file. The main process shows one bar for them all; a process that fails
says so in its file and in its error, and the launcher stops the others. ``instrument.replay.rerender``
and the ``render`` command both come here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

from instrument.audio.offline import with_audio
from instrument.config import Config
from instrument.devices import resolve_device
from instrument.errors import UserError
from instrument.loop.output import Output
from instrument.loop.sculpting import sculpt_view
from instrument.performance import Coords
from instrument.recorder import FRAMES, atomic_write
from instrument.render_job.draw import draw_frames, same_bits
from instrument.render_job.output import (
    PROGRESS,
    PROGRESS_EVERY,
    FrameRange,
    Progress,
    check_same_render,
    clear_leftovers,
    gone,
    output_folder,
    read_progress,
    write_info,
    written,
)
from instrument.render_job.plan import Plan, PlannedFrame, make_plan
from instrument.render_job.team import Team
from instrument.replay import open_decoding, open_replay, read_take, take_config, timeline


@dataclass
class RenderSpec:
    """What to render: the ``take`` folder; ``decoder`` "fast" or "full"; ``fps`` and ``size`` (None: the
    take's); ``out`` (None: ``TAKE/render-<decoder>``); ``overrides``: Config fields (model, full_model,
    device, dtype, offline); ``frames``: only these output frames (None: all); ``resume``: skip frames
    already on disk; ``threads``: CPU threads per process (0: torch's choice); ``sculpt_model``: sculpt
    with this model instead of the take's, in ``sculpt_steps`` steps (None: the take's); ``step_frames``:
    write every sculpt step's pictures too; ``audio``: a sound file whose features replace the take's, from
    ``audio_start`` seconds into it at the first frame (None: as the take played it, or 0;
    ``audio.offline``); ``master``: the frames as the screen showed them, master fade and blackout applied
    (``loop.output``)."""

    take: Path
    decoder: str = "fast"
    fps: float | None = None
    size: tuple[int, int] | None = None
    out: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    frames: FrameRange | None = None
    resume: bool = False
    threads: int = 0
    sculpt_model: str | None = None
    sculpt_steps: int | None = None
    step_frames: bool = False
    audio: Path | None = None
    audio_start: float | None = None
    master: bool = False

    def __post_init__(self) -> None:
        self.take = Path(self.take)
        self.out = output_folder(self.take, self.decoder, self.out)


@dataclass
class RenderResult:
    folder: Path
    frames: int  # frames in the render
    drawn: int  # frames this run drew, in every process
    mismatches: int  # played frames that differ from the live ones before any stall (0 at the live rate)
    coords: list[Coords]  # every frame's
    info: dict[str, Any]  # render.json (the main process's; the others' lacks the processes' numbers)
    after_stall: int = 0  # played frames that differ after an event was moved out of a stall
    audio_offset: float | None = None  # with ``spec.audio``: the second of the sound file at the first frame


def render(spec: RenderSpec, team: Team | None = None, *, load=None, progress: bool = True) -> RenderResult:
    """Render ``spec`` as process ``team.rank`` of ``team.size`` (alone by default). ``load(config) ->
    (fast, full)`` replaces ``load_models`` (tests pass their decoders)."""
    team = team or Team()
    sidecar, logged, events = read_take(spec.take)
    zero = None  # the take-clock time of the sound file's first sample
    if spec.audio is not None:
        events, zero = with_audio(spec.audio, sidecar, logged, events, spec.audio_start)
    config = process_config(spec, sidecar, team)
    decoding = open_decoding(spec.take, sidecar, config, spec.decoder, spec.size, load, spec.sculpt_model)
    try:
        replay = open_replay(spec.take, sidecar, config, decoding)
        plan = make_plan(replay, timeline(sidecar, logged, events, spec.fps),
                         lambda values, coords: sculpt_view(decoding.sculpting, values, coords,
                                                            spec.sculpt_steps),
                         Output().level if spec.master else None)
        spec.out.mkdir(parents=True, exist_ok=True)
        info = render_info(spec, sidecar, decoding, plan)
        todo = frames_to_draw(spec, info, len(plan.frames))
        if team.main:
            clear_leftovers(spec.out)
        team.agree("the control replay or the frames to draw", f"{plan.digest()} {_digest(todo)}")
        if team.main:
            atomic_write(spec.out / FRAMES, plan.lines().encode())
            write_info(spec.out, {**info, "status": "rendering", "processes": team.size})
        mine = [plan.frames[k] for k in team.share(todo)]
        numbers = draw_share(decoding, mine, spec, team, len(todo), progress)
    finally:
        decoding.close()
    everyone = team.gather(numbers)
    if team.main:
        info = finish(spec.out, info, everyone)
    offset = plan.frames[0].t - zero if zero is not None and plan.frames else None
    return RenderResult(spec.out, len(plan.frames), len(todo), plan.mismatches,
                        [f.coords for f in plan.frames], info, plan.after_stall, offset)


def process_config(spec: RenderSpec, sidecar: dict[str, Any], team: Team) -> Config:
    """The take's Config with ``spec``'s overrides and this process's device; readies torch for it (the
    same bits on every run, the CPU threads)."""
    config = take_config(sidecar, **spec.overrides)
    own = process_device(config.device, team)
    if own is not None:
        config = dataclasses.replace(config, device=own)
    device = resolve_device(config.device)
    same_bits(device)
    if device.type == "cuda":
        torch.cuda.set_device(device.index or 0)  # ("cuda" alone names the current device: GPU 0 here)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    return config


def process_device(name: str, team: Team) -> str | None:
    """The device process ``team.rank`` decodes on when the config's (``name``) is not it, else None. With
    several processes each CUDA process takes its own GPU: its local rank, modulo the GPUs (more processes
    than GPUs share them); a Mac's one MPS device takes one process."""
    if team.size == 1:
        return None
    device = resolve_device(name)
    if device.type == "mps":
        raise UserError("a Mac has one MPS device: render with one process (no --processes), or give "
                        "--device cpu for CPU processes")
    if device.type != "cuda":
        return None
    return f"cuda:{team.local_rank % torch.cuda.device_count()}"


def render_info(spec: RenderSpec, sidecar: dict[str, Any], decoding: Any, plan: Plan) -> dict[str, Any]:
    """``render.json``'s description of the render (``output.SAME_RENDER`` tells renders apart)."""
    decoder = decoding.decoder(spec.decoder)
    return {"take": str(spec.take), "decoder": decoder.label,
            "dtype": str(decoder.dtype).removeprefix("torch."),
            "fps": spec.fps or 1 / sidecar["clock"]["interval"], "size": list(decoding.out_size),
            "frames": len(plan.frames), "plan": plan.digest(), "coordinate_mismatches": plan.mismatches,
            "differ_after_a_stall": plan.after_stall,
            "sculpt": decoding.sculpting.source if decoding.sculpting is not None else None,
            "audio": str(spec.audio) if spec.audio is not None else None, "master": spec.master}


def frames_to_draw(spec: RenderSpec, info: dict[str, Any], total: int) -> list[int]:
    """The output frames this run draws: ``spec.frames`` (all by default), less those on disk with
    ``spec.resume``. Keeping frames that are there needs them to be of this render (UserError if not)."""
    chosen = spec.frames.select(total) if spec.frames else range(total)
    if spec.resume or spec.frames:
        check_same_render(spec.out, info)
    skip = written(spec.out, chosen) if spec.resume else set()
    return [k for k in chosen if k not in skip]


def draw_share(decoding: Any, mine: list[PlannedFrame], spec: RenderSpec, team: Team, total: int,
               progress: bool) -> dict[str, Any]:
    """Draw this process's frames, then wait for the others; returns its numbers for ``render.json``."""
    numbers: dict[str, Any] = {
        "process": team.rank, "device": str(decoding.fast.device), "threads": torch.get_num_threads(),
        "frames": len(mine), "first": mine[0].k if mine else None, "last": mine[-1].k if mine else None,
        "startup_seconds": round(time.time() - psutil.Process().create_time(), 3),  # imports, loads, plan
    }  # fmt: skip
    mark = Progress(spec.out, team.rank, [f.k for f in mine])
    bar = Bar(spec.out, team.size, total, show=progress and team.main)
    started, numbers["began"] = time.perf_counter(), time.time()

    def drawn(count: int, frame: PlannedFrame) -> None:
        mark.update(count, time.perf_counter() - started)
        if team.main:
            bar.poll()

    try:
        try:
            seconds = draw_frames(decoding, mine, spec.out, spec.decoder, drawn, step_frames=spec.step_frames)
        except Exception as exc:
            stopped = _stopped(exc, mark, mine, team)
            if stopped is exc:
                raise
            raise stopped from exc
        numbers["ended"] = time.time()
        mark.update(len(mine), seconds)
        wait_for_the_others(team, bar)
    finally:
        bar.close()
    return {**numbers, "seconds": round(seconds, 3),
            "frames_per_s": round(len(mine) / seconds, 3) if mine and seconds > 0 else None,
            **peak_memory(decoding.fast.device)}


class Bar:
    """Every process's progress, read from their files at most every PROGRESS_EVERY seconds, and their sum
    on one progress bar for the whole render, shown by the main process (tqdm's rate gives the ETA)."""

    def __init__(self, folder: Path, processes: int, total: int, *, show: bool) -> None:
        from tqdm import tqdm

        self.folder, self.processes = folder, processes
        self.bar = tqdm(total=total, unit="frame", desc="render", disable=not show)
        self._read = 0.0

    def poll(self, *, now: bool = False) -> list[dict[str, Any] | None] | None:
        """Every process's progress (None when read less than PROGRESS_EVERY ago, unless ``now``)."""
        if not now and time.monotonic() - self._read < PROGRESS_EVERY:
            return None
        self._read = time.monotonic()
        states = read_progress(self.folder, self.processes)
        done = sum(s["done"] for s in states if s is not None)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        return states

    def close(self) -> None:
        self.bar.close()


def wait_for_the_others(team: Team, bar: Bar) -> None:
    """Until every process has drawn its share. The main process raises UserError for a process that
    failed or was killed; the launcher then stops the rest."""
    while True:
        states = bar.poll(now=True)
        if team.main:
            lost = [s for s in states if s is not None and (s["error"] or gone(s))]
            if lost:
                raise UserError("; ".join(stopped_line(s) for s in lost) + RESUME)
        if all(s is not None and s["done"] == s["count"] for s in states):
            return
        time.sleep(PROGRESS_EVERY / 2)


RESUME = "; the frames written are kept: run it again with --resume to render the rest"


def stopped_line(state: dict[str, Any]) -> str:
    """What a progress file says of a process that did not finish: who, which frames, how far, why."""
    span = "no frames" if not state["count"] else f"frames {state['frames'][0]}-{state['frames'][1]}"
    why = state["error"] or "ended without a word (killed?)"
    return f"process {state['process']} ({span}) stopped after {state['done']} of {state['count']}: {why}"


def finish(folder: Path, info: dict[str, Any], everyone: list[dict[str, Any]]) -> dict[str, Any]:
    """``render.json`` once every process is done: each one's numbers and the whole render's frames/s."""
    drawn = sum(n["frames"] for n in everyone)
    busy = [n for n in everyone if n["frames"]]
    span = max((n["ended"] for n in busy), default=0.0) - min((n["began"] for n in busy), default=0.0)
    info = {**info, "status": "done", "processes": len(everyone), "drawn": drawn,
            "frames_per_s": round(drawn / span, 3) if span > 0 else None, "per_process": everyone}
    write_info(folder, info)
    shutil.rmtree(folder / PROGRESS, ignore_errors=True)
    return info


def peak_memory(device: torch.device) -> dict[str, float]:
    """This process's peak memory so far, in MiB: on its CUDA device (allocated, reserved) and its RSS."""
    numbers = {}
    if device.type == "cuda":
        numbers["device_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        numbers["device_peak_reserved_mib"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
    try:
        import resource
    except ImportError:  # (Windows)
        return numbers
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    numbers["host_peak_rss_mib"] = round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)
    return numbers


def _stopped(exc: Exception, mark: Progress, mine: list[PlannedFrame], team: Team) -> Exception:
    """Record why this process stopped in its progress file; the exception to raise: for a mistake the
    user can fix, one naming the process (when there are several), else ``exc`` itself."""
    from instrument.cli import user_message

    message = user_message(exc)
    at = mine[mark.state["done"]].k if mark.state["done"] < len(mine) else None
    mark.fail(f"at frame {at}: {message or f'{type(exc).__name__}: {exc}'}")
    if message is None or team.size == 1:
        return exc
    return UserError(stopped_line(mark.state) + RESUME)


def _digest(frames: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, frames)).encode()).hexdigest()[:16]
