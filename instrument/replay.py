"""``latent-instrument render``: re-render a recorded take from its control stream, offline and exactly.

A take logs every control event with the frame that applied it, the frame times the render thread played,
the mapping (and its reloads) and the anchor latents. Replaying that log through the same mapping engine,
control state and ``Performance`` gives the same coordinates frame for frame, so the same settings give the
same pictures, and other settings (the full decoder, a larger output, another frame rate) give a better
version of the same performance. Frames the live disk dropped are rendered too.

Output: a folder (default ``TAKE/render-<decoder>``) of ``frame_000000.png``..., a ``frames.jsonl`` like the
take's and ``render.json``; ``--video FILE`` also encodes them with ffmpeg when it is on the PATH.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instrument.config import Config, parse_size
from instrument.performance import Coords, Performance
from instrument.recorder import (
    ANCHORS,
    EVENTS,
    FRAMES,
    SIDECAR,
    atomic_write,
    encode_png,
    event_from_json,
    frame_name,
    read_jsonl,
)

log = logging.getLogger(__name__)


class TakeError(Exception):
    """A take folder that cannot be re-rendered; the message names the file."""


@dataclass
class Tick:
    """One step of the replay: the time, the log records applied before it, and whether to draw it."""

    n: int  # frame number on the take's grid (-1 for a frame of a new grid)
    t: float
    records: list[dict[str, Any]] = field(default_factory=list)
    draw: bool = False
    coords: dict[str, Any] | None = None  # the coordinates the live session logged for this frame


@dataclass
class RenderResult:
    folder: Path
    frames: int
    mismatches: int  # frames whose coordinates differ from the live ones (0 at the live frame rate)
    coords: list[Coords]


def configure_render(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", help="a take folder written by `play --record` or the record control")
    parser.add_argument("--decoder", choices=("fast", "full"), default="fast",
                        help="fast (as played) or full (the quality decoder)")
    parser.add_argument("--fps", type=float, default=0.0, help="frame rate (default: the take's)")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="frame size, N or WxH (default: the take's)")
    parser.add_argument("--out", default="", help="output folder (default: RECORDING/render-<decoder>)")
    parser.add_argument("--video", default="", help="also write this video file (needs ffmpeg on the PATH)")
    parser.add_argument("--model", default=None, help="fast decoder instead of the take's")
    parser.add_argument("--full-model", default=None, help="full decoder instead of the take's")
    parser.add_argument("--device", default=None, help="torch device instead of the take's")
    parser.add_argument("--dtype", default=None, help="dtype instead of the take's")
    parser.add_argument("--offline", action="store_true", help="never touch the network")


def run_render(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("model", "full_model", "device", "dtype") if getattr(args, k)}
    if args.offline:
        overrides["offline"] = True
    if args.video and shutil.which("ffmpeg") is None:
        print("--video needs ffmpeg on the PATH, and none was found: install ffmpeg (e.g. `apt install "
              "ffmpeg`, `brew install ffmpeg`) or leave out --video; the PNG frames are rendered either way.")
    try:
        result = rerender(args.recording, decoder=args.decoder, fps=args.fps or None, size=args.size,
                          out=args.out or None, overrides=overrides)
    except TakeError as exc:
        print(f"error: {exc}")
        return 2
    print(f"{result.frames} frames in {result.folder}")
    if result.mismatches:
        print(f"note: {result.mismatches} frames differ from the live coordinates (another frame rate?)")
    if args.video:
        if shutil.which("ffmpeg") is None:
            return 1
        fps = args.fps or 1.0 / json.loads((Path(args.recording) / SIDECAR).read_text())["clock"]["interval"]
        return make_video(result.folder, args.video, fps)
    return 0


def make_video(folder: Path, video: str, fps: float) -> int:
    """Encode ``folder/frame_%06d.png`` into ``video`` with ffmpeg (H.264, yuv420p: plays everywhere)."""
    command = ["ffmpeg", "-y", "-loglevel", "error", "-framerate", f"{fps:g}",
               "-i", str(folder / "frame_%06d.png"), "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", video]
    done = subprocess.run(command)
    if done.returncode == 0:
        print(f"video: {video}")
    return done.returncode


def read_take(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(sidecar, frames.jsonl records, events.jsonl records) of a take; TakeError if it is not one."""
    sidecar_path = folder / SIDECAR
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TakeError(f"{sidecar_path}: not found; is {folder} a take folder?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise TakeError(f"{sidecar_path}: {exc}") from None
    try:
        return sidecar, read_jsonl(folder / FRAMES), read_jsonl(folder / EVENTS)
    except ValueError as exc:
        raise TakeError(str(exc)) from None


def take_config(sidecar: dict[str, Any], **overrides: Any) -> Config:
    """The Config a take was played with (fields this version does not know are left out)."""
    known = {f.name for f in dataclasses.fields(Config)}
    settings = {k: v for k, v in sidecar.get("settings", {}).items() if k in known}
    for key in ("size", "window"):
        if isinstance(settings.get(key), list):
            settings[key] = tuple(settings[key])
    settings.update(overrides)
    return Config(**settings)


def timeline(sidecar: dict[str, Any], frames: list[dict[str, Any]], events: list[dict[str, Any]],
             fps: float | None) -> list[Tick]:
    """The replay's steps: every frame the live session played (the pre-roll before the take, undrawn),
    then the take's frames, or a new grid at ``fps`` over the take with each record applied at the first
    new frame at or after the live frame that applied it."""
    clock = sidecar["clock"]
    start, interval = float(clock["start"]), float(clock["interval"])
    by_frame: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in events:
        by_frame[int(record["n"])].append(record)
    ticks = [Tick(n, start + n * interval, by_frame.pop(n, []))
             for first, last in sidecar.get("preroll_frames", []) for n in range(first, last + 1)]
    take = [Tick(n, start + n * interval, by_frame.pop(n, []), True, f["coords"])
            for f in frames for n in [int(f["n"])]]
    if not take:
        return ticks
    if by_frame:
        log.warning("%d event groups belong to no logged frame (a take cut short?); ignored", len(by_frame))
    if fps is None or abs(1.0 / fps - interval) < 1e-12:
        return ticks + take
    pending = [(tick.t, record) for tick in take for record in tick.records]
    first, last = take[0].t, take[-1].t
    count = int((last - first) * fps + 1e-9) + 1
    i = 0
    for m in range(count):
        tick = Tick(-1, first + m / fps, draw=True)
        while i < len(pending) and pending[i][0] <= tick.t + 1e-9:
            tick.records.append(pending[i][1])
            i += 1
        ticks.append(tick)
    return ticks


def rerender(folder: str | Path, *, decoder: str = "fast", fps: float | None = None,
             size: tuple[int, int] | None = None, out: str | Path | None = None,
             overrides: dict[str, Any] | None = None, load=None, progress: bool = True) -> RenderResult:
    """Render the take in ``folder`` into ``out``; see the module docstring.

    ``load(config) -> (fast, full)`` replaces ``load_models`` (tests pass their decoders).
    """
    import torch
    from safetensors import safe_open
    from tqdm import tqdm

    from instrument.lab.atlas import AtlasError
    from instrument.lab.live import LAB_RECORDS, LiveLab
    from instrument.mapping import parse_mapping
    from instrument.render import Controls, Decoding, frame_pipeline, full_pipeline

    folder = Path(folder)
    sidecar, frames, events = read_take(folder)
    config = take_config(sidecar, **(overrides or {}))
    if load is None:
        from instrument.decoders import load_models as load
    fast, full = load(config)
    if decoder == "full" and full is None:
        raise TakeError("no full decoder: the take's settings name none; pass --full-model")
    try:
        with safe_open(str(folder / ANCHORS), framework="pt") as f:
            anchors = f.get_tensor("anchors").to(fast.device, torch.float32)
    except OSError as exc:
        raise TakeError(f"{folder / ANCHORS}: {exc}") from None
    mapping_info = sidecar["mapping"]
    mapping, errors = parse_mapping(mapping_info["text"], mapping_info["file"])
    if errors:
        raise TakeError(f"the take's mapping does not read any more: {errors[0]}")
    out_size = tuple(size) if size else tuple(sidecar.get("out_size") or config.size)
    # The same pipelines as live (render.Renderer), so the same pictures.
    frames_fn = frame_pipeline(fast, out_size, config)
    full_fn = full_pipeline(full, out_size, config) if decoder == "full" else None
    decoding = Decoding(anchors, fast, full, out_size=out_size, seed=config.seed, fast_frames=frames_fn,
                        full_frames=full_fn)
    controls = Controls(mapping)
    performance = Performance(n_anchors=anchors.shape[0], bank_size=config.bank_size)
    lab = LiveLab(performance, decoding, sidecar.get("anchors", []))  # installs what the take logged

    ticks = timeline(sidecar, frames, events, fps)
    out = Path(out) if out else folder / f"render-{decoder}"
    out.mkdir(parents=True, exist_ok=True)
    drawn, mismatches, all_coords = 0, 0, []
    bar = tqdm(total=sum(t.draw for t in ticks), unit="frame", desc="render", disable=not progress)
    with open(out / FRAMES, "w", encoding="utf-8") as lines:
        for tick in ticks:
            pick = None
            for record in tick.records:
                if "mapping" in record:
                    controls.use_text(record["mapping"], record.get("file", "<mapping>"))
                elif any(key in record for key in LAB_RECORDS):
                    try:
                        lab.apply(record, folder)
                    except AtlasError as exc:
                        raise TakeError(f"the take's atlas: {exc}") from None
                else:
                    controls.apply(event_from_json(record))
            controls.advance(tick.t)
            for name, value in controls.pop_actions():
                if name == "anchor":
                    pick = int(value)
            coords = performance.step(controls.values(tick.t), tick.t, pick)
            if not tick.draw:
                continue
            if tick.coords is not None and Coords.from_json(tick.coords) != coords:
                mismatches += 1
            name = frame_name(drawn)
            atomic_write(out / name, encode_png(decoding.render(coords, decoder)))
            record = {"n": tick.n, "t": tick.t, "coords": coords.to_json(), "file": name}
            lines.write(json.dumps(record) + "\n")
            all_coords.append(coords)
            drawn += 1
            bar.update()
    bar.close()
    for pipeline in (frames_fn, full_fn):
        if pipeline is not None:
            pipeline.close()
    info = {"take": str(folder), "decoder": decoding.decoder(decoder).label,
            "fps": fps or 1 / sidecar["clock"]["interval"], "size": list(out_size), "frames": drawn,
            "coordinate_mismatches": mismatches}
    atomic_write(out / "render.json", (json.dumps(info, indent=2) + "\n").encode())
    return RenderResult(out, drawn, mismatches, all_coords)
