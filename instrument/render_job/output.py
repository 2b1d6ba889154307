"""The render folder: its frames, ``frames.jsonl``, ``render.json``, the processes' progress and the video.

A frame is written atomically (``recorder.atomic_write``), so a ``frame_NNNNNN.png`` on disk is whole and
``--resume`` can trust it. ``render.json`` says what the folder holds (``SAME_RENDER``: the decoder and its
dtype, the frame rate, the size, the plan's digest and the sculpt model); a resumed or partial render into a
folder of another render is refused, so that one video never mixes two renders.
``.progress/process-K.json`` holds process K's count, rewritten every ``PROGRESS_EVERY`` seconds: the main
process draws one bar from them, the processes wait for each other through them, and after a failure they
say which process stopped where.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrument.errors import UserError
from instrument.recorder import atomic_write, frame_name

INFO = "render.json"
PROGRESS = ".progress"
PROGRESS_EVERY = 0.5  # seconds
SAME_RENDER = ("decoder", "dtype", "fps", "size", "frames", "plan", "sculpt")


@dataclass(frozen=True)
class FrameRange:
    """``--frames A:B``: output frames A to B-1 (either end may be left out, as in a Python slice)."""

    start: int | None = None
    stop: int | None = None

    @classmethod
    def parse(cls, text: str) -> FrameRange:
        """An argparse type: ``"A:B"``, ``"A:"`` or ``":B"``, whole numbers from 0."""
        first, colon, last = text.partition(":")
        try:
            ends = [int(e) if e.strip() else None for e in (first, last)]
        except ValueError:
            ends = []
        if not colon or not ends or any(e is not None and e < 0 for e in ends):
            raise argparse.ArgumentTypeError(f"{text!r} is not a range of frames; use A:B (frames A to B-1, "
                                             "from 0), A: or :B")
        return cls(*ends)

    def select(self, total: int) -> range:
        """The output frames this range names in a render of ``total``; UserError if none."""
        start = 0 if self.start is None else self.start
        stop = total if self.stop is None else min(self.stop, total)
        if start >= stop:
            raise UserError(f"--frames {self}: no frames there; this render has frames 0:{total}")
        return range(start, stop)

    def __str__(self) -> str:
        return f"{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}"


def output_folder(take: Path, decoder: str, out: str | Path | None) -> Path:
    return Path(out) if out else Path(take) / f"render-{decoder}"


def written(folder: Path, frames: range) -> set[int]:
    """The output frames in ``frames`` already on disk (whole, since they are written atomically)."""
    return {k for k in frames if (folder / frame_name(k)).is_file()}


def check_same_render(folder: Path, info: dict[str, Any]) -> None:
    """UserError if ``folder`` holds frames of a render other than ``info``'s (for --resume and --frames,
    which keep the frames already there)."""
    path = folder / INFO
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: {exc}; remove the folder or give another --out") from None
    differ = [key for key in SAME_RENDER if not isinstance(before, dict) or before.get(key) != info[key]]
    if differ:
        raise UserError(f"{folder} holds another render ({', '.join(differ)} differ): give another --out, "
                        "or leave out --resume and --frames to render it all again")


def write_info(folder: Path, info: dict[str, Any]) -> None:
    atomic_write(folder / INFO, (json.dumps(info, indent=2) + "\n").encode())


def clear_leftovers(folder: Path) -> None:
    """Remove what a killed render leaves: half-written frames' temporary files and old progress."""
    for tmp in folder.glob(".frame_*.png.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
    shutil.rmtree(folder / PROGRESS, ignore_errors=True)


class Progress:
    """One process's progress file: ``{"process", "pid", "host", "frames": [first, last], "count", "done",
    "began", "seconds", "error"}``, written at most every PROGRESS_EVERY seconds (and at the end)."""

    def __init__(self, folder: Path, rank: int, frames: list[int]) -> None:
        self.path = folder / PROGRESS / f"process-{rank}.json"
        self.path.parent.mkdir(exist_ok=True)
        self.state: dict[str, Any] = {
            "process": rank, "pid": os.getpid(), "host": socket.gethostname(),
            "frames": [frames[0], frames[-1]] if frames else [], "count": len(frames), "done": 0,
            "began": time.time(), "seconds": 0.0, "error": None,
        }  # fmt: skip
        self._written = 0.0
        self.write()

    def update(self, done: int, seconds: float) -> None:
        self.state.update(done=done, seconds=seconds)
        if done == self.state["count"] or time.monotonic() - self._written >= PROGRESS_EVERY:
            self.write()

    def fail(self, error: str) -> None:
        self.state["error"] = error
        self.write()

    def write(self) -> None:
        atomic_write(self.path, json.dumps(self.state).encode())
        self._written = time.monotonic()


def read_progress(folder: Path, processes: int) -> list[dict[str, Any] | None]:
    """Every process's progress (None where its file is not there yet)."""
    found: list[dict[str, Any] | None] = []
    for rank in range(processes):
        try:
            found.append(json.loads((folder / PROGRESS / f"process-{rank}.json").read_text()))
        except (OSError, ValueError):
            found.append(None)
    return found


def gone(state: dict[str, Any]) -> bool:
    """Has this process ended without finishing (killed) — as far as this host can tell?"""
    if state["error"] or state["done"] == state["count"] or state["host"] != socket.gethostname():
        return False
    try:
        os.kill(state["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def make_video(folder: Path, video: str, fps: float, frames: int) -> int:
    """Encode ``folder``'s first ``frames`` frames into ``video`` with ffmpeg (H.264, yuv420p: plays
    everywhere)."""
    command = ["ffmpeg", "-y", "-loglevel", "error", "-framerate", f"{fps:g}",
               "-i", str(folder / "frame_%06d.png"), "-frames:v", str(frames), "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", video]
    done = subprocess.run(command)
    if done.returncode == 0:
        print(f"video: {video}")
    return done.returncode
