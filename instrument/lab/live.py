"""The lab in live play: atlas mode, perceptual pacing, the stretch indicator (render thread only).

``LiveLab`` sits beside ``Performance`` in the render thread and gives it what its lab controls need:

- **atlas**: ``--atlas DIR`` is loaded at the start (a bad folder is reported and atlas mode stays off);
  without it, the first time the ``atlas`` toggle is on, one is charted from the session's anchors (3+).
- **pacing**: when ``Performance.step`` lists pacing tables it lacked (``wanted``), the lab measures them with
  the fast decoder on the centre of the latents (``PACING_SIDE``: small, so a table costs a fraction of a
  second on a CPU and milliseconds on a GPU) one frame later (the HUD says "pacing: measuring…" meanwhile),
  installs them, and steps that frame again.
- **stretch**: ``stretch_at`` at the current latent, measured while the controls rest (every
  ``STRETCH_EVERY`` seconds on a GPU even while moving), shown as a number, a bar and a word.

Takes re-render exactly because everything measured live is logged as a control-stream record at the frame
that first used it: ``{"n", "t", "pacing": key, "s": [...], "length": [...], "total"}`` for a table (replay
installs the logged numbers, never measures), ``{"n", "t", "atlas": "atlas"}`` for the atlas, which is
saved into the take's ``atlas/`` folder. ``LiveLab.apply`` reads both back (``instrument.replay``).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instrument.lab.atlas import Atlas, AtlasError, draw_minimap
from instrument.lab.curvature import path_profile
from instrument.lab.pacing import PacingTable, stretch_at
from instrument.latent.geometry import path_point, slerp
from instrument.performance import Coords, Performance, latent_at

log = logging.getLogger(__name__)

ATLAS_FOLDER = "atlas"  # inside a take
PACING_SIDE = {"cpu": 8}  # latent side measured for pacing and stretch (8 = 64 px); other devices: 16
SEGMENT_SAMPLES = 8  # pacing samples per path segment (anchor to anchor)
GLIDE_SAMPLES = 9  # pacing samples along a glide
STRETCH_EVERY = 2.0  # seconds between stretch measurements
MINIMAP = 160  # pixels


def centre(latents: torch.Tensor, side: int) -> torch.Tensor:
    """Tensor[..., C, h, w] -> its centre ``side`` x ``side`` (the whole latent when it is smaller)."""
    h, w = latents.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return latents[..., top:top + side, left:left + side].contiguous()


def table_to_json(table: PacingTable) -> dict[str, Any]:
    return {"s": table.s.tolist(), "length": table.length.tolist(), "total": table.total}


def table_from_json(record: dict[str, Any]) -> PacingTable:
    return PacingTable(torch.tensor(record["s"], dtype=torch.float32),
                       torch.tensor(record["length"], dtype=torch.float32), float(record["total"]))


def measure(decode: Callable[[torch.Tensor], torch.Tensor], anchors: torch.Tensor, key: str,
            side: int) -> PacingTable:
    """The pacing table named ``key`` (``performance.path_key`` / ``glide_key``) over ``anchors``
    [N, C, h, w], measured with ``decode`` on the centre ``side`` x ``side`` of the latents.

    A path's table is normalised per segment, so that every anchor stays at its own path position."""
    what, kind, *ends = key.split(" ")
    n = len(anchors)
    if what == "path":
        segments = n if kind == "loop" else n - 1
        s = torch.linspace(0, 1, segments * SEGMENT_SAMPLES + 1)
        latents = path_point(anchors, s.to(anchors.device), kind)
        steps = path_profile(decode, centre(latents, side)).double().clamp_min(1e-12)
        steps = steps.view(segments, SEGMENT_SAMPLES)
        steps = (steps / steps.sum(1, keepdim=True) / segments).flatten()
    else:
        start, end = (path_point(anchors, float(e), kind) for e in ends)
        s = torch.linspace(0, 1, GLIDE_SAMPLES)
        latents = slerp(start, end, s.to(anchors.device))
        steps = path_profile(decode, centre(latents, side)).double().clamp_min(1e-12)
        steps = steps / steps.sum()
    length = torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])
    return PacingTable(s, (length / length[-1]).float(), float(length[-1]))


class LiveLab:
    """The lab's state in one session (live) or one re-render (``decode`` None: never measures).

    ``performance`` is the session's ``Performance`` (its ``tables`` and ``atlas_ready`` are filled here);
    ``decoding`` the ``render.Decoding`` (its ``atlas`` is set here). ``log_record(record)`` puts a record in
    the control stream (the take); ``error(text)`` reports a problem on the HUD.
    """

    def __init__(self, performance: Performance, decoding: Any, names: list[str], *,
                 decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 log_record: Callable[[dict[str, Any]], None] = lambda record: None,
                 error: Callable[[str], None] = log.error, seed: int = 0) -> None:
        self.performance = performance
        self.decoding = decoding
        self.names = list(names)
        self.decode = decode
        self.log_record = log_record
        self.error = error
        self.seed = seed
        self.side = PACING_SIDE.get(decoding.anchors.device.type, 16)
        self.atlas: Atlas | None = None
        self.atlas_failed = ""  # why atlas mode is unavailable
        self.take_folder: Path | None = None  # the take being recorded (the atlas is saved into it)
        self.notice = ""
        self._measure_next = False  # tables were wanted last frame: measure them this frame
        self._chart_next = False
        self.stretch: float | None = None
        self._stretches: list[float] = []
        self._stretch_coords: Coords | None = None
        self._stretch_time = 0.0
        self._minimap: tuple[tuple[float, float], np.ndarray] | None = None
        self._flash = ("", 0.0)  # a passing message and when it goes

    # -- setup -----------------------------------------------------------------------------------------------

    def load_atlas(self, folder: str | Path, n: int = 0, t: float = 0.0) -> None:
        """Load ``--atlas DIR`` (charted at this session's latent size); a problem goes to the HUD."""
        try:
            atlas = Atlas.load(folder, latent_shape=tuple(self.decoding.anchors.shape[1:]))
        except AtlasError as exc:
            self.atlas_failed = f"atlas mode unavailable: {exc}"
            self.error(self.atlas_failed)
            return
        self._install_atlas(atlas, n, t)

    def _install_atlas(self, atlas: Atlas, n: int, t: float) -> None:
        self.atlas = atlas
        self.decoding.atlas = atlas
        self.performance.atlas_ready = True
        if self.take_folder is not None:
            self.save_take(self.take_folder)
        self.log_record({"n": n, "t": t, "atlas": ATLAS_FOLDER})

    # -- live, every frame -----------------------------------------------------------------------------------

    def step(self, controls: dict[str, Any], t: float, pick: int | None, n: int) -> Coords:
        """``performance.step`` with what it needs measured first (see the module docstring)."""
        performance = self.performance
        if controls.get("atlas") and self.atlas is None and self.decode is not None:
            self._chart(n, t)
        elif self.notice.startswith("atlas"):  # a message about atlas mode goes when it is turned off
            self.notice = ""
        before = performance.copy()
        coords = performance.step(controls, t, pick)
        if not performance.wanted or self.decode is None:
            self._measure_next = False
            if self.notice.startswith("pacing"):
                self.notice = ""
            return coords
        if not self._measure_next:  # say so first: on a CPU the measuring holds this thread a moment
            self._measure_next = True
            self.notice = "pacing: measuring…"
            return coords
        self._measure_next = False
        began = time.perf_counter()
        for key in performance.wanted:
            try:
                table = measure(self.decode, self.decoding.anchors, key, self.side)
            except Exception as exc:  # an unmeasurable path plays unpaced
                self.error(f"pacing {key}: {type(exc).__name__}: {exc}")
                return coords
            performance.tables[key] = table
            self.log_record({"n": n, "t": t, "pacing": key, **table_to_json(table)})
        log.debug("pacing tables %s measured in %.2f s", performance.wanted, time.perf_counter() - began)
        self.notice = ""
        for f in dataclasses.fields(Performance):  # step this frame again, now with the tables
            if f.name != "tables":
                setattr(performance, f.name, getattr(before, f.name))
        return performance.step(controls, t, pick)

    def _chart(self, n: int, t: float) -> None:
        if self.atlas_failed:
            self.notice = self.atlas_failed
            return
        anchors = self.decoding.anchors
        if len(anchors) < 3:
            self.notice = (f"atlas: give --atlas DIR (made by `latent-instrument atlas`) or 3+ anchors; "
                           f"this session has {len(anchors)}")
            return
        if not self._chart_next:  # show the message before the work
            self._chart_next = True
            self.notice = "atlas: charting the anchors…"
            return
        try:
            atlas = Atlas.fit(anchors.detach().float().cpu(), self.names, seed=self.seed)
        except AtlasError as exc:
            self.atlas_failed = f"atlas mode unavailable: {exc}"
            self.error(self.atlas_failed)
            return
        self.notice = ""
        self._install_atlas(atlas, n, t)

    def after_frame(self, coords: Coords, resting: bool) -> None:
        """Measure the stretch at ``coords`` now and then (see ``STRETCH_EVERY``)."""
        if self.decode is None or coords == self._stretch_coords:
            return
        now = time.monotonic()
        gpu = self.decoding.anchors.device.type != "cpu"
        if not (resting or gpu) or now - self._stretch_time < STRETCH_EVERY:
            return
        self._stretch_time, self._stretch_coords = now, coords
        try:
            with torch.no_grad():
                z = latent_at(self.decoding.anchors, coords, seed=self.decoding.seed, std=self.decoding.std,
                              atlas=self.atlas)
            self.stretch = stretch_at(self.decode, centre(z, self.side).float())
            self._stretches.append(self.stretch)
        except Exception as exc:  # the indicator is a nicety: say why it is off, keep playing
            self.error(f"stretch: {type(exc).__name__}: {exc}")

    # -- the HUD ---------------------------------------------------------------------------------------------

    def stretch_line(self) -> str:
        """"stretch 0.31 [###-----] smooth": the value, a bar (log scale, x10 per 8 marks), and a word that
        compares it with the median of this session's measurements."""
        if self.stretch is None:
            return ""
        value = self.stretch
        median = statistics.median(self._stretches)
        ratio = value / max(median, 1e-12)
        word = "turbulent" if ratio > 1.25 else "smooth" if ratio < 0.8 else "even"
        marks = int(min(8, max(0, round(4 + 8 * np.log10(max(ratio, 1e-6))))))
        return f"stretch {value:.2f} [{'#' * marks}{'-' * (8 - marks)}] {word}"

    def hud(self, coords: Coords | None, controls: dict[str, Any] | None) -> tuple[tuple[str, ...],
                                                                               np.ndarray | None]:
        """(HUD lines, minimap [MINIMAP, MINIMAP, 3] uint8 or None) for the status."""
        lines: list[str] = []
        minimap = None
        if coords is not None and coords.atlas and self.atlas is not None:
            xy = (coords.atlas_x, coords.atlas_y)
            if self._minimap is None or self._minimap[0] != xy:
                self._minimap = (xy, draw_minimap(self.atlas, xy, MINIMAP))
            minimap = self._minimap[1]
            near = self.atlas.names[self.atlas.nearest(*xy)]
            lines.append(f"atlas ({xy[0]:.2f}, {xy[1]:.2f}) near {near}")
        if controls is not None:
            if controls.get("pacing"):
                lines.append(f"pacing on ({len(self.performance.tables)} tables)")
            size = self.performance.bank_size
            if size > 0 and int(controls.get("bank", 0)):
                first = int(controls["bank"]) * size
                lines.append(f"bank {int(controls['bank'])}: anchors {first}-{first + size - 1}")
        if self.performance.wrapped:
            self._flash = (self.performance.wrapped, time.monotonic() + 3.0)
            self.performance.wrapped = ""
        if time.monotonic() < self._flash[1]:
            lines.append(self._flash[0])
        if self.notice:
            lines.append(self.notice)
        if self.stretch is not None:
            lines.append(self.stretch_line())
        return tuple(lines), minimap

    # -- takes -----------------------------------------------------------------------------------------------

    def save_take(self, folder: Path) -> None:
        """Put what a re-render of a take in ``folder`` needs beside it (the atlas, when there is one)."""
        if self.atlas is not None:
            self.atlas.save(Path(folder) / ATLAS_FOLDER)

    def apply(self, record: dict[str, Any], folder: Path) -> bool:
        """Replay a lab record of the take in ``folder``; False for any other record."""
        if "pacing" in record:
            self.performance.tables[record["pacing"]] = table_from_json(record)
            return True
        if "atlas" in record:
            shape = tuple(self.decoding.anchors.shape[1:])
            atlas = Atlas.load(Path(folder) / record["atlas"], latent_shape=shape)
            self.atlas = atlas
            self.decoding.atlas = atlas
            self.performance.atlas_ready = True
            return True
        return False
