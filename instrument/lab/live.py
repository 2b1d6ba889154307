"""The lab in live play: atlas mode, perceptual pacing, geodesics, the stretch and bend readout and phase
boundaries (render thread only).

``LiveLab`` sits beside ``Performance`` in the render thread and gives it what its lab controls need. The
measuring is done by *jobs* (``instrument.lab.jobs``) with the fast decoder on whole latents, a batch of
decodes per frame (a CPU does one batch a frame; a GPU as many as fit in ``LAB_SECONDS``), so the picture
keeps playing while they run:

- **atlas**: ``--atlas DIR`` is loaded at the start (a bad folder is reported and atlas mode stays off);
  without it, the first time the ``atlas`` toggle is on, one is charted from the session's anchors (3+).
- **pacing**: when ``Performance.step`` lists pacing tables it lacks (``wanted``), the lab surveys the path
  or the glide (``instrument.lab.measure``), installs the table and steps that frame again. Meanwhile
  travel plays unpaced and a glide waits at its start (the HUD says so).
- **geodesic**: likewise for the routes of the ``geodesic`` path (``instrument.lab.geodesic``; SLERP plays
  meanwhile); then the HUD reports their pixel energy against SLERP's.
- **phases**: a survey of the current path also finds its phase boundaries (``instrument.lab.phases``): the
  HUD draws the path as a bar with them and the picture's place on it. While pacing does not need the
  survey, it is made when the controls rest.
- **stretch and bend**: at the current point, along the direction the picture moves (the path, the glide,
  the atlas cursor's x), from three frames a short step apart, measured when the controls rest (now and
  then on a GPU even while moving), shown as numbers, a bar and a word (``instrument.lab.stretch``).

Takes re-render exactly because everything measured live that changes a frame is logged as a control-stream
record before the first frame that may use it: ``{"n", "t", "pacing": key, "s": [...], "length": [...],
"total", "phases": [...]}`` for a table (replay installs the logged numbers, never measures), ``{"n", "t",
"atlas": "atlas"}`` for the atlas and ``{"n", "t", "geodesic": "geodesic"}`` for the routes, both saved into
the take's folder of that name. ``LiveLab.apply`` reads them back (``instrument.replay``).
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
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from instrument.lab.atlas import Atlas, AtlasError, draw_minimap
from instrument.lab.geodesic import Geodesic
from instrument.lab.jobs import Job, Jobs
from instrument.lab.measure import readout_job, routes_job, survey_job
from instrument.lab.pacing import PacingTable
from instrument.performance import ROUTES_KEY, Coords, Performance, path_key

log = logging.getLogger(__name__)

ATLAS_FOLDER = "atlas"  # inside a take
ROUTES_FOLDER = "geodesic"
LAB_RECORDS = ("pacing", "atlas", "geodesic")  # control-stream records that LiveLab.apply replays
LAB_SECONDS = 0.02  # lab work per frame on a GPU (a CPU does one batch of decodes a frame)
PROBE_EVERY = 0.5  # seconds between readouts while moving on a GPU
SETTLE_SECONDS = 1.0  # the controls rest this long before the lab measures between frames
PROBE_KEY = "probe"
MINIMAP = 160  # pixels
PHASE_BAR = 24  # characters


def table_to_json(table: PacingTable) -> dict[str, Any]:
    return {"s": table.s.tolist(), "length": table.length.tolist(), "total": table.total}


def table_from_json(record: dict[str, Any]) -> PacingTable:
    return PacingTable(torch.tensor(record["s"], dtype=torch.float32),
                       torch.tensor(record["length"], dtype=torch.float32), float(record["total"]))


def phase_line(s: float, boundaries: list[float]) -> str:
    """"phase 2/3 [-----|--o-----|------]": the path as a bar with its phase boundaries and the picture's
    place on it."""
    bar = ["-"] * PHASE_BAR
    for b in boundaries:
        bar[min(PHASE_BAR - 1, round(b * (PHASE_BAR - 1)))] = "|"
    bar[min(PHASE_BAR - 1, round(s * (PHASE_BAR - 1)))] = "o"
    phase = 1 + sum(b < s for b in boundaries)
    return f"phase {phase}/{len(boundaries) + 1} [{''.join(bar)}]"


def pacing_line(tables: dict[str, Any]) -> str:
    """The HUD's pacing line: how many paths and glides are measured so far."""
    paths = sum(key.startswith("path ") for key in tables)
    glides = sum(key.startswith("glide ") for key in tables)
    return (f"pacing on: {paths} path{'s' * (paths != 1)} and {glides} glide{'s' * (glides != 1)} measured"
            if paths or glides else "pacing on: nothing measured yet")


class LiveLab:
    """The lab's state in one session (live) or one re-render (``decode`` None: never measures).

    ``performance`` is the session's ``Performance`` (its ``tables``, ``atlas_ready`` and ``routes_ready``
    are filled here); ``decoding`` the ``loop.decoding.Decoding`` (its ``atlas`` and ``latents.routes`` are
    set here). ``log_record(record)`` puts a record in the control stream (the take); ``error(text)``
    reports a problem on the HUD; ``settle``: seconds of rest before the lab measures between frames.
    """

    def __init__(self, performance: Performance, decoding: Any, names: list[str], *,
                 decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 log_record: Callable[[dict[str, Any]], None] = lambda record: None,
                 error: Callable[[str], None] = log.error, seed: int = 0,
                 settle: float = SETTLE_SECONDS) -> None:
        self.performance = performance
        self.decoding = decoding
        self.names = list(names)
        self.decode = decode
        self.log_record = log_record
        self.error = error
        self.seed = seed
        self.settle = settle  # seconds the controls rest before the lab measures between frames
        self.gpu = decoding.anchors.device.type != "cpu"
        self.batch = 8 if self.gpu else 1
        self.atlas: Atlas | None = None
        self.atlas_failed = ""  # why atlas mode is unavailable
        self.take_folder: Path | None = None  # the take being recorded (atlas and routes are saved into it)
        self.notice = ""
        self._chart_next = False
        self.routes: torch.Tensor | None = None  # [N - 1, K, C, h, w] of the geodesic path
        self.route_energy: tuple[float, float] | None = None  # (geodesic, SLERP) pixel energy, all segments
        self.boundaries: dict[str, list[float]] = {}  # phase boundaries by path key
        self.readout: tuple[float, float] | None = None  # (stretch, bend) at the last probed point
        self._stretches: list[float] = []
        self.jobs = Jobs(self._start, self.error, one_batch=not self.gpu)
        self._probe_coords: Coords | None = None
        self._probe_time = 0.0
        self._rest_since: float | None = None  # when the controls came to rest (time.monotonic)
        self._finished: list[tuple[str, Any]] = []  # measured between frames, installed by the next step
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
        for key, result in self._finished:  # measured between frames: installed from this frame on
            self._install(key, result, n, t)
        self._finished = []
        before = performance.copy()
        coords = performance.step(controls, t, pick)
        wanted = performance.wanted
        for key in [k for k in self.jobs.running if k.startswith("glide") and k not in wanted]:
            self.jobs.drop(key)  # a glide that is over, or no longer paced
        finished = self._work(wanted) if self.decode is not None and wanted else []
        if not finished:
            return coords
        for key, result in finished:
            self._install(key, result, n, t)
        for f in dataclasses.fields(Performance):  # step this frame again, with what was installed
            if f.name not in ("tables", "routes_ready"):
                setattr(performance, f.name, getattr(before, f.name))
        return performance.step(controls, t, pick)

    def after_frame(self, coords: Coords, resting: bool) -> None:
        """Between frames, once the controls have rested ``SETTLE_SECONDS`` (on a GPU, also while moving):
        the stretch and bend readout at ``coords``, then a survey of the current path for its phase
        boundaries. (On a CPU each batch holds the render thread for a decode: a short pause between two
        moves is left alone.)"""
        if self.decode is None:
            return
        now = time.monotonic()
        self._rest_since = (self._rest_since or now) if resting else None
        resting = resting and now - self._rest_since >= self.settle
        if coords != self._probe_coords and (resting or (self.gpu and now - self._probe_time >= PROBE_EVERY)):
            self.jobs.drop(PROBE_KEY)
            self._probe_coords, self._probe_time = coords, now
            if coords.atlas or self.performance.n_anchors > 1:
                self.jobs.running[PROBE_KEY] = readout_job(self.decode, self.decoding.latent, coords,
                                                    self.performance.n_anchors, 3 if self.gpu else 1)
        keys = [PROBE_KEY] if PROBE_KEY in self.jobs.running and coords == self._probe_coords else []
        key = path_key(coords.path)
        if not coords.atlas and self.performance.n_anchors > 1 and key not in self.performance.tables:
            keys.append(key)
        if keys and (resting or self.gpu):
            for key, result in self._work(keys):
                if key == PROBE_KEY:
                    self._install(key, result, 0, 0.0)
                else:  # changes what frames show: from the next frame's step on, logged with it
                    self._finished.append((key, result))

    def _work(self, keys: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
        """Advance the jobs of ``keys`` within this frame's budget (a batch on a CPU); the (key, result) of
        those that finished (a failed path or glide: None, which installs an even table)."""
        waiting = [k for k in keys if not any(k == done for done, _ in self._finished)]
        return [(key, result) for key, result in self.jobs.work(waiting, time.perf_counter() + LAB_SECONDS)
                if result is not None or key not in (PROBE_KEY, ROUTES_KEY)]

    def _start(self, key: str) -> Job:
        """The job that measures ``key``: the routes, a path, a glide or the readout (``measure``)."""
        if key == ROUTES_KEY:  # (backward passes hold many activations: fewer at a time)
            return routes_job(self.decode, self.decoding.anchors, 2 if self.gpu else 1)
        return survey_job(key, self.decode, self.decoding.anchors, self.routes, self.batch)

    def _install(self, key: str, result: Any, n: int, t: float) -> None:
        if key == PROBE_KEY:
            self.readout = result
            if result is not None:
                self._stretches.append(result[0])
        elif key == ROUTES_KEY:
            self._install_routes(result, n, t)
        else:
            even = PacingTable(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), 0.0)
            table = result.table() if result is not None else even
            self.performance.tables[key] = table
            record = {"n": n, "t": t, "pacing": key, **table_to_json(table)}
            if key.startswith("path") and result is not None:
                self.boundaries[key] = record["phases"] = result.boundaries()
            self.log_record(record)

    def _install_routes(self, found: list[Geodesic], n: int, t: float) -> None:
        routes = torch.stack([g.points for g in found]).to(self.decoding.anchors)
        self._use_routes(routes)
        self.route_energy = (sum(g.energy for g in found), sum(g.slerp_energy for g in found))
        if self.take_folder is not None:
            self.save_take(self.take_folder)
        self.log_record({"n": n, "t": t, "geodesic": ROUTES_FOLDER})

    def _use_routes(self, routes: torch.Tensor) -> None:
        self.routes = routes
        self.decoding.latents.routes = routes
        self.performance.routes_ready = True

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

    # -- the HUD ---------------------------------------------------------------------------------------------

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
                lines.append(pacing_line(self.performance.tables))
            size = self.performance.bank_size
            if size > 0 and int(controls.get("bank", 0)):
                first = int(controls["bank"]) * size + 1  # (counted from 1, as on the HUD's anchor list)
                lines.append(f"bank {int(controls['bank']) + 1}: anchors {first}-{first + size - 1}")
        if self.performance.wrapped:
            self._flash = (self.performance.wrapped, time.monotonic() + 3.0)
            self.performance.wrapped = ""
        if time.monotonic() < self._flash[1]:
            lines.append(self._flash[0])
        if self.notice:
            lines.append(self.notice)
        lines += [job_line(key, note) for key, note in self.jobs.progress.items() if key != PROBE_KEY]
        if self.readout is not None:
            lines.append(readout_line(self.readout, self._stretches))
        if coords is not None and not coords.atlas:
            if path_key(coords.path) in self.boundaries:
                lines.append(phase_line(coords.s, self.boundaries[path_key(coords.path)]))
            if coords.path == "geodesic" and self.route_energy is not None:
                ours, theirs = self.route_energy
                lines.append(f"geodesic: pixel energy {ours:.3f}, {100 * (ours / theirs - 1):+.0f}% vs SLERP")
        return tuple(lines), minimap

    # -- takes -----------------------------------------------------------------------------------------------

    def save_take(self, folder: Path) -> None:
        """Put what a re-render of a take in ``folder`` needs beside it (the atlas and the routes)."""
        if self.atlas is not None:
            self.atlas.save(Path(folder) / ATLAS_FOLDER)
        if self.routes is not None:
            save_routes(self.routes, Path(folder) / ROUTES_FOLDER)

    def apply(self, record: dict[str, Any], folder: Path) -> bool:
        """Replay a lab record of the take in ``folder``; False for any other record. AtlasError if the
        take's atlas or routes cannot be read."""
        if "pacing" in record:
            self.performance.tables[record["pacing"]] = table_from_json(record)
            if "phases" in record:
                self.boundaries[record["pacing"]] = list(record["phases"])
            return True
        if "atlas" in record:
            shape = tuple(self.decoding.anchors.shape[1:])
            atlas = Atlas.load(Path(folder) / record["atlas"], latent_shape=shape)
            self.atlas = atlas
            self.decoding.atlas = atlas
            self.performance.atlas_ready = True
            return True
        if "geodesic" in record:
            self._use_routes(load_routes(Path(folder) / record["geodesic"], self.decoding.anchors))
            return True
        return False


def readout_line(readout: tuple[float, float], history: list[float]) -> str:
    """"stretch 0.31 [###-----] smooth · bend 0.04": the stretch along the picture's motion, a bar (log scale,
    x10 per 8 marks) and a word that compare it with the median of ``history`` (this session's readouts),
    then the bend there (0 straight on, 1 turning back)."""
    value, turn = readout
    ratio = value / max(statistics.median(history or [value]), 1e-12)
    word = "turbulent" if ratio > 1.25 else "smooth" if ratio < 0.8 else "even"
    marks = int(min(8, max(0, round(4 + 8 * np.log10(max(ratio, 1e-6))))))
    return f"stretch {value:.2f} [{'#' * marks}{'-' * (8 - marks)}] {word} · bend {turn:.2f}"


def job_line(key: str, note: str) -> str:
    """The HUD line of lab work in progress."""
    if key == ROUTES_KEY:
        return f"geodesic: finding the routes (SLERP meanwhile) {note}…"
    what, kind, *_ = key.split(" ")
    doing = "pacing: measuring" if what == "glide" else "surveying"
    return f"{doing} the {kind} {what} {note}…"


def save_routes(routes: torch.Tensor, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"routes": routes.detach().float().cpu().contiguous()}, str(folder / "routes.safetensors"))


def load_routes(folder: Path, anchors: torch.Tensor) -> torch.Tensor:
    """The routes saved in ``folder`` for ``anchors`` [N, C, h, w], on their device; AtlasError naming the
    file if it is missing, damaged or made for other anchors."""
    path = folder / "routes.safetensors"
    try:
        routes = load_file(str(path))["routes"]
    except (OSError, KeyError, RuntimeError, SafetensorError) as exc:
        raise AtlasError(f"{path}: not readable routes ({exc})") from exc
    if routes.ndim != 5 or (routes.shape[0], *routes.shape[2:]) != (len(anchors) - 1, *anchors.shape[1:]):
        raise AtlasError(f"{path}: routes of shape {tuple(routes.shape)} do not join these anchors")
    return routes.to(anchors)
