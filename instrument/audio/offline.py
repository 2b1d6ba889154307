"""``render --audio FILE``: a take's audio features computed again from a sound file, and the file muxed
into the video.

The file lines up with the take on the take's clock: when the take was played from that file (``play
--audio-in FILE``), as it played (its logged features say at which second of the file each came); else the
file's start is the take's first frame, or ``start`` seconds into the file is. Each hop's features become a
control-stream record at the time its last sample plays, applied at the first frame at or after that time,
as the live loop applies an event; the take's own audio records give way to them. The video then gets the
file's sound from the second its first frame shows, so picture and sound stay together to the frame.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

from instrument.audio.features import FeatureExtractor
from instrument.audio.files import AudioError, open_audio
from instrument.events import ControlEvent
from instrument.recorder import event_to_json


def file_zero(path: Path, sidecar: dict[str, Any], frames: list[dict[str, Any]],
              events: list[dict[str, Any]], start: float | None = None) -> float:
    """The take-clock time of the file's first sample (see the module docstring)."""
    if start is None:
        name = f"audio:file:{path.name}"
        played = next((r for r in events if "audio" in r and r.get("source") == name), None)
        if played is not None:
            return float(played["t"]) - float(played["audio"][0])
        start = 0.0
    first = min(frames, key=lambda f: f["n"]) if frames else None
    origin = float(first["t"]) if first is not None and "t" in first else float(sidecar["clock"]["start"])
    return origin - start


Records = list[dict[str, Any]]


def with_audio(path: str | Path, sidecar: dict[str, Any], frames: Records, events: Records,
               start: float | None = None) -> tuple[Records, float]:
    """(the take's control stream with its audio features recomputed from ``path``, the take-clock time of
    the file's first sample). AudioError when the file cannot be read."""
    path = Path(path)
    audio = open_audio(path)
    zero = file_zero(path, sidecar, frames, events, start)
    clock = sidecar["clock"]
    origin, interval = float(clock["start"]), float(clock["interval"])
    extractor = FeatureExtractor(audio.rate)
    source = f"audio:file:{path.name}"
    records = [r for r in events if "audio" not in r]
    for block in audio.blocks():
        for features in extractor.feed(block):
            t = zero + features.at
            n = math.ceil((t - origin) / interval - 1e-9)
            records.append(event_to_json(ControlEvent(t, source, features), n))
    records.sort(key=lambda r: (int(r["n"]), float(r.get("t", 0.0))))
    return records, zero


def mux_audio(video: str | Path, path: str | Path, offset: float) -> int:
    """Put the sound of ``path`` into ``video`` (in place), from ``offset`` seconds into the file at the
    video's first frame (a negative offset: the sound starts that much after it); cut at the picture's end.
    Returns ffmpeg's exit status."""
    video = Path(video)
    if shutil.which("ffmpeg") is None:
        raise AudioError("--audio needs ffmpeg on the PATH to put the sound into --video")
    timing = ["-ss", f"{offset:.6f}"] if offset >= 0 else ["-itsoffset", f"{-offset:.6f}"]
    joined = video.with_name(f".{video.stem}.audio{video.suffix}")
    command = ["ffmpeg", "-y", "-loglevel", "error", "-i", str(video), *timing, "-i", str(path),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "256k", "-shortest",
               str(joined)]
    done = subprocess.run(command)
    if done.returncode == 0:
        joined.replace(video)
        print(f"sound: {Path(path).name} from {offset:+.3f} s")
    else:
        joined.unlink(missing_ok=True)
    return done.returncode
