"""What the lab measures live, as jobs (``instrument.lab.jobs``) the render thread runs a batch at a time.

- ``survey_job(key, ...)``: the survey (``pacing.survey``) behind a pacing table: a whole path
  (``performance.path_key``: ``SEGMENT_SAMPLES`` decodes per segment, breaks at the anchors) or a glide
  (``performance.glide_key``: ``GLIDE_SAMPLES`` decodes along the SLERP between its ends).
- ``routes_job``: the geodesic between each pair of consecutive anchors (``geodesic.solve``), with
  ``GEODESIC`` control points and steps for the device (a CPU gets few; a GPU finds them in seconds).
- ``readout_job``: stretch and bend where the picture is, along the way it moves (``probe_coords``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from instrument.lab.geodesic import Geodesic, solve
from instrument.lab.jobs import Job, labelled
from instrument.lab.pacing import Survey, survey
from instrument.lab.stretch import DecodeFn, bend, rms
from instrument.latent.geometry import path_point, route_point, slerp
from instrument.performance import Coords

SEGMENT_SAMPLES = 16  # survey decodes per path segment (anchor to anchor)
GLIDE_SAMPLES = 12  # survey decodes along a glide
GEODESIC = {"cpu": (8, 6), "gpu": (24, 24)}  # (control points, steps) of each route
PROBE_STEP = 1 / 16  # stretch and bend: the step between the three frames, in segments, glides or maps


def survey_job(key: str, decode: DecodeFn, anchors: torch.Tensor, routes: torch.Tensor | None,
               batch: int) -> Job[Survey]:
    """The survey of the path or glide named ``key`` ("path KIND" or "glide KIND START END") through
    ``anchors`` [N, C, h, w] (and, for the geodesic kind, its ``routes``)."""
    what, kind, *ends = key.split(" ")
    if kind == "geodesic":
        def point(s: torch.Tensor) -> torch.Tensor:
            return route_point(routes, s.to(routes.device))
    else:
        def point(s: torch.Tensor) -> torch.Tensor:
            return path_point(anchors, s.to(anchors.device), kind)
    if what == "path":
        segments = len(anchors) if kind == "loop" else len(anchors) - 1
        breaks = [SEGMENT_SAMPLES * i for i in range(1, segments)]
        return survey(decode, point, segments * SEGMENT_SAMPLES + 1, breaks=breaks, batch=batch)
    start, end = point(torch.tensor([float(e) for e in ends]))
    return survey(decode, lambda s: slerp(start, end, s.to(start.device)), GLIDE_SAMPLES, batch=batch)


def routes_job(decode: DecodeFn, anchors: torch.Tensor, batch: int) -> Job[list[Geodesic]]:
    """The geodesic from each anchor to the next (``anchors`` [N, C, h, w])."""
    points, steps = GEODESIC["cpu" if anchors.device.type == "cpu" else "gpu"]
    found = []
    for i in range(len(anchors) - 1):
        job = solve(decode, anchors[i], anchors[i + 1], points=points, iterations=steps, batch=batch)
        found.append((yield from labelled(job, f"route {i + 1}/{len(anchors) - 1}, ")))
    return found


def probe_coords(coords: Coords, n_anchors: int) -> tuple[Coords, Coords, Coords]:
    """Three coordinates ``PROBE_STEP`` apart along the way ``coords`` moves (the atlas cursor's x, the glide,
    or the path), centred on it, shifted inside the range at its ends."""
    if coords.atlas:
        name, value, step, wraps = "atlas_x", coords.atlas_x, PROBE_STEP, False
    elif coords.glide < 1.0:
        name, value, step, wraps = "glide", coords.glide, PROBE_STEP, False
    else:
        loop = coords.path == "loop"
        segments = max(1, n_anchors if loop else n_anchors - 1)
        name, value, step, wraps = "s", coords.s, PROBE_STEP / segments, loop
    middle = value if wraps else min(max(value, step), 1.0 - step)
    spots = [middle + d * step for d in (-1, 0, 1)]
    return tuple(dataclasses.replace(coords, **{name: x % 1.0 if wraps else x}) for x in spots)


def readout_job(decode: DecodeFn, latent: Callable[[Coords], torch.Tensor], coords: Coords, n_anchors: int,
                batch: int) -> Job[tuple[float, float] | None]:
    """(stretch, bend) at ``coords`` from the frames of ``probe_coords`` (``latent(coords)`` makes their
    latents as the frames' are made), decoded ``batch`` at a time; None where nothing moves."""
    latents = torch.stack([latent(c) for c in probe_coords(coords, n_anchors)])
    frames = []
    for i in range(0, 3, batch):
        with torch.no_grad():
            frames.append(decode(latents[i:i + batch]).float())
        yield f"{min(3, i + batch)}/3"
    x = torch.cat(frames)
    latent_step = float(rms((latents[2] - latents[0])[None]))
    if latent_step == 0:
        return None
    return float(rms((x[2] - x[0])[None])) / latent_step, float(bend(x[:1], x[1:2], x[2:])[0])
