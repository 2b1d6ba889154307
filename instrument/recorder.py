"""Recording a take: PNG frames, a JSON sidecar, and the control stream, written by a thread of its own.

A take folder holds::

    recording.json       sidecar: settings, model, mapping (file and text), anchors, timing, status
    config.json          the run's Config, as every command writes it
    anchors.safetensors  the anchor latents the take was played on (so `render` needs no image files)
    frame_000000.png     the frames, numbered from 0 in the order written
    frames.jsonl         one line per rendered frame: n, t, file (null if dropped) and latent coordinates
                         (with sculpting: its sculpt; "shown": the coordinates and sculpt of an earlier
                         frame whose sculpt the picture is, under the stream batch)
    events.jsonl         one line per applied control event (MIDI as hex bytes, OSC as address and
                         arguments, audio features as numbers), or mapping reload
    control.mid          the MIDI messages of the take as a standard MIDI file (written at the end)

The render thread hands frames over without waiting: when more than ``max_pending`` frames wait to be
written, a frame is dropped (its line in frames.jsonl says so) and counted. A process killed mid-take leaves a
readable folder: PNGs are written to a temporary name and renamed, the JSONL files are appended and flushed
line by line, and the sidecar is rewritten atomically at the start and the end. A disk error (full, read-only)
stops the recording with a message in ``error``; playing goes on.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mido
import numpy as np
from PIL import Image

from instrument.events import AudioFeatures, ControlEvent, KeyInput, OscInput, PointerInput

log = logging.getLogger(__name__)

SIDECAR = "recording.json"
FRAMES = "frames.jsonl"
EVENTS = "events.jsonl"
MIDI_FILE = "control.mid"
ANCHORS = "anchors.safetensors"
TICKS_PER_BEAT = 480
SIDECAR_RESERVE = 16 * 1024  # spaces after the sidecar's JSON: room to say "failed" on a full disk
SIDECAR_EVERY = 2.0  # seconds between the sidecar's updates while recording (counts stay near the truth)
MIDI_TEMPO = 500_000  # microseconds per beat (120 bpm): ticks = seconds * 960
# Messages a standard MIDI file can hold; clock and transport stay in events.jsonl only.
_SMF_TYPES = {"note_on", "note_off", "control_change", "program_change", "pitchwheel", "aftertouch",
              "polytouch", "sysex"}


def frame_name(k: int) -> str:
    return f"frame_{k:06d}.png"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part.
    On failure (a full disk) nothing is left behind but the old file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def overwrite_in_place(path: Path, data: bytes) -> None:
    """Write ``data`` over the start of the existing file ``path``, padding the rest of its length with
    spaces: needs no new disk space when ``data`` fits in the file (a full disk can still take it)."""
    size = path.stat().st_size
    if len(data) > size:
        raise OSError(errno.ENOSPC, f"{len(data)} bytes do not fit in the {size} reserved", str(path))
    with open(path, "r+b") as f:
        f.write(data + b" " * (size - len(data)))
        f.flush()
        os.fsync(f.fileno())


def encode_png(image: np.ndarray) -> bytes:
    """[H, W, 3] uint8 RGB -> PNG bytes (fast compression: the disk is cheaper than the CPU here)."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def event_to_json(event: ControlEvent, n: int) -> dict[str, Any]:
    """One applied event as a JSON-able dict; ``n`` is the frame whose render applied it."""
    record: dict[str, Any] = {"n": n, "t": event.time, "source": event.source}
    message = event.message
    if isinstance(message, mido.Message):
        record["midi"] = message.hex()
    elif isinstance(message, KeyInput):
        record["key"] = message.key
        record["down"] = message.down
    elif isinstance(message, PointerInput):
        record["pointer"] = [message.x, message.y, message.buttons]
    elif isinstance(message, OscInput):
        record["osc"] = message.address
        record["args"] = list(message.args)
    elif isinstance(message, AudioFeatures):
        record["audio"] = [getattr(message, name) for name in AudioFeatures.__slots__]
    else:
        raise TypeError(f"cannot log a control event carrying {type(message).__name__}")
    return record


def event_from_json(record: dict[str, Any]) -> ControlEvent:
    """The inverse of ``event_to_json`` (the frame number stays in the record)."""
    if "midi" in record:
        message: mido.Message | KeyInput | PointerInput | OscInput | AudioFeatures
        message = mido.Message.from_hex(record["midi"])
    elif "key" in record:
        message = KeyInput(record["key"], bool(record["down"]))
    elif "pointer" in record:
        x, y, buttons = record["pointer"]
        message = PointerInput(float(x), float(y), int(buttons))
    elif "osc" in record:
        address, args = record["osc"], record.get("args", [])
        if not isinstance(address, str) or not isinstance(args, list) or not all(
                isinstance(a, (int, float, str, bool)) for a in args):
            raise ValueError(f"an OSC record needs an address and a list of numbers and text: {record}")
        message = OscInput(address, tuple(args))
    elif "audio" in record:
        values = record["audio"]
        if not isinstance(values, list) or len(values) != len(AudioFeatures.__slots__):
            raise ValueError(f"an audio record needs {len(AudioFeatures.__slots__)} numbers: {record}")
        at, level, low, mid, high, onset, beat, tempo = (float(v) for v in values)
        message = AudioFeatures(at, level, low, mid, high, bool(onset), beat, tempo)
    else:
        raise ValueError(f"event record has no midi, key, pointer, osc or audio field: {record}")
    return ControlEvent(float(record["t"]), str(record["source"]), message)


def midi_file(events: Iterable[ControlEvent], start: float) -> mido.MidiFile:
    """The MIDI messages among ``events`` as a one-track file at 120 bpm; ticks from times after ``start``."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO, time=0))
    last_tick = 0
    for event in events:
        message = event.message
        if not isinstance(message, mido.Message) or message.type not in _SMF_TYPES:
            continue
        # Absolute ticks, rounded once, so that rounding errors do not add up over a long take.
        seconds = max(0.0, event.time - start)
        tick = max(last_tick, round(mido.second2tick(seconds, TICKS_PER_BEAT, MIDI_TEMPO)))
        track.append(message.copy(time=tick - last_tick))
        last_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT, tracks=[track])


class Recorder:
    """One take: call ``start``, then ``add_frame``/``add_events`` from the render thread, then ``stop``.

    ``sidecar`` is the JSON-able description the render thread knows (settings, model, mapping, anchors,
    timing); the recorder adds status, counts and times. ``write_file(path, data)`` writes whole files
    (PNGs, sidecar) and is replaceable, e.g. by one that fails like a full disk.
    """

    def __init__(
        self,
        folder: str | Path,
        sidecar: dict[str, Any],
        *,
        anchors: bytes | None = None,
        max_pending: int = 32,
        write_file: Callable[[Path, bytes], None] = atomic_write,
    ) -> None:
        self.folder = Path(folder)
        self.sidecar = dict(sidecar)
        self.max_pending = max_pending
        self.write_file = write_file
        self.written = 0  # PNG frames on disk
        self.dropped = 0  # frames dropped because the disk fell behind (or after an error)
        self.error: str | None = None
        self._anchors = anchors
        self._items: collections.deque[tuple[str, Any]] = collections.deque()
        self._pending_frames = 0
        self._cond = threading.Condition()
        self._closing = False
        self._midi: list[ControlEvent] = []  # the take's events, for control.mid
        self._start_time: float | None = None  # time of the first frame: tick 0 of control.mid
        self._sidecar_at = 0.0  # when the sidecar was last written (time.monotonic)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)

    # -- the render thread's side ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def active(self) -> bool:
        """True while the take accepts frames (False after ``stop`` or an error)."""
        return not self._closing and self.error is None

    def add_frame(self, image: np.ndarray | None, meta: dict[str, Any]) -> bool:
        """Queue a frame ([H, W, 3] uint8) with its frames.jsonl fields (n, t, coords). False if dropped.

        ``image`` None logs a frame that failed to render (its line has no file), so that a re-render still
        knows the frame's time was played."""
        with self._cond:
            if self._start_time is None:
                self._start_time = float(meta["t"])
            if not self.active:
                return False
            if image is None:
                self._items.append(("frame", (None, meta)))
                self._cond.notify()
                return False
            keep = self._pending_frames < self.max_pending
            if keep:
                self._pending_frames += 1
            else:
                self.dropped += 1
            self._items.append(("frame", (image if keep else None, meta)))
            self._cond.notify()
            return keep

    def add_events(self, n: int, events: Iterable[ControlEvent]) -> None:
        """Log the events the render thread applied while making frame ``n``."""
        with self._cond:
            if not self.active:
                return
            for event in events:
                self._items.append(("event", event_to_json(event, n)))
                self._midi.append(event)
            self._cond.notify()

    def add_record(self, record: dict[str, Any]) -> None:
        """Log another control-stream line (a mapping reload: {"n", "t", "mapping": text})."""
        with self._cond:
            if self.active:
                self._items.append(("event", record))
                self._cond.notify()

    def close(self, **final: Any) -> None:
        """Finish the take without waiting: the writer writes what is queued, then control.mid and the
        final sidecar (with ``final``'s fields added), and ends (``done``)."""
        with self._cond:
            self.sidecar.update(final)
            self._closing = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """``close``, then wait up to ``timeout`` seconds for the writer."""
        self.close()
        self.join(timeout)

    @property
    def done(self) -> bool:
        """The writer has ended (the take is finished, or failed)."""
        return not self._thread.is_alive() and (self._closing or self.error is not None)

    def status(self) -> str:
        """One line for the HUD."""
        state = f"error: {self.error}" if self.error else ("recording" if self.active else
                                                             "finished" if self.done else "finishing")
        return f"{state} -> {self.folder} ({self.written} frames, {self.dropped} dropped)"

    # -- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        frames_file = events_file = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write_sidecar("recording")
            settings = self.sidecar.get("settings")
            if settings is not None:
                self.write_file(self.folder / "config.json", (json.dumps(settings, indent=2) + "\n").encode())
            if self._anchors is not None:
                self.write_file(self.folder / ANCHORS, self._anchors)
            frames_file = open(self.folder / FRAMES, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
            events_file = open(self.folder / EVENTS, "a", encoding="utf-8")  # noqa: SIM115
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._items or self._closing)
                    if not self._items:
                        break
                    kind, payload = self._items.popleft()
                if kind == "frame":
                    self._write_frame(frames_file, *payload)
                else:
                    events_file.write(json.dumps(payload) + "\n")
                    events_file.flush()
                if time.monotonic() - self._sidecar_at >= SIDECAR_EVERY:
                    self._write_sidecar("recording")
            self._finish(events_file)
        except OSError as exc:
            self._fail(f"{exc.filename or self.folder}: {exc.strerror or exc}")
        except Exception as exc:  # a bug must not leave the take without a word in its sidecar
            log.exception("recorder failed")
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            for f in (frames_file, events_file):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()

    def _write_frame(self, frames_file: Any, image: np.ndarray | None, meta: dict[str, Any]) -> None:
        line = dict(meta)
        if image is None:
            line["file"] = None
        else:
            name = frame_name(self.written)
            try:
                self.write_file(self.folder / name, encode_png(image))
            except OSError:
                self.dropped += 1  # this frame is not on disk
                raise
            finally:
                with self._cond:
                    self._pending_frames -= 1
            self.written += 1
            line["file"] = name
        # After the PNG: every line that names a file names one that is complete on disk.
        frames_file.write(json.dumps(line) + "\n")
        frames_file.flush()

    def _finish(self, events_file: Any) -> None:
        if self._midi and self._start_time is not None:
            buffer = io.BytesIO()
            midi_file(self._midi, self._start_time).save(file=buffer)
            self.write_file(self.folder / MIDI_FILE, buffer.getvalue())
        self._write_sidecar("finished")

    def _fail(self, message: str) -> None:
        with self._cond:
            self.error = message
            self.dropped += sum(1 for kind, _ in self._items if kind == "frame")
            self._items.clear()
            self._pending_frames = 0
        log.error("recording stopped: %s", message)
        with contextlib.suppress(OSError):  # say why in the sidecar if the disk still lets us
            self._write_sidecar("failed")

    def _write_sidecar(self, status: str) -> None:
        """Rewrite the sidecar (atomically); on a full disk, over the old one in place, in the room its
        trailing spaces reserve, so that a take always says what became of it."""
        with self._cond:  # (the render thread adds its last fields at close)
            self.sidecar.update(
                status=status,
                error=self.error,
                frames_written=self.written,
                frames_dropped=self.dropped,
                updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
            data = (json.dumps(self.sidecar, indent=2, default=str) + "\n").encode()
        path = self.folder / SIDECAR
        self._sidecar_at = time.monotonic()
        try:
            self.write_file(path, data + b" " * SIDECAR_RESERVE)
        except OSError:
            if not path.exists():
                raise
            overwrite_in_place(path, data)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file; a torn last line (a killed process) is skipped with a warning."""
    records = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                log.warning("%s:%d: skipping a torn last line", path, number)
            else:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
    return records
