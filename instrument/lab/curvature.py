"""The weather map (``latent-instrument curvature``): stretch and bend over the plane through two or three
anchors, with the LERP, SLERP and geodesic routes between them and where along them the picture changes kind.

Stretch (first order: how fast the picture changes as you move on the map) and bend (second order: whether
it goes on changing the same way) are defined in ``instrument.lab.stretch``. The map decodes every point of
an n×n grid once and measures both from neighbouring grid points, along the map's two axes: the picture
change between a point's neighbours over their latent distance, and the bend of the three frames in a row.
Cost: n² decodes (and, for ``directions`` other than the map's own axes, a directional derivative per point).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from instrument.lab.draw import colormap, font, label, to_pil
from instrument.lab.geodesic import energy_and_length, solve
from instrument.lab.phases import change_points, features
from instrument.lab.stretch import UNITS, DecodeFn, bend, random_directions, rms, stretch
from instrument.latent.geometry import lerp, slerp

log = logging.getLogger(__name__)

ROUTE_SAMPLES = 33  # decodes along each drawn route (its energy, its phase boundaries)
GEODESIC_BATCH = 4  # control points decoded (or back-propagated) at a time
ROUTE_COLOURS = {"LERP": (255, 255, 255), "SLERP": (120, 210, 255), "geodesic": (120, 255, 140)}


@dataclass
class Plane:
    """A 2D plane in latent space: ``origin + u·e1 + w·e2`` with e1, e2 orthonormal (Euclidean over all
    elements). Plane coordinates are in latent Euclidean units."""

    origin: torch.Tensor  # [C,h,w]
    e1: torch.Tensor
    e2: torch.Tensor
    description: str = ""

    def point(self, uw: torch.Tensor) -> torch.Tensor:
        """Tensor[N,2] plane coordinates -> Tensor[N,C,h,w] latents."""
        uw = uw.to(self.origin)
        return self.origin + uw[:, 0, None, None, None] * self.e1 + uw[:, 1, None, None, None] * self.e2

    def coords(self, z: torch.Tensor) -> torch.Tensor:
        """Tensor[N,C,h,w] latents -> Tensor[N,2]: their orthogonal projection onto the plane."""
        d = (z.to(self.origin) - self.origin).flatten(1)
        return torch.stack([d @ self.e1.flatten(), d @ self.e2.flatten()], 1)


def anchor_plane(anchors: torch.Tensor, *, second: str = "origin", seed: int = 0) -> Plane:
    """The plane through 2 or 3 anchors (Tensor[N,C,h,w]).

    Three anchors fix the plane (centred on their centroid; e1 along anchor 1 -> 2). Two anchors fix a line
    (e1, centred on their midpoint); the second direction is ``second``:
    - "origin": towards the zero latent, made orthogonal to e1, pointing away from it. This is the plane
      span{a, b}: it holds both the LERP chord and the SLERP arc between the anchors, so both can be drawn.
      (Falls back to "random" when the anchors are in line with the origin.)
    - "random": a seeded random direction, made orthogonal to e1.
    """
    if anchors.dim() != 4 or len(anchors) not in (2, 3):
        raise ValueError(f"anchor_plane needs 2 or 3 anchors as Tensor[N,C,h,w], not {tuple(anchors.shape)}")
    a = anchors.float()
    e1 = a[1] - a[0]
    if e1.norm() < 1e-8:
        raise ValueError("the first two anchors are the same latent; no plane runs through them")
    e1 = e1 / e1.norm()
    if len(a) == 3:
        origin, d, description = a.mean(0), a[2] - a[0], "the plane through the three anchors"
    else:
        origin, d, description = (a[0] + a[1]) / 2, (a[0] + a[1]) / 2, "anchors and the latent origin"
        if second == "random":
            d = torch.randn(a[0].shape, generator=torch.Generator().manual_seed(seed))
            description = f"anchors and a random direction (seed {seed})"
        elif second != "origin":
            raise ValueError(f"second must be origin or random, not {second!r}")
    e2 = d - (d * e1).sum() * e1
    if e2.norm() < 1e-6 * d.norm().clamp_min(1e-12):
        if len(a) == 3:
            raise ValueError("the three anchors lie on one line; no single plane runs through them")
        log.info("anchors in line with the origin; using a random second direction")
        return anchor_plane(anchors, second="random", seed=seed)
    return Plane(origin, e1, e2 / e2.norm(), description)


@dataclass
class Route:
    """A route drawn on the map: its samples' plane coordinates (Tensor[T, 2]), pixel energy and length
    (``geodesic.energy_and_length`` over its T samples), and its phase boundaries (Tensor[B, 2], plane
    coordinates; ``phases``)."""

    name: str
    start: str
    end: str
    uv: torch.Tensor
    energy: float
    length: float
    boundaries: torch.Tensor


@dataclass
class WeatherMap:
    """Stretch and bend sampled on an n×n grid over a plane. ``grid[row, col]``: row 0 is the top (largest
    w), col 0 the left (smallest u); coordinates run over [-extent, extent] on both axes."""

    stretch: torch.Tensor  # [n, n] float32
    bend: torch.Tensor  # [n, n] float32 in [0, 1]
    extent: float
    plane: Plane
    anchor_uv: torch.Tensor  # [N, 2] plane coordinates of the anchors
    names: list[str]
    directions: str
    routes: list[Route] = field(default_factory=list)

    def to_pixel(self, uv: torch.Tensor, size: int) -> torch.Tensor:
        """Tensor[N,2] plane coordinates -> Tensor[N,2] (x, y) pixels on a size×size drawing of the grid,
        whose n cells are centred on the samples (so the drawing reaches half a cell past ±extent)."""
        n = self.stretch.shape[0]
        half = self.extent * n / (n - 1)
        x = (uv[:, 0] + half) / (2 * half) * size
        y = (half - uv[:, 1]) / (2 * half) * size
        return torch.stack([x, y], 1)

    def to_json(self) -> dict:
        n = self.stretch.shape[0]
        cells = self.to_pixel(self.anchor_uv, n) - 0.5  # fractional (col, row) indices into the grid

        def grid(g: torch.Tensor) -> list[list[float]]:
            return [[round(float(x), 6) for x in row] for row in g]

        return {
            "units": {"stretch": UNITS, "bend": "second difference over chords, in [0, 1]"},
            "plane": self.plane.description,
            "directions": self.directions,
            "extent": self.extent,
            "grid_size": n,
            "axes": "grid[row][col]; row 0 = top (w = +extent), col 0 = left (u = -extent)",
            "stretch_range": [float(self.stretch.min()), float(self.stretch.max())],
            "bend_range": [float(self.bend.min()), float(self.bend.max())],
            "anchors": [{"name": name, "u": float(uv[0]), "w": float(uv[1]),
                         "col": float(c[0]), "row": float(c[1])}
                        for name, uv, c in zip(self.names, self.anchor_uv, cells, strict=True)],
            "routes": [{"route": r.name, "from": r.start, "to": r.end, "energy": r.energy, "length": r.length,
                        "samples": len(r.uv), "phase_boundaries_uv": r.boundaries.tolist()}
                       for r in self.routes],
            "stretch": grid(self.stretch),
            "bend": grid(self.bend),
        }


def _axis(before: torch.Tensor, middle: torch.Tensor, after: torch.Tensor,
          distance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stretch and bend along one map axis at n points from their neighbours' frames (Tensor[n, 3, H, W]
    each) and the latent RMS distance between the neighbours (Tensor[n])."""
    return rms(after - before) / distance, bend(before, middle, after)


def _fill_edges(grid: torch.Tensor) -> torch.Tensor:
    """NaN at the grid's corners -> the value one row or column in."""
    grid = grid.clone()
    for g in (grid, grid.T):
        g[0] = torch.where(g[0].isnan(), g[1], g[0])
        g[-1] = torch.where(g[-1].isnan(), g[-2], g[-1])
    return torch.nan_to_num(grid, nan=0.0)


def _grid_measures(decode: DecodeFn, points: torch.Tensor, n: int, cell: float, batch: int,
                   tick: Callable[[int], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stretch and bend along the map's axes from n × n grid points (Tensor[n², C, h, w], row-major): each
    row decoded once, three rows kept at a time."""
    per = math.sqrt(points[0].numel())  # latent RMS of a unit Euclidean step
    rows: dict[int, torch.Tensor] = {}

    def row(i: int) -> torch.Tensor:
        if i not in rows:
            with torch.no_grad():
                rows[i] = torch.cat([decode(points[i * n + j:i * n + min(n, j + batch)]).float().cpu()
                                     for j in range(0, n, batch)])
            tick(n)
        return rows[i]

    left, right = [max(j - 1, 0) for j in range(n)], [min(j + 1, n - 1) for j in range(n)]
    reach = torch.tensor([r - lo for lo, r in zip(left, right, strict=True)], dtype=torch.float32)
    reach = reach * cell / per
    sq = torch.zeros(n, n)
    bends = torch.zeros(2, n, n)
    for i in range(n):
        up, here, down = row(max(i - 1, 0)), row(i), row(min(i + 1, n - 1))
        s_u, bends[0, i] = _axis(here[left], here, here[right], reach)
        s_w, bends[1, i] = _axis(down, here, up, reach[i].expand(n))
        sq[i] = (s_u ** 2 + s_w ** 2) / 2
        rows.pop(i - 1, None)
    # At the border a point has a neighbour on one side only: no bend there along that axis.
    bends[0, :, [0, -1]] = torch.nan
    bends[1, [0, -1], :] = torch.nan
    return sq.sqrt(), _fill_edges(torch.nanmean(bends.pow(2), 0).sqrt())


def weather_map(decode: DecodeFn, anchors: torch.Tensor, n: int = 16, span: float = 1.5, *,
                directions: str | torch.Tensor = "plane", k: int = 4, seed: int = 0, second: str = "origin",
                names: list[str] | None = None, batch: int = 4,
                progress: Callable[[int], None] | None = None) -> WeatherMap:
    """Stretch and bend over an n×n grid on the plane through 2 or 3 anchors (Tensor[N,C,h,w]; see
    ``anchor_plane``), centred on the plane's origin and reaching ``span`` times the farthest anchor's
    distance.

    Bend is always measured along the map's axes, at the grid's spacing. ``directions`` chooses the stretch:
    "plane" (RMS over the two axes, from the grid's own decodes: how fast the picture changes as you move on
    the map), "random" (RMS over k seeded random latent directions: the decoder's sensitivity in general),
    or a Tensor[C,h,w] (one direction, e.g. a path's b - a). ``progress(decodes)`` is called as work is done.
    """
    if n < 3:
        raise ValueError("a weather map needs a grid of at least 3 × 3")
    tick = progress or (lambda done: None)
    plane = anchor_plane(anchors, second=second, seed=seed)
    anchor_uv = plane.coords(anchors.float())
    extent = span * float(anchor_uv.norm(dim=1).max())
    ticks = torch.linspace(-extent, extent, n)
    uu, ww = torch.meshgrid(ticks, ticks.flip(0), indexing="xy")
    points = plane.point(torch.stack([uu.flatten(), ww.flatten()], 1)).to(anchors.device, anchors.dtype)
    grid, bends = _grid_measures(decode, points, n, 2 * extent / (n - 1), batch, tick)
    if isinstance(directions, torch.Tensor):
        dirs, label_ = directions.unsqueeze(0), "along one given direction"
    elif directions == "plane":
        dirs, label_ = None, "along the map's axes"
    elif directions == "random":
        dirs, label_ = random_directions(plane.e1, k, seed), f"random directions (RMS over {k}, seed {seed})"
    else:
        raise ValueError(f"directions must be plane, random or a tensor, not {directions!r}")
    if dirs is not None:
        squares = torch.zeros(len(points))
        for d in dirs.to(points):
            for i in range(0, len(points), batch):
                squares[i:i + batch] += stretch(decode, points[i:i + batch], d, batch=batch) ** 2
                tick(2 * len(points[i:i + batch]))
        grid = (squares / len(dirs)).sqrt().view(n, n)
    names = names or [f"anchor {i + 1}" for i in range(len(anchors))]
    return WeatherMap(grid, bends, extent, plane, anchor_uv, list(names), label_)


def chart_route(decode: DecodeFn, smap: WeatherMap, name: str, ends: tuple[str, str],
                route: Callable[[torch.Tensor], torch.Tensor], samples: int = ROUTE_SAMPLES,
                batch: int = 4) -> Route:
    """Decode a route (s Tensor[T] in [0, 1] -> latents) at ``samples`` even steps and add it to the map
    with its energy, length and phase boundaries."""
    s = torch.linspace(0, 1, samples)
    with torch.no_grad():
        latents = route(s)
        frames = torch.cat([decode(latents[i:i + batch]).float().cpu() for i in range(0, samples, batch)])
    energy, length = energy_and_length(frames)
    cuts = change_points(features(frames))
    middle = smap.plane.coords(((latents[[i - 1 for i in cuts]] + latents[cuts]) / 2).cpu()) if cuts \
        else torch.zeros(0, 2)
    charted = Route(name, *ends, smap.plane.coords(latents.cpu()), energy, length, middle)
    smap.routes.append(charted)
    return charted


def _panel(canvas: Image.Image, smap: WeatherMap, values: torch.Tensor, origin: tuple[int, int], size: int,
           *, cmap: str, levels: int, log_scale: bool, unit: str,
           thumbnails: list[Image.Image] | None) -> None:
    """One map panel at ``origin`` (x, y) of ``canvas``: values in colour with iso-lines, routes, phase
    boundaries, anchors, and a colour bar with numbers to its right."""
    left, top = origin
    lo, hi = float(values.min()), float(values.max())
    grid = values.clamp_min(1e-6).log().numpy() if log_scale else values.numpy()
    g_lo, g_hi = float(grid.min()), float(grid.max())
    norm = (grid - g_lo) / max(g_hi - g_lo, 1e-12)
    # Upsample the values (not the colours) so the colours stay on the map's curve.
    smooth = np.asarray(Image.fromarray(norm.astype(np.float32), "F").resize((size, size), Image.BICUBIC))
    rgb = colormap(smooth, cmap).astype(np.float32)
    band = np.floor(np.clip(smooth, 0, 1 - 1e-6) * levels)
    edge = np.zeros_like(band, dtype=bool)
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    edge[1:, :] |= band[1:, :] != band[:-1, :]
    # Iso-lines where the value crosses a level: darker on light colours, lighter on dark ones.
    light = rgb[edge].mean(1, keepdims=True) > 110
    rgb[edge] = np.where(light, rgb[edge] * 0.55, rgb[edge] * 0.6 + 255 * 0.25)
    canvas.paste(Image.fromarray(rgb.astype(np.uint8), "RGB"), (left, top))
    draw = ImageDraw.Draw(canvas)
    shift = torch.tensor([left, top])
    # The geodesic leaves the plane: drawn is its shadow on it, wide and underneath, so that a LERP or
    # SLERP running close to it stays visible.
    for route in sorted(smap.routes, key=lambda r: r.name != "geodesic"):
        colour = ROUTE_COLOURS.get(route.name, (255, 255, 255))
        xy = smap.to_pixel(route.uv, size) + shift
        draw.line([tuple(p) for p in xy.tolist()], fill=colour, width=5 if route.name == "geodesic" else 2)
        for x, y in (smap.to_pixel(route.boundaries, size) + shift).tolist():
            draw.rectangle([x - 3, y - 3, x + 3, y + 3], outline=(0, 0, 0), fill=colour)
    zero = torch.zeros(1, *smap.plane.origin.shape)
    zero_uv = smap.plane.coords(zero)
    if float(smap.plane.point(zero_uv).norm()) < 1e-3 * float(smap.plane.origin.norm()) + 1e-6 \
            and bool((zero_uv.abs() <= smap.extent).all()):
        # The zero latent lies on this plane (two anchors, "origin"): mark it, it decodes to a flat picture.
        x, y = (smap.to_pixel(zero_uv, size)[0] + shift).tolist()
        draw.line([x - 7, y, x + 7, y], fill=(255, 255, 255), width=2)
        draw.line([x, y - 7, x, y + 7], fill=(255, 255, 255), width=2)
        label(draw, (x + 9, y + 4), "zero latent", 12, fill=(210, 210, 210))
    thumb = size // 6
    for i, ((x, y), name) in enumerate(zip(smap.to_pixel(smap.anchor_uv, size).tolist(), smap.names,
                                           strict=True)):
        x, y = x + left, y + top
        if thumbnails and i < len(thumbnails):
            tx = int(min(max(x - thumb / 2, left + 2), left + size - thumb - 2))
            ty = int(y - thumb - 14 if y - thumb - 14 > top else y + 14)
            draw.rectangle([tx - 2, ty - 2, tx + thumb + 1, ty + thumb + 1], fill=(255, 255, 255))
            canvas.paste(thumbnails[i].convert("RGB").resize((thumb, thumb), Image.LANCZOS), (tx, ty))
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=(255, 255, 255), outline=(0, 0, 0), width=2)
        label(draw, (x + 9, y + 4), name, 14)
    bx, by, bh = left + size + 18, top + 10, size - 40
    ramp = colormap(np.linspace(1, 0, bh)[:, None].repeat(20, 1), cmap)
    canvas.paste(Image.fromarray(ramp, "RGB"), (bx, by))
    draw.rectangle([bx - 1, by - 1, bx + 20, by + bh], outline=(200, 200, 200))
    for j in range(levels + 1):
        y = by + round(j / levels * (bh - 1))
        value = math.exp(g_hi - j / levels * (g_hi - g_lo)) if log_scale else hi - j / levels * (hi - lo)
        draw.line([bx + 20, y, bx + 25, y], fill=(220, 220, 220))
        draw.text((bx + 28, y), f"{value:.3g}", font=font(12), fill=(230, 230, 230), anchor="lm")
    draw.text((bx - 4, by + bh + 8), unit, font=font(11), fill=(200, 200, 200))


def draw_weather_map(smap: WeatherMap, thumbnails: list[Image.Image] | None = None, *, size: int = 512,
                     cmap: str = "magma", levels: int = 8, title: str = "") -> Image.Image:
    """The weather map: stretch (left) and bend (right) in colour with iso-lines (stretch on a log scale: it
    is a ratio, and one hot spot would otherwise leave the rest dark), the anchors (with thumbnails when
    given), the routes as coloured lines with their phase boundaries as squares, and a legend of the routes'
    pixel energies."""
    margin, top, bar_w = 16, 64, 110
    legend = 24 + 20 * len(smap.routes)
    width = margin + 2 * (size + bar_w) + margin
    canvas = Image.new("RGB", (width, top + size + legend), (24, 24, 28))
    draw = ImageDraw.Draw(canvas)
    label(draw, (margin, 10), title or f"{smap.plane.description} · stretch {smap.directions}", 15)
    label(draw, (margin, 36), "stretch (first order: how fast the picture changes)", 13)
    label(draw, (margin + size + bar_w, 36), "bend (second order: where change turns)", 13)
    common = dict(cmap=cmap, levels=levels, thumbnails=thumbnails)
    _panel(canvas, smap, smap.stretch, (margin, top), size, log_scale=True, unit="pixel RMS per\nlatent RMS",
           **common)
    _panel(canvas, smap, smap.bend, (margin + size + bar_w, top), size, log_scale=False,
           unit="0 straight,\n1 turns back", **common)
    y = top + size + 10
    slerp_energy = {(r.start, r.end): r.energy for r in smap.routes if r.name == "SLERP"}
    for route in smap.routes:
        base = slerp_energy.get((route.start, route.end))
        versus = f" ({100 * (route.energy / base - 1):+.0f}% vs SLERP)" if base and route.name != "SLERP" \
            else ""
        colour = ROUTE_COLOURS.get(route.name, (255, 255, 255))
        draw.rectangle([margin, y + 4, margin + 14, y + 12], fill=colour)
        shadow = " (its shadow on the map)" if route.name == "geodesic" else ""
        draw.text((margin + 22, y), f"{route.name}{shadow} {route.start} to {route.end}: pixel energy "
                  f"{route.energy:.3f}{versus}, length {route.length:.3f}; phase boundaries (squares): "
                  f"{len(route.boundaries)}", font=font(13), fill=(230, 230, 230))
        y += 20
    return canvas


def configure_curvature(parser: argparse.ArgumentParser) -> None:
    from instrument.config import AnchorConfig, number

    parser.add_argument("anchors", nargs="+", metavar="ANCHOR",
                        help="2 or 3 anchors: image files, seed:N or saved latents (.safetensors)")
    parser.add_argument("-o", "--output", required=True,
                        help="the map picture (.png); .json and .npz (stretch and bend grids) beside it")
    parser.add_argument("--grid", type=number(int, 3, 512), default=16,
                        help="grid points per side (cost: grid² decodes)")
    parser.add_argument("--span", type=number(float, 0, 100, above=True), default=1.5,
                        help="map half-width in farthest-anchor distances")
    parser.add_argument("--directions", choices=["plane", "random", "path"], default="plane",
                        help="stretch along the map's own axes, k random directions (+2k decodes per point), "
                             "or anchor 1 -> 2 (+2 per point)")
    parser.add_argument("-k", type=number(int, 1, 64), default=4, help="number of random directions")
    parser.add_argument("--second", choices=["origin", "random"], default="origin",
                        help="with two anchors, the plane's second direction")
    parser.add_argument("--geodesic-steps", type=number(int, 0, 100), default=5,
                        help="optimisation steps of each geodesic drawn (cost: about 4 × points decodes "
                             "each; 0: draw LERP and SLERP only)")
    parser.add_argument("--geodesic-points", type=number(int, 2, 64), default=8,
                        help="control points of each geodesic")
    parser.add_argument("--colormap", choices=["magma", "viridis"], default="magma")
    parser.add_argument("--picture-size", type=number(int, 64, 8192), default=512,
                        help="side of each map panel in pixels")
    parser.add_argument("--thumbnails", action=argparse.BooleanOptionalAction, default=True,
                        help="draw the decoded anchors beside their marks")
    # A map costs grid² decodes and its routes a few hundred more: at 128 px, about a minute on two CPU cores.
    AnchorConfig.add_arguments(parser, size=(128, 128))


def _chart_routes(decode: DecodeFn, smap: WeatherMap, latents: torch.Tensor, names: list[str],
                  pairs: list[tuple[int, int]], points: int, steps: int, tick: Callable[[int], None]) -> None:
    """LERP, SLERP and (``steps`` > 0) the geodesic between each pair of anchors, charted on the map."""
    for i, j in pairs:
        a, b, ends = latents[i], latents[j], (names[i], names[j])
        for name, between in (("LERP", lerp), ("SLERP", slerp)):
            chart_route(decode, smap, name, ends, lambda s, a=a, b=b, f=between: f(a, b, s.to(a.device)),
                        ROUTE_SAMPLES)
        tick(2 * ROUTE_SAMPLES)
        if steps > 0:
            job = solve(decode, a, b, points=points, iterations=steps, batch=GEODESIC_BATCH)
            while True:
                try:
                    next(job)
                except StopIteration as done:
                    route = done.value
                    break
                tick(GEODESIC_BATCH)
            chart_route(decode, smap, "geodesic", ends, lambda s, r=route: r(s.to(r.points.device)),
                        ROUTE_SAMPLES)
            tick(ROUTE_SAMPLES)


def run_curvature(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from instrument.config import AnchorConfig
    from instrument.lab.models import load_anchor_latents, load_fast_decoder

    if len(args.anchors) not in (2, 3):
        print(f"curvature: give 2 or 3 anchors, not {len(args.anchors)}")
        return 2
    config = AnchorConfig.from_args(args)
    ae = load_fast_decoder(config)
    anchors = load_anchor_latents(args.anchors, ae, config)
    if anchors is None:
        return 2
    names, latents = [a.name for a in anchors], torch.stack([a.latent for a in anchors]).to(ae.device)
    direction = (latents[1] - latents[0]).float() if args.directions == "path" else args.directions
    ring = list(range(len(latents))) + ([0] if len(latents) == 3 else [])
    pairs = list(zip(ring[:-1], ring[1:], strict=True))
    # Decodes, counting a geodesic step as its gradient's and its check's (a backward pass counts as one).
    points, steps = args.geodesic_points, max(0, args.geodesic_steps)
    geodesic_cost = (2 * (points + 1) + 2 * steps * (points - 1) + ROUTE_SAMPLES) if steps else 0
    extra = {"plane": 0, "random": 2 * args.k, "path": 2}[args.directions] * args.grid ** 2
    total = args.grid ** 2 + extra + len(pairs) * (2 * ROUTE_SAMPLES + geodesic_cost)
    log.info("charting %d×%d points and the routes between %d pairs at %dx%d px with %s", args.grid,
             args.grid, len(pairs), *config.size, ae.label)
    with tqdm(total=total, unit="decode", desc="weather map") as bar:
        smap = weather_map(ae.decode, latents, args.grid, args.span, directions=direction, k=args.k,
                           seed=config.seed, second=args.second, names=names, progress=bar.update)
        if args.directions == "path":
            smap.directions = f"along {names[0]} -> {names[1]}"
        _chart_routes(ae.decode, smap, latents, names, pairs, points, steps, bar.update)
    thumbs = None
    if args.thumbnails:
        with torch.no_grad():
            thumbs = [to_pil(p) for p in ae.decode(latents)]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_weather_map(smap, thumbs, size=args.picture_size, cmap=args.colormap).save(out)
    data = smap.to_json() | {"model": ae.label, "size": list(config.size)}
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    np.savez(out.with_suffix(".npz"), stretch=smap.stretch.numpy().astype(np.float32),
             bend=smap.bend.numpy().astype(np.float32))
    print(f"stretch {data['stretch_range'][0]:.3g} .. {data['stretch_range'][1]:.3g} ({UNITS}); bend "
          f"{data['bend_range'][0]:.3g} .. {data['bend_range'][1]:.3g}")
    for r in smap.routes:
        print(f"  {r.name:>8} {r.start} -> {r.end}: pixel energy {r.energy:.4f}, length {r.length:.4f}, "
              f"phase boundaries: {len(r.boundaries)}")
    print(f"wrote {out}, {out.with_suffix('.json')}, {out.with_suffix('.npz')}")
    return 0
