"""Curvature: where the decoder stretches latent space, measured with Jacobian-vector products.

The decoder D maps a latent z to a picture. Its Jacobian J at z says how far the picture moves when z moves:
a latent step v changes the picture by about J v. The *stretch* along v is the ratio

    stretch(z, v) = RMS(J v) / RMS(v)

with RMS taken over every pixel value (3 channels, pixels in [0, 1]) and over every latent element. Unit:
pixel RMS per latent RMS -- a latent step whose elements change by δ (RMS) changes each pixel value by about
stretch·δ (RMS). Being a ratio of means, it does not depend on the resolution. It is the square root of the
decoder's pullback metric ``vᵀ JᵀJ v`` up to those normalisations.

J v comes from forward-mode autodiff (``torch.func.jvp``: one pass, about 1.5-2x a decode); where a decoder
does not support it (compiled graphs, inference mode, custom kernels) a central finite difference takes over
(2 decodes). ``stretch_map`` charts stretch over the plane through two or three anchors: the "weather map"
that tells smooth regions from turbulent ones.
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
from instrument.latent.geometry import lerp, slerp

log = logging.getLogger(__name__)

DecodeFn = Callable[[torch.Tensor], torch.Tensor]
UNITS = "pixel RMS per latent RMS (pixels in [0, 1])"

_warned_fallback = False


def rms(x: torch.Tensor) -> torch.Tensor:
    """Tensor[B, ...] -> Tensor[B] float32: root mean square over everything but the batch."""
    return x.detach().float().flatten(1).pow(2).mean(1).sqrt()


def directional_derivative(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor, *, method: str = "auto",
                           eps: float = 1e-2) -> torch.Tensor:
    """J v: how the picture moves per unit of latent step v.

    z, v: Tensor[B,C,h,w] (same shape). Returns Tensor[B,3,H,W] float32 (pixels per latent unit).
    ``method``: "jvp" (forward-mode AD, raises where unsupported), "fd" (central difference with a step of
    RMS ``eps`` latent units), "auto" (jvp, falling back to fd once it fails).
    """
    global _warned_fallback
    if method not in ("auto", "jvp", "fd"):
        raise ValueError(f"method must be auto, jvp or fd, not {method!r}")
    if method != "fd":
        try:
            _, jv = torch.func.jvp(decode, (z,), (v.to(z.dtype),))
            # A decoder that cuts the tangent (detach, a numpy round trip, a CUDA graph) gives exact zeros.
            if method == "jvp" or bool(jv.any()):
                return jv.float()
            reason = "it gave exactly zero (the decoder detaches its input?)"
        except Exception as error:  # forward AD is missing in some decoders; a difference still works
            if method == "jvp":
                raise
            reason = str(error)
        if not _warned_fallback:
            log.warning("jvp unusable (%s); using finite differences for curvature", reason)
            _warned_fallback = True
    with torch.no_grad():
        scale = (eps / rms(v).clamp_min(1e-12)).to(z.device).view(-1, *[1] * (z.dim() - 1))
        step = (v * scale).to(z.dtype)
        return (decode(z + step).float() - decode(z - step).float()) / (2 * scale.float())


def stretch(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor, *, method: str = "auto", eps: float = 1e-2,
            batch: int = 16) -> torch.Tensor:
    """Stretch RMS(J v) / RMS(v) at latents z along directions v (see the module docstring for the unit).

    z: Tensor[B,C,h,w] or [C,h,w]; v: the same or broadcastable with it (one z along B directions, B points
    along one direction). Returns Tensor[B] float32 on the CPU.
    Cost: B jvps (about 1.5-2 decodes each), ``batch`` at a time.
    """
    z = z.unsqueeze(0) if z.dim() == 3 else z
    v = v.unsqueeze(0) if v.dim() == 3 else v
    # Contiguous copies: decoders write in place, which expanded views do not allow under jvp.
    z, v = (t.contiguous() for t in torch.broadcast_tensors(z, v.to(z.device)))
    out = []
    for i in range(0, len(z), batch):
        zb, vb = z[i:i + batch], v[i:i + batch]
        jv = directional_derivative(decode, zb, vb, method=method, eps=eps)
        out.append((rms(jv) / rms(vb).clamp_min(1e-12)).cpu())
    return torch.cat(out)


def random_directions(like: torch.Tensor, k: int, seed: int = 0, *, varied: bool = False) -> torch.Tensor:
    """k seeded random directions shaped like ``like`` (Tensor[C,h,w]) -> Tensor[k,C,h,w] with unit RMS.

    ``varied``: scale channels (log-normal) and regions (a smooth log-normal field) differently, so that the
    directions probe the decoder's anisotropy instead of averaging it away.
    """
    g = torch.Generator().manual_seed(seed)
    c, h, w = like.shape
    v = torch.randn(k, c, h, w, generator=g)
    if varied:
        v = v * torch.exp(torch.randn(k, c, 1, 1, generator=g))
        field_ = torch.nn.functional.interpolate(torch.randn(k, 1, 2, 2, generator=g), size=(h, w),
                                                 mode="bilinear", align_corners=False)
        v = v * torch.exp(field_)
    return (v / rms(v).view(-1, 1, 1, 1)).to(like.device, like.dtype)


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
class StretchMap:
    """Stretch sampled on an n×n grid over a plane. ``grid[row, col]``: row 0 is the top (largest w),
    col 0 the left (smallest u); coordinates run over [-extent, extent] on both axes."""

    grid: torch.Tensor  # [n, n] float32
    extent: float
    plane: Plane
    anchor_uv: torch.Tensor  # [N, 2] plane coordinates of the anchors
    names: list[str]
    directions: str
    paths: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (label, [T, 2] plane coordinates)

    def to_pixel(self, uv: torch.Tensor, size: int) -> torch.Tensor:
        """Tensor[N,2] plane coordinates -> Tensor[N,2] (x, y) pixels on a size×size drawing of the grid,
        whose n cells are centred on the samples (so the drawing reaches half a cell past ±extent)."""
        n = self.grid.shape[0]
        half = self.extent * n / (n - 1)
        x = (uv[:, 0] + half) / (2 * half) * size
        y = (half - uv[:, 1]) / (2 * half) * size
        return torch.stack([x, y], 1)

    def to_json(self) -> dict:
        n = self.grid.shape[0]
        cells = self.to_pixel(self.anchor_uv, n) - 0.5  # fractional (col, row) indices into the grid
        return {
            "units": UNITS,
            "plane": self.plane.description,
            "directions": self.directions,
            "extent": self.extent,
            "grid_size": n,
            "axes": "grid[row][col]; row 0 = top (w = +extent), col 0 = left (u = -extent)",
            "min": float(self.grid.min()), "max": float(self.grid.max()), "mean": float(self.grid.mean()),
            "anchors": [{"name": name, "u": float(uv[0]), "w": float(uv[1]),
                         "col": float(c[0]), "row": float(c[1])}
                        for name, uv, c in zip(self.names, self.anchor_uv, cells, strict=True)],
            "grid": [[round(float(x), 6) for x in row] for row in self.grid],
        }


def stretch_map(decode: DecodeFn, anchors: torch.Tensor, n: int = 24, span: float = 1.5, *,
                directions: str | torch.Tensor = "plane", k: int = 4, seed: int = 0, second: str = "origin",
                names: list[str] | None = None, method: str = "auto", batch: int = 16,
                progress: Callable[[int, int], None] | None = None) -> StretchMap:
    """Stretch over an n×n grid on the plane through 2 or 3 anchors (Tensor[N,C,h,w]; see ``anchor_plane``).

    The grid is centred on the plane's origin and reaches ``span`` times the farthest anchor's distance.
    ``directions``: "plane" (RMS of the stretch along e1 and e2: how fast the picture changes as you move on
    the map), "random" (RMS over k seeded random latent directions: the decoder's sensitivity in general), or
    a Tensor[C,h,w] (one direction, e.g. a path's b - a). Cost: n² × (2, k or 1) jvps.
    """
    plane = anchor_plane(anchors, second=second, seed=seed)
    anchor_uv = plane.coords(anchors.float())
    extent = span * float(anchor_uv.norm(dim=1).max())
    ticks = torch.linspace(-extent, extent, n)
    uu, ww = torch.meshgrid(ticks, ticks.flip(0), indexing="xy")
    points = plane.point(torch.stack([uu.flatten(), ww.flatten()], 1)).to(anchors.device, anchors.dtype)
    if isinstance(directions, torch.Tensor):
        dirs, label_ = directions.unsqueeze(0), "one given direction"
    elif directions == "plane":
        dirs, label_ = torch.stack([plane.e1, plane.e2]), "in-plane (RMS over e1, e2)"
    elif directions == "random":
        dirs, label_ = random_directions(plane.e1, k, seed), f"random (RMS over {k}, seed {seed})"
    else:
        raise ValueError(f"directions must be plane, random or a tensor, not {directions!r}")
    total = math.ceil(len(points) / batch) * len(dirs)
    squares = torch.zeros(len(points))
    done = 0
    for d in dirs.to(points):
        for i in range(0, len(points), batch):
            squares[i:i + batch] += stretch(decode, points[i:i + batch], d, method=method, batch=batch) ** 2
            done += 1
            if progress:
                progress(done, total)
    grid = (squares / len(dirs)).sqrt().view(n, n)
    names = names or [f"anchor {i + 1}" for i in range(len(anchors))]
    return StretchMap(grid, extent, plane, anchor_uv, list(names), label_)


def path_profile(decode: DecodeFn, latents: torch.Tensor, *, batch: int = 16) -> torch.Tensor:
    """Measured pixel-space speed along a path: Tensor[T,C,h,w] -> Tensor[T-1] float32, the RMS pixel change
    between consecutive decodes (pixels in [0, 1]; per step: per frame when each step is a frame)."""
    with torch.no_grad():
        frames = torch.cat([decode(latents[i:i + batch]).float().cpu()
                            for i in range(0, len(latents), batch)])
    return rms(frames[1:] - frames[:-1])


def predicted_profile(decode: DecodeFn, latents: torch.Tensor, *, method: str = "auto",
                      batch: int = 16) -> torch.Tensor:
    """Predicted pixel-space speed along a path, from the Jacobian: RMS(J Δz) at each step's midpoint.
    Tensor[T,C,h,w] -> Tensor[T-1], in the same unit as ``path_profile``."""
    steps = latents[1:] - latents[:-1]
    mids = (latents[1:] + latents[:-1]) / 2
    return stretch(decode, mids, steps, method=method, batch=batch) * rms(steps).cpu()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two Tensor[N] (ranks, then Pearson; ties broken by order)."""
    def rank(x: torch.Tensor) -> torch.Tensor:
        r = torch.empty(len(x), dtype=torch.float64)
        r[x.argsort()] = torch.arange(len(x), dtype=torch.float64)
        return r - r.mean()
    ra, rb = rank(a.flatten()), rank(b.flatten())
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def draw_stretch_map(smap: StretchMap, thumbnails: list[Image.Image] | None = None, *, size: int = 512,
                     cmap: str = "magma", levels: int = 8, log_scale: bool = True,
                     title: str = "") -> Image.Image:
    """The weather map: stretch in colour with iso-lines, anchors marked and labelled (with thumbnails when
    given), paths as white lines, a colour bar with numbers on the right. ``log_scale``: colours follow the
    logarithm of stretch (stretch is a ratio, and one hot spot would otherwise leave the rest dark)."""
    margin, top, bar_w = 16, 44, 110
    canvas = Image.new("RGB", (margin + size + bar_w, top + size + margin), (24, 24, 28))
    lo, hi = float(smap.grid.min()), float(smap.grid.max())
    grid = smap.grid.clamp_min(1e-12).log().numpy() if log_scale else smap.grid.numpy()
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
    canvas.paste(Image.fromarray(rgb.astype(np.uint8), "RGB"), (margin, top))
    draw = ImageDraw.Draw(canvas)
    label(draw, (margin, 12), title or f"stretch · {smap.plane.description} · {smap.directions}", 15)
    for name, path in smap.paths:
        xy = smap.to_pixel(path, size) + torch.tensor([margin, top])
        draw.line([tuple(p) for p in xy.tolist()], fill=(255, 255, 255), width=2)
        if name:
            x, y = xy[len(xy) // 2].tolist()
            label(draw, (x, y - 4), name, 12, fill=(235, 235, 235), anchor="mb")
    zero = torch.zeros(1, *smap.plane.origin.shape)
    zero_uv = smap.plane.coords(zero)
    if float(smap.plane.point(zero_uv).norm()) < 1e-3 * float(smap.plane.origin.norm()) + 1e-6 \
            and bool((zero_uv.abs() <= smap.extent).all()):
        # The zero latent lies on this plane (two anchors, "origin"): mark it, it decodes to a flat picture.
        x, y = (smap.to_pixel(zero_uv, size)[0] + torch.tensor([margin, top])).tolist()
        draw.line([x - 7, y, x + 7, y], fill=(255, 255, 255), width=2)
        draw.line([x, y - 7, x, y + 7], fill=(255, 255, 255), width=2)
        label(draw, (x + 9, y + 4), "zero latent", 12, fill=(210, 210, 210))
    marks = smap.to_pixel(smap.anchor_uv, size).tolist()
    thumb = size // 6
    for i, ((x, y), name) in enumerate(zip(marks, smap.names, strict=True)):
        x, y = x + margin, y + top
        if thumbnails and i < len(thumbnails):
            tx = int(min(max(x - thumb / 2, margin + 2), margin + size - thumb - 2))
            ty = int(y - thumb - 14 if y - thumb - 14 > top else y + 14)
            draw.rectangle([tx - 2, ty - 2, tx + thumb + 1, ty + thumb + 1], fill=(255, 255, 255))
            canvas.paste(thumbnails[i].convert("RGB").resize((thumb, thumb), Image.LANCZOS), (tx, ty))
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=(255, 255, 255), outline=(0, 0, 0), width=2)
        label(draw, (x + 9, y + 4), name, 14)
    # Colour bar with numbers.
    bx, by, bh = margin + size + 18, top + 10, size - 40
    ramp = colormap(np.linspace(1, 0, bh)[:, None].repeat(20, 1), cmap)
    canvas.paste(Image.fromarray(ramp, "RGB"), (bx, by))
    draw.rectangle([bx - 1, by - 1, bx + 20, by + bh], outline=(200, 200, 200))
    for j in range(levels + 1):
        y = by + round(j / levels * (bh - 1))
        value = math.exp(g_hi - j / levels * (g_hi - g_lo)) if log_scale else hi - j / levels * (hi - lo)
        draw.line([bx + 20, y, bx + 25, y], fill=(220, 220, 220))
        draw.text((bx + 28, y), f"{value:.3g}", font=font(12), fill=(230, 230, 230), anchor="lm")
    draw.text((bx - 4, by + bh + 8), "pixel RMS per\nlatent RMS", font=font(11), fill=(200, 200, 200))
    return canvas


def configure_curvature(parser: argparse.ArgumentParser) -> None:
    from instrument.config import AnchorConfig, number

    parser.add_argument("anchors", nargs="+", metavar="ANCHOR",
                        help="2 or 3 anchors: image files, seed:N or saved latents (.safetensors)")
    parser.add_argument("-o", "--output", required=True,
                        help="the map picture (.png); .json and .npy beside it")
    parser.add_argument("--grid", type=number(int, 2, 512), default=24,
                        help="grid points per side (cost: grid² × 2 jvps)")
    parser.add_argument("--span", type=number(float, 0, 100, above=True), default=1.5,
                        help="map half-width in farthest-anchor distances")
    parser.add_argument("--directions", choices=["plane", "random", "path"], default="plane",
                        help="stretch along the map's own axes, k random directions, or anchor 1 -> 2")
    parser.add_argument("-k", type=number(int, 1, 64), default=4, help="number of random directions")
    parser.add_argument("--second", choices=["origin", "random"], default="origin",
                        help="with two anchors, the plane's second direction")
    parser.add_argument("--colormap", choices=["magma", "viridis"], default="magma")
    parser.add_argument("--picture-size", type=number(int, 64, 8192), default=512,
                        help="side of the drawn map in pixels")
    parser.add_argument("--thumbnails", action=argparse.BooleanOptionalAction, default=True,
                        help="draw the decoded anchors beside their marks")
    # A map costs grid² jvps: 128 px decodes keep it to about a minute on a laptop CPU.
    AnchorConfig.add_arguments(parser, size=(128, 128))


def run_curvature(args: argparse.Namespace) -> int:
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
    log.info("charting %d×%d points at %dx%d px with %s ...", args.grid, args.grid, *config.size, ae.label)

    def progress(done: int, total: int) -> None:
        if done % max(1, total // 10) == 0 or done == total:
            log.info("  %d/%d batches", done, total)

    smap = stretch_map(ae.decode, latents, args.grid, args.span, directions=direction, k=args.k,
                       seed=config.seed, second=args.second, names=names, progress=progress)
    if args.directions == "path":
        smap.directions = f"along {names[0]} -> {names[1]}"
    ts = torch.linspace(0, 1, 48)
    ring = list(range(len(latents))) + ([0] if len(latents) == 3 else [])
    for i, j in zip(ring[:-1], ring[1:], strict=True):
        first = i == 0 and j == 1  # label one pair only: six labels crowd a triangle
        smap.paths.append(("LERP" * first, smap.plane.coords(lerp(latents[i].cpu(), latents[j].cpu(), ts))))
        smap.paths.append(("SLERP" * first, smap.plane.coords(slerp(latents[i].cpu(), latents[j].cpu(), ts))))
    thumbs = None
    if args.thumbnails:
        with torch.no_grad():
            thumbs = [to_pil(p) for p in ae.decode(latents)]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_stretch_map(smap, thumbs, size=args.picture_size, cmap=args.colormap).save(out)
    data = smap.to_json() | {"model": ae.label, "size": list(config.size),
                             "paths": "LERP and SLERP between anchors"}
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    np.save(out.with_suffix(".npy"), smap.grid.numpy().astype(np.float32))
    print(f"stretch {data['min']:.3g} .. {data['max']:.3g} ({UNITS}); wrote {out}, "
          f"{out.with_suffix('.json')}, {out.with_suffix('.npy')}")
    return 0
