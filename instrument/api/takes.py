"""A recorded take as an object for analysis: its frames, their coordinates and latents, its control events.

``open_take(folder)`` reads a folder written by ``play --record`` through ``replay.read_take`` (the reader
``latent-instrument render`` uses: a damaged take raises the same ``TakeError``, naming the file and line).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open

from instrument.config import Config
from instrument.decoders.families import get_family
from instrument.events import ControlEvent
from instrument.lab.atlas import Atlas, AtlasError
from instrument.lab.live import ATLAS_FOLDER, LAB_RECORDS, ROUTES_FOLDER, load_routes
from instrument.latent.fast import FastLatents
from instrument.performance import Coords
from instrument.recorder import ANCHORS, event_from_json
from instrument.render_job.job import RenderResult
from instrument.replay import TakeError, read_take, rerender, take_config

NOT_EVENTS = ("mapping", *LAB_RECORDS)  # control-stream records that are not control events


@dataclasses.dataclass
class Take:
    """One take. ``sidecar``: recording.json (settings, model, mapping, anchors, clock, status);
    ``rows``: frames.jsonl, one dict per rendered frame (``n``, ``t``, ``file`` or None when the disk
    dropped it, ``coords``); ``log``: events.jsonl (control events, mapping reloads, lab measurements: pacing
    tables, the atlas and the geodesic routes installed).

    ``len(take)`` counts the rows; ``take.image(i)`` is row i's picture.
    """

    folder: Path
    sidecar: dict[str, Any]
    rows: list[dict[str, Any]]
    log: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        model = self.sidecar.get("model", {}).get("fast", "?")
        return f"Take({self.folder}: {len(self)} frames, {len(self.events)} control events, {model})"

    @property
    def settings(self) -> Config:
        """The settings it was played with (fields this version does not know are left out)."""
        return take_config(self.sidecar)

    @property
    def names(self) -> list[str]:
        """The anchors' names, in the order of ``anchors``."""
        return list(self.sidecar.get("anchors", []))

    @property
    def coords(self) -> list[Coords]:
        """Each row's latent coordinates (path, position s, glide, noise, locks...): what the frame cache and
        ``latent_at`` read."""
        return [Coords.from_json(row["coords"]) for row in self.rows]

    @property
    def times(self) -> np.ndarray:
        """Each row's time in seconds from the take's first frame: float64 [T]."""
        t = np.asarray([float(row["t"]) for row in self.rows], dtype=np.float64)
        return t - t[0] if len(t) else t

    @property
    def frame_numbers(self) -> list[int]:
        """Each row's frame number on the session's frame grid (gaps: frames the loop skipped)."""
        return [int(row["n"]) for row in self.rows]

    @property
    def events(self) -> list[tuple[int, ControlEvent]]:
        """(frame number, event) of every control event the take applied (MIDI, keys, pointer, OSC), in
        order; ``event.time`` is when it arrived (``time.monotonic()``), ``event.message`` a ``mido.Message``,
        ``KeyInput``, ``PointerInput`` or ``OscInput``."""
        return [(int(r["n"]), event_from_json(r)) for r in self.log if not any(k in r for k in NOT_EVENTS)]

    def image(self, i: int) -> Image.Image | None:
        """Row ``i``'s picture (None when the disk dropped it)."""
        name = self.rows[i].get("file")
        if not name:
            return None
        with Image.open(self.folder / name) as picture:
            return picture.convert("RGB")

    @functools.cached_property
    def anchors(self) -> torch.Tensor:
        """The anchor latents it was played on: float32 [N, C, h, w] on the CPU."""
        try:
            with safe_open(str(self.folder / ANCHORS), framework="pt") as f:
                return f.get_tensor("anchors").float()
        except (OSError, SafetensorError) as exc:
            raise TakeError(f"{self.folder / ANCHORS}: {exc}") from None

    def latents(self, rows: slice | list[int] | None = None) -> torch.Tensor:
        """The latents of the rows (all, a slice or a list of indices): float32 [T, C, h, w] on the CPU,
        computed from the coordinates as the render thread did (``latent.fast.FastLatents``), with the
        take's atlas and geodesic routes where its frames used them."""
        chosen = self.rows if rows is None else (self.rows[rows] if isinstance(rows, slice)
                                                 else [self.rows[i] for i in rows])
        coords = [Coords.from_json(row["coords"]) for row in chosen]
        family = get_family(self.sidecar.get("model", {}).get("family") or self.settings.family)
        latents = FastLatents(self.anchors, seed=self.settings.seed, std=family.latent_std)
        try:  # (the live lab saves both beside the frames when it installs them)
            if any(c.atlas for c in coords):
                shape = tuple(self.anchors.shape[1:])
                latents.atlas = Atlas.load(self.folder / ATLAS_FOLDER, latent_shape=shape)
            if any(c.path == "geodesic" for c in coords):
                latents.routes = load_routes(self.folder / ROUTES_FOLDER, self.anchors)
        except AtlasError as exc:
            raise TakeError(f"the take's lab data: {exc}") from None
        with torch.inference_mode():
            return torch.stack([latents(c) for c in coords])

    def render(self, *, decoder: str = "fast", fps: float | None = None, size: tuple[int, int] | None = None,
               out: str | Path | None = None, progress: bool = False, sculpt_model: str | None = None,
               sculpt_steps: int | None = None, **overrides: Any) -> RenderResult:
        """Re-render it, as ``latent-instrument render`` does (``overrides``: model, full_model, device,
        dtype, offline; a take played with sculpting is sculpted again, by ``sculpt_model`` in
        ``sculpt_steps`` when given). Returns the ``RenderResult``: ``folder``, ``frames``, ``mismatches``
        (frames whose coordinates differ from the live ones), every frame's ``coords``, ``info``."""
        return rerender(self.folder, decoder=decoder, fps=fps, size=size, out=out, overrides=overrides,
                        progress=progress, sculpt_model=sculpt_model, sculpt_steps=sculpt_steps)


def open_take(folder: str | Path) -> Take:
    """Read the take in ``folder`` (``TakeError`` naming the file if it is not one or is damaged)."""
    folder = Path(folder)
    sidecar, rows, log = read_take(folder)
    return Take(folder, sidecar, rows, log)
