"""The latent lab for the library: atlases, stretch maps and pacing as data, and their pictures.

Each function hands a model's ``decode`` to ``instrument.lab``'s own functions (the ones ``latent-instrument
atlas`` and ``curvature`` and the live pacing use) and returns their data: an ``Atlas``, a ``StretchMap``,
a ``PacingTable``, a profile tensor. The ``*_figure`` functions draw them as PIL images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from instrument.api.models import Anchors, Size, Source, decode, encode, latents_of
from instrument.decoders import Autoencoder
from instrument.lab.atlas import Atlas, draw_atlas, image_files
from instrument.lab.curvature import StretchMap, draw_stretch_map, path_profile
from instrument.lab.curvature import stretch_map as chart_stretch
from instrument.lab.pacing import PacingTable, Route, pacing_table
from instrument.lab.pacing import smooth_route as choose_route
from instrument.lab.pacing import stretch_at as measure_stretch
from instrument.latent.geometry import path_point

THUMBNAIL = 128  # pixels: the side of the pictures on an atlas


def atlas(model: Autoencoder, sources: Source | Sequence[Source], size: Size = 256, *, method: str = "pca",
          features: str = "style", clusters: int = 0, seed: int = 0, fit: str = "crop",
          cache: bool | str | Path = True) -> Atlas:
    """Chart pictures on a 2D map, as ``latent-instrument atlas`` does: ``sources`` is a folder (its
    pictures, by name, as the command reads it) or anything ``encode`` takes (3 or more anchors).

    Returns the ``Atlas``: ``names``, ``coords`` Tensor[N, 2] in [0, 1] (x right, y down), ``labels``
    (clusters), ``from_map(x, y) -> latent [C, h, w]`` (exact at the anchors), ``to_map(latent)``,
    ``nearest(x, y)``, ``save(folder)`` (what ``play --atlas`` loads). ``method`` "pca" or "umap" (the
    ``atlas`` extra); ``features`` "style" (channel correlations: crops and mirror images stay together)
    or "latent"; ``clusters`` 0 chooses their number.
    """
    if isinstance(sources, (str, Path)) and Path(sources).is_dir():
        sources = [str(p) for p in image_files(Path(sources))]
    anchors = encode(model, sources, size, fit=fit, seed=seed, cache=cache)
    return Atlas.fit(anchors.latents.cpu(), anchors.names, method, features=features, clusters=clusters,
                     seed=seed)


def atlas_figure(atlas: Atlas, model: Autoencoder | None = None, *, thumbnails: Sequence[Image.Image] = (),
                 size: int = 768, title: str = "") -> Image.Image:
    """The atlas as a picture ``size`` pixels wide: each anchor's thumbnail at its place, framed in its
    cluster's colour, and a legend. Thumbnails: ``thumbnails`` (one per anchor), else the anchors decoded by
    ``model``, else grey squares."""
    pictures = list(thumbnails)
    if not pictures and model is not None:
        pictures = decode(model, atlas.latents.to(model.device), size=THUMBNAIL)
    if not pictures:
        pictures = [Image.new("RGB", (THUMBNAIL, THUMBNAIL), (128, 128, 128))] * len(atlas.names)
    return draw_atlas(atlas, pictures, size, title)


def stretch_map(model: Autoencoder, anchors: Anchors | torch.Tensor, n: int = 16, span: float = 1.5, *,
                directions: str | torch.Tensor = "plane", k: int = 4, seed: int = 0, second: str = "origin",
                method: str = "auto") -> StretchMap:
    """How strongly ``model`` stretches latent space over the plane through 2 or 3 anchors, on an n x n
    grid reaching ``span`` times the farthest anchor (``lab.curvature.stretch_map``): ``grid`` Tensor[n, n]
    in pixel RMS per latent RMS (row 0 at the top), ``plane``, ``anchor_uv``, ``names``.

    ``directions``: "plane" (along the map's axes), "random" (k seeded directions) or a Tensor[C, h, w].
    Cost: n² jvps (each about two decodes) per direction: small latents and grids keep it quick on a CPU.
    ``trace`` adds paths to draw; ``stretch_figure`` draws it.
    """
    names = anchors.names if isinstance(anchors, Anchors) else None
    return chart_stretch(model.decode, latents_of(anchors).to(model.device), n, span, directions=directions,
                         k=k, seed=seed, second=second, names=names, method=method)


def trace(smap: StretchMap, latents: torch.Tensor, label: str = "") -> torch.Tensor:
    """Add a path (latents [T, C, h, w], e.g. from ``li.path`` or ``li.walk``) to the map's drawing, as
    its projection onto the map's plane; returns those plane coordinates, Tensor[T, 2]."""
    uv = smap.plane.coords(latents.detach().float().cpu())
    smap.paths.append((label, uv))
    return uv


def stretch_figure(smap: StretchMap, model: Autoencoder | None = None, *, size: int = 512,
                   cmap: str = "magma", title: str = "") -> Image.Image:
    """The stretch map as a picture: stretch in colour (bright = turbulent), iso-lines, the anchors (with
    their pictures when ``model`` is given: it decodes them), the traced paths as white lines, a colour
    bar."""
    thumbs = None
    if model is not None:
        thumbs = decode(model, smap.plane.point(smap.anchor_uv).to(model.device))
    return draw_stretch_map(smap, thumbs, size=size, cmap=cmap, title=title)


def stretch_at(model: Autoencoder, latent: torch.Tensor, *, k: int = 2, seed: int = 0) -> float:
    """The stretch at one latent [C, h, w] (RMS over k seeded directions): the number the HUD shows."""
    return measure_stretch(model.decode, latent.to(model.device), k=k, seed=seed)


def pacing(model: Autoencoder, anchors: Anchors | torch.Tensor, kind: str = "slerp", *, samples: int = 33,
           method: str = "decode") -> PacingTable:
    """Measure the pixel-space arc length of the ``kind`` path through the anchors (``samples`` decodes)
    and return its ``PacingTable``: ``table(u)`` maps even progress u in [0, 1] to the path position s at
    which the picture has changed by that fraction; ``table.positions(n)`` gives n such positions (feed
    them to ``li.path``), ``table.total`` the whole pixel length."""
    stack = latents_of(anchors).to(model.device)
    return pacing_table(model.decode, lambda s: path_point(stack, s.to(stack.device), kind), samples,
                        method=method)


def profile(model: Autoencoder, latents: torch.Tensor, *, batch: int = 16) -> torch.Tensor:
    """How much the picture changes between consecutive latents [T, C, h, w]: Tensor[T-1], RMS pixel
    change (pixels in [0, 1]). Even steps through a path give an uneven profile; paced ones an even one."""
    return path_profile(model.decode, latents.to(model.device), batch=batch)


def smooth_route(model: Autoencoder, a: torch.Tensor, b: torch.Tensor, *, goal: str = "smooth",
                 kind: str = "slerp", candidates: int = 6, samples: int = 9, seed: int = 0) -> Route:
    """A bent route from a to b ([C, h, w]) that skirts ("smooth") or seeks ("turbulent") high-stretch
    ground; ``route(s)`` for s Tensor[T] in [0, 1] gives its latents [T, C, h, w]. Cost:
    (1 + 4 * candidates) * samples decodes."""
    return choose_route(model.decode, a.to(model.device), b.to(model.device), goal=goal, kind=kind,
                        candidates=candidates, samples=samples, seed=seed)
