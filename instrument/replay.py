"""``latent-instrument render``: re-render a recorded take from its control stream, offline and exactly.

A take logs every control event with the frame that applied it, the frame times the render thread played,
the mapping (and its reloads) and the anchor latents. Replaying that log through the same mapping engine,
control state and ``Performance`` gives the same coordinates frame for frame, so the same settings give the
same pictures, and other settings (the full decoder, a larger output, another frame rate) give a better
version of the same performance. Frames the live disk dropped are rendered too.

Output: a folder (default ``TAKE/render-<decoder>``) of ``frame_000000.png``..., a ``frames.jsonl`` like the
take's and ``render.json``; ``--video FILE`` also encodes them with ffmpeg when it is on the PATH.
``--processes N`` renders in N processes (one GPU each, or CPU processes) through accelerate, as does
``accelerate launch -m instrument render ...`` (with ``--multi_gpu`` on a machine without GPUs, where
accelerate otherwise starts one process); ``--frames A:B`` renders a part, ``--resume`` what is missing.
A take played with sculpting is sculpted again by the model its sidecar names (``--sculpt-steps`` raises
the steps; ``--step-frames`` also writes every step's pictures, one folder per step).
This module reads the take and replays its controls; ``instrument.render_job`` does the rest.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrument.config import Config, device_name, number, parse_size
from instrument.errors import UserError
from instrument.loop.sculpting import take_sculpting
from instrument.performance import Coords, Performance
from instrument.recorder import (
    ANCHORS,
    EVENTS,
    FRAMES,
    SIDECAR,
    event_from_json,
    read_jsonl,
)

log = logging.getLogger(__name__)

STALL_SECONDS = 0.05  # an event the live loop applied later than this (and two frames) moves to its time


class TakeError(UserError):
    """A take folder that cannot be re-rendered; the message names the file."""


@dataclass
class Tick:
    """One step of the replay: the time, the log records applied before it, and whether to draw it."""

    n: int  # frame number on the take's grid (-1 for a frame of a new grid)
    t: float
    records: list[dict[str, Any]] = field(default_factory=list)
    draw: bool = False
    coords: dict[str, Any] | None = None  # the coordinates the live session logged for this frame
    moved: bool = False  # holds an event the live loop applied late (a stall), moved to its own time


def configure_render(parser: argparse.ArgumentParser) -> None:
    from instrument.render_job.output import FrameRange

    parser.add_argument("recording", help="a take folder written by `play --record` or the record control")
    parser.add_argument("--decoder", choices=("fast", "full"), default="fast",
                        help="fast (as played) or full (the quality decoder)")
    parser.add_argument("--fps", type=number(float, 0, 1000), default=0.0,
                        help="frame rate (default: the take's)")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="output frame size, N or WxH (default: the take's). Frames always decode at the "
                        "take's size, since its anchors are latents of that size, and are then resized: a "
                        "smaller --size gives smaller files, not a faster render")
    parser.add_argument("--out", default="", help="output folder (default: RECORDING/render-<decoder>)")
    parser.add_argument("--video", default="", help="also write this video file (needs ffmpeg on the PATH)")
    parser.add_argument("--processes", type=number(int, 1, 1024), default=1,
                        help="render in this many processes through accelerate: one GPU each (more processes "
                             "than GPUs share them), or CPU processes with --device cpu")
    parser.add_argument("--frames", type=FrameRange.parse, default=None,
                        help="render only output frames A to B-1 (A:B, from 0; A: or :B leave an end open)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the frames already in the output folder (a stopped render goes on)")
    parser.add_argument("--threads", type=number(int, 0, 1024), default=0,
                        help="CPU threads per process (default: the cores shared among the processes); on "
                             "the CPU, frames are byte-identical between renders with the same threads")
    parser.add_argument("--model", default=None, help="fast decoder instead of the take's")
    parser.add_argument("--full-model", default=None, help="full decoder instead of the take's")
    parser.add_argument("--device", type=device_name, default=None, help="torch device instead of the take's")
    parser.add_argument("--dtype", choices=("auto", "fp16", "bf16", "fp32"), default=None,
                        help="dtype instead of the take's")
    parser.add_argument("--offline", action="store_true", help="never touch the network")
    parser.add_argument("--sculpt-model", default=None, help="sculpt model instead of the take's")
    parser.add_argument("--sculpt-steps", type=number(int, 1, 8), default=None,
                        help="sculpt in this many steps instead of the take's (more: finer detail)")
    parser.add_argument("--step-frames", action="store_true",
                        help="also write every sculpt step's pictures: step_K/ (predicted) and noisy_K/")
    parser.add_argument("--audio", default="", help="compute the audio features again from this sound file "
                        "and put its sound into --video, in time with the frames")
    parser.add_argument("--audio-start", type=number(float, -1e6, 1e6), default=None,
                        help="the second of --audio at the take's first frame (default: as the take played "
                        "it, when it was played from that file; else 0)")
    parser.add_argument("--master", action="store_true",
                        help="apply the master fade and blackout, as the screen showed them")


def run_render(args: argparse.Namespace) -> int:
    from instrument.render_job import launch, team
    from instrument.render_job.job import RenderSpec, render
    from instrument.render_job.output import make_video, written

    if args.processes > 1 and not team.launched():
        return launch.launch(args)
    overrides = {k: getattr(args, k) for k in ("model", "full_model", "device", "dtype") if getattr(args, k)}
    if args.offline:
        overrides["offline"] = True
    crew = team.Team.join()
    if args.video and shutil.which("ffmpeg") is None and crew.main:
        print("--video needs ffmpeg on the PATH, and none was found: install ffmpeg (e.g. `apt install "
              "ffmpeg`, `brew install ffmpeg`) or leave out --video; the PNG frames are rendered either way.")
    spec = RenderSpec(Path(args.recording), decoder=args.decoder, fps=args.fps or None, size=args.size,
                      out=args.out or None, overrides=overrides, frames=args.frames, resume=args.resume,
                      threads=args.threads, sculpt_model=args.sculpt_model, sculpt_steps=args.sculpt_steps,
                      step_frames=args.step_frames, audio=Path(args.audio) if args.audio else None,
                      audio_start=args.audio_start, master=args.master)
    result = render(spec, crew)
    if not crew.main:
        return 0
    print(f"{result.drawn} frames drawn in {crew.size} process{'es' * (crew.size > 1)}; "
          f"{result.frames} in {result.folder}")
    if result.mismatches:
        print(f"note: {result.mismatches} frames differ from the live coordinates (another frame rate?)")
    if result.after_stall:
        print(f"note: {result.after_stall} frames after a stall of the live loop differ from what it showed: "
              "the re-render puts each event at its own time")
    if not args.video:
        return 0
    missing = result.frames - len(written(result.folder, range(result.frames)))
    if shutil.which("ffmpeg") is None or missing > 0:
        if missing > 0:
            print(f"no video yet: {missing} frames of the render are not drawn (--resume draws them)")
        return 1
    made = make_video(result.folder, args.video, result.info["fps"], result.frames)
    if made or spec.audio is None:
        return made
    from instrument.audio.offline import mux_audio

    return mux_audio(args.video, spec.audio, result.audio_offset or 0.0)


def read_take(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(sidecar, frames.jsonl records, events.jsonl records) of a take; TakeError naming the file (and the
    line) if it is not one or is damaged."""
    sidecar_path = folder / SIDECAR
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TakeError(f"{sidecar_path}: not found; is {folder} a take folder?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TakeError(f"{sidecar_path}: {exc}") from None
    try:
        frames, events = read_jsonl(folder / FRAMES), read_jsonl(folder / EVENTS)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TakeError(str(exc)) from None
    _check_take(folder, sidecar, frames, events)
    return sidecar, frames, events


def _check_take(folder: Path, sidecar: Any, frames: list[Any], events: list[Any]) -> None:
    """TakeError for what a damaged or hand-edited take gets wrong, before any decoder loads."""
    from instrument.lab.live import LAB_RECORDS

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise TakeError(f"{where}: {what}; the take is damaged")

    need(isinstance(sidecar, dict), str(folder / SIDECAR), "not a JSON object")
    clock, mapping = sidecar.get("clock"), sidecar.get("mapping")
    numbers = isinstance(clock, dict) and all(isinstance(clock.get(k), (int, float))
                                              for k in ("start", "interval"))
    need(numbers
         and clock["interval"] > 0, str(folder / SIDECAR), "no valid clock (start, interval)")
    need(isinstance(mapping, dict) and isinstance(mapping.get("text"), str), str(folder / SIDECAR),
         "no mapping text")
    for k, frame in enumerate(frames, 1):
        whole = isinstance(frame, dict) and isinstance(frame.get("n"), int) \
            and isinstance(frame.get("coords"), dict)
        need(whole, f"{folder / FRAMES}:{k}", "a frame without n and coords")
        try:
            Coords.from_json(frame["coords"])
        except (TypeError, ValueError) as exc:
            raise TakeError(f"{folder / FRAMES}:{k}: bad coordinates ({exc}); the take is damaged") from None
    for k, record in enumerate(events, 1):
        need(isinstance(record, dict) and isinstance(record.get("n"), int), f"{folder / EVENTS}:{k}",
             "a record without a frame number")
        if not any(key in record for key in ("mapping", *LAB_RECORDS)):
            try:
                event_from_json(record)
            except (KeyError, TypeError, ValueError) as exc:
                raise TakeError(f"{folder / EVENTS}:{k}: not a control event ({exc}); the take is "
                                "damaged") from None


def take_config(sidecar: dict[str, Any], **overrides: Any) -> Config:
    """The Config a take was played with (fields this version does not know are left out)."""
    known = {f.name for f in dataclasses.fields(Config)}
    settings = {k: v for k, v in sidecar.get("settings", {}).items() if k in known}
    for key in ("size", "window", "out_size"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    if settings.get("out_size") == "":  # (older takes: no size given)
        settings["out_size"] = None
    settings.update(overrides)
    return Config(**settings)


def timeline(sidecar: dict[str, Any], frames: list[dict[str, Any]], events: list[dict[str, Any]],
             fps: float | None) -> list[Tick]:
    """The replay's steps: every frame the live session played before the take (the pre-roll, undrawn),
    then every frame of the take's time span, drawn: the take's own timeline, so that the video lasts as
    long as the performance and lines up with sound recorded beside it. Frames the live loop skipped (a
    stall) are drawn too, and an event that waited through a stall is applied at the frame of its own
    time. At another ``fps``, a new grid over the same span, each record applied at the first new frame at
    or after the time it was applied."""
    clock = sidecar["clock"]
    start, interval = float(clock["start"]), float(clock["interval"])
    take = {int(f["n"]): f["coords"] for f in frames}
    first = min(take) if take else None
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    moved: set[int] = set()
    for record in events:
        n = _frame_of(record, start, interval, first)
        by_frame[n].append(record)
        if n != int(record["n"]):
            moved.add(n)
    ticks = [Tick(n, start + n * interval, by_frame.pop(n, []))
             for run_first, run_last in sidecar.get("preroll_frames", [])
             for n in range(run_first, run_last + 1) if first is None or n < first]
    if first is None:
        return ticks
    last = max(take)
    span = [Tick(n, start + n * interval, by_frame.pop(n, []), True, take.get(n), n in moved)
            for n in range(first, last + 1)]
    late = sum(len(records) for n, records in by_frame.items() if n > last)
    if late:
        log.debug("%d records after the take's last frame (the control that stopped it)", late)
    if fps is None or abs(1.0 / fps - interval) < 1e-12:
        return ticks + span
    pending = [(tick.t, record) for tick in span for record in tick.records]
    count = int((span[-1].t - span[0].t) * fps + 1e-9) + 1
    i = 0
    for m in range(count):
        tick = Tick(-1, span[0].t + m / fps, draw=True)
        while i < len(pending) and pending[i][0] <= tick.t + 1e-9:
            tick.records.append(pending[i][1])
            i += 1
        ticks.append(tick)
    return ticks


def _frame_of(record: dict[str, Any], start: float, interval: float, first: int | None) -> int:
    """The frame a logged record is applied at: the live frame that applied it, unless the live loop was
    stalled then (it applied the record more than ``STALL_SECONDS`` and two frames after the record's own
    time): then the first frame at or after that time, within the take."""
    n = int(record["n"])
    if first is None or n <= first or "t" not in record:
        return n
    t = float(record["t"])
    if start + n * interval - t <= max(STALL_SECONDS, 2 * interval):
        return n
    return max(first, min(n, math.ceil((t - start) / interval - 1e-9)))


@dataclass
class Replay:
    """The control side of a re-render: the take's mapping, control state, performance and lab, stepped
    through the timeline's records to each frame's coordinates."""

    folder: Path
    controls: Any
    performance: Performance
    lab: Any
    start: tuple[int, Coords] | None = None  # the take's first frame, as the snapshot says it was
    values: dict[str, Any] = field(default_factory=dict)  # the control values of the last frame stepped

    def coords(self, tick: Tick) -> Coords:
        from instrument.lab.atlas import AtlasError
        from instrument.lab.live import LAB_RECORDS

        if self.start is not None and tick.n == self.start[0]:
            return self.start[1]  # its controls were read before the take began: the snapshot holds them
        pick = None
        for record in tick.records:
            try:
                if "mapping" in record:
                    self.controls.use_text(record["mapping"], record.get("file", "<mapping>"))
                elif any(key in record for key in LAB_RECORDS):
                    self.lab.apply(record, self.folder)
                else:
                    self.controls.apply(event_from_json(record))
            except AtlasError as exc:
                raise TakeError(f"the take's atlas: {exc}") from None
            except Exception as exc:  # a hand-edited take: say which record
                raise TakeError(f"{self.folder / EVENTS}: record of frame {record.get('n')}: "
                                f"{type(exc).__name__}: {exc}") from None
        self.controls.advance(tick.t)
        for name, value in self.controls.pop_actions():
            if name == "anchor":
                pick = int(value)
        self.values = self.controls.values(tick.t)
        return self.performance.step(self.values, tick.t, pick)

    def glimpse(self, tick: Tick) -> Coords:
        """The coordinates of a frame the live loop skipped and nothing happened in, stepped on copies of
        the state, so that the frames that were played step exactly as they did live."""
        state = copy.deepcopy(self.controls.state)
        state.advance(tick.t)
        values = state.snapshot()
        values["beat"] = state.beat(tick.t)
        self.values = values
        return self.performance.copy().step(values, tick.t, None)


def open_replay(folder: Path, sidecar: dict[str, Any], config: Config, decoding: Any) -> Replay:
    """The take's mapping (as it was at the start), control state, performance and lab."""
    from instrument.lab.live import LiveLab
    from instrument.loop.controls import Controls
    from instrument.mapping import parse_mapping
    from instrument.params import model_ranges

    info = sidecar["mapping"]
    mapping, errors = parse_mapping(info["text"], str(info.get("file", "<mapping>")))
    if errors:
        raise TakeError(f"the take's mapping does not read any more: {errors[0]}")
    performance = Performance(n_anchors=decoding.anchors.shape[0], bank_size=config.bank_size)
    lab = LiveLab(performance, decoding, sidecar.get("anchors", []))  # installs what the take logged
    controls = Controls(mapping)
    controls.fit(model_ranges(decoding.anchors.shape[1]))  # (as live: offset_channel spans these channels)
    replay = Replay(folder, controls, performance, lab)
    if "start" in sidecar:
        _restore(replay, sidecar["start"])
    return replay


def _restore(replay: Replay, start: dict[str, Any]) -> None:
    """Continue from the snapshot a take began with (its state after frame ``start["n"]``)."""
    from instrument.lab.live import ATLAS_FOLDER, ROUTES_FOLDER
    from instrument.snapshot import SnapshotError, restore_fields

    try:
        replay.controls.restore(start["controls"])
        restore_fields(replay.performance, start["performance"])
        if start["n"] >= 0:
            replay.start = (int(start["n"]), Coords.from_json(start["coords"]))
    except (SnapshotError, KeyError, TypeError, ValueError) as exc:
        raise TakeError(f"{replay.folder / SIDECAR}: the take's starting state: {exc}") from None
    if replay.performance.atlas_ready:
        replay.lab.apply({"atlas": ATLAS_FOLDER}, replay.folder)
    if replay.performance.routes_ready:
        replay.lab.apply({"geodesic": ROUTES_FOLDER}, replay.folder)


def open_decoding(folder: Path, sidecar: dict[str, Any], config: Config, decoder: str,
                  size: tuple[int, int] | None, load, sculpt_model: str | None = None) -> Any:
    """The decode stage for a re-render: the same pipelines as live (instrument.render), so the same
    pictures, and the same sculpt stage (``sculpt_model``: another model). ``size`` is the output size;
    frames decode at the take's latent size."""
    import torch
    from safetensors import SafetensorError, safe_open

    from instrument.loop.decoding import Decoding, frame_pipeline, full_pipeline

    if load is None:
        from instrument.decoders import load_models as load
    fast, full = load(config)
    if decoder == "full" and full is None:
        raise TakeError("no full decoder: the take's settings name none; pass --full-model")
    try:
        with safe_open(str(folder / ANCHORS), framework="pt") as f:
            anchors = f.get_tensor("anchors").to(fast.device, torch.float32)
    except (OSError, SafetensorError, KeyError) as exc:
        raise TakeError(f"{folder / ANCHORS}: {exc}") from None
    if tuple(anchors.shape[1:]) != tuple(fast.latent_shape(tuple(config.size))):
        raise TakeError(f"{folder / ANCHORS}: latents of shape {tuple(anchors.shape[1:])} do not fit "
                        f"{fast.label} at {config.size[0]}x{config.size[1]}")
    out_size = tuple(size) if size else tuple(sidecar.get("out_size") or config.size)
    full_fn = full_pipeline(full, out_size, config) if decoder == "full" else None
    decoding = Decoding(anchors, fast, full, out_size=out_size, seed=config.seed,
                        fast_frames=frame_pipeline(fast, out_size, config), full_frames=full_fn)
    try:
        decoding.sculpting = take_sculpting(sidecar, decoding, config, model=sculpt_model, error=_take_error)
    except BaseException:
        decoding.close()
        raise
    return decoding


def _take_error(text: str) -> None:
    raise TakeError(text)


def rerender(folder: str | Path, *, decoder: str = "fast", fps: float | None = None,
             size: tuple[int, int] | None = None, out: str | Path | None = None,
             overrides: dict[str, Any] | None = None, load=None, progress: bool = True,
             sculpt_model: str | None = None, sculpt_steps: int | None = None, step_frames: bool = False,
             audio: str | Path | None = None, audio_start: float | None = None, master: bool = False):
    """Render the take in ``folder`` into ``out`` in this process; see the module docstring. Returns a
    ``render_job.job.RenderResult``.

    ``load(config) -> (fast, full)`` replaces ``load_models`` (tests pass their decoders). ``audio``: a sound
    file whose features replace the take's (``instrument.audio.offline``); ``master``: frames as the screen
    showed them, master fade and blackout applied (``loop.output``).
    """
    from instrument.render_job.job import RenderSpec, render

    spec = RenderSpec(Path(folder), decoder=decoder, fps=fps, size=size, out=out, overrides=overrides or {},
                      sculpt_model=sculpt_model, sculpt_steps=sculpt_steps, step_frames=step_frames,
                      audio=Path(audio) if audio is not None else None, audio_start=audio_start,
                      master=master)
    return render(spec, load=load, progress=progress)
