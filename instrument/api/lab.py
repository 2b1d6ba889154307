"""The latent lab for the library: atlases, weather maps, geodesics and pacing as data, and their pictures.

Each function hands a model's ``decode`` to ``instrument.lab``'s own functions (the ones ``latent-instrument
atlas`` and ``curvature`` and the live lab use) and returns their data: an ``Atlas``, a ``WeatherMap`` and
its ``Route``s, a ``Geodesic``, a ``PacingTable``, a profile tensor. The ``*_figure`` functions draw them as
PIL images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from instrument.api.models import Anchors, Size, Source, decode, encode, latents_of
from instrument.decoders import Autoencoder
from instrument.lab.atlas import Atlas, draw_atlas, image_files
from instrument.lab.curvature import ROUTE_SAMPLES, Route, WeatherMap, chart_route, draw_weather_map
from instrument.lab.curvature import weather_map as chart_weather
from instrument.lab.geodesic import Geodesic
from instrument.lab.geodesic import geodesic as find_geodesic
from instrument.lab.measure import SEGMENT_SAMPLES
from instrument.lab.pacing import PacingTable, pacing_table
from instrument.lab.stretch import path_profile, random_directions, stretch
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


def weather_map(model: Autoencoder, anchors: Anchors | torch.Tensor, n: int = 16, span: float = 1.5, *,
                directions: str | torch.Tensor = "plane", k: int = 4, seed: int = 0, second: str = "origin",
                batch: int = 4) -> WeatherMap:
    """Stretch and bend of ``model`` over the plane through 2 or 3 anchors, on an n x n grid (n >= 3)
    reaching ``span`` times the farthest anchor, as ``latent-instrument curvature`` charts it
    (``lab.curvature.weather_map``).

    Returns the ``WeatherMap``: ``stretch`` Tensor[n, n] (how fast the picture changes: pixel RMS per latent
    RMS), ``bend`` Tensor[n, n] in [0, 1] (whether it goes on changing the same way: 0 straight on, 1 turns
    back), both with row 0 at the top; ``plane``, ``anchor_uv`` Tensor[N, 2], ``names``, ``extent`` and
    ``routes`` (add them with ``trace``). ``directions`` (of the stretch): "plane" (the map's axes), "random"
    (RMS over k seeded directions) or a Tensor[C, h, w] such as b - a. ``second``: with two anchors, the
    plane's other direction, "origin" (it holds both the LERP line and the SLERP arc) or "random".
    Cost: n² decodes, and 2 more per point and direction other than "plane"; small latents keep it quick on
    a CPU. ``weather_figure`` draws it.
    """
    names = anchors.names if isinstance(anchors, Anchors) else None
    return chart_weather(model.decode, latents_of(anchors).to(model.device), n, span, directions=directions,
                         k=k, seed=seed, second=second, names=names, batch=batch)


def trace(model: Autoencoder, wmap: WeatherMap, route: Callable[[torch.Tensor], torch.Tensor], name: str, *,
          ends: tuple[str, str] | None = None, samples: int = ROUTE_SAMPLES) -> Route:
    """Chart a route on the weather map (``lab.curvature.chart_route``): ``route`` maps positions s
    Tensor[T] in [0, 1] to latents [T, C, h, w] (a ``Geodesic``, or ``lambda s: li.path(anchors, s)``),
    decoded at ``samples`` even steps.

    Returns the ``Route`` (also added to ``wmap.routes``): ``uv`` Tensor[samples, 2] (its shadow on the map's
    plane), its pixel ``energy`` and ``length``, and its phase ``boundaries`` Tensor[B, 2] (where the picture
    changes kind). Named "LERP", "SLERP" or "geodesic" it is drawn in that route's colour (else white), and
    its energy is compared with a SLERP's between the same ``ends`` (names; default: the map's first and
    last anchor)."""
    ends = ends or (wmap.names[0], wmap.names[-1])
    return chart_route(model.decode, wmap, name, ends, lambda s: route(s).to(model.device), samples)


def weather_figure(wmap: WeatherMap, model: Autoencoder | None = None, *, size: int = 512,
                   cmap: str = "magma", title: str = "") -> Image.Image:
    """The weather map as a picture: stretch (left, log scale) and bend (right) in colour with iso-lines,
    each ``size`` pixels square, with colour bars; the anchors (with their pictures when ``model`` is given:
    it decodes them), the traced routes and their phase boundaries, and a legend of their energies."""
    thumbs = None
    if model is not None:
        thumbs = decode(model, wmap.plane.point(wmap.anchor_uv).to(model.device))
    return draw_weather_map(wmap, thumbs, size=size, cmap=cmap, title=title)


def stretch_at(model: Autoencoder, latent: torch.Tensor, direction: torch.Tensor | None = None, *,
               k: int = 2, seed: int = 0) -> float:
    """The stretch at one latent [C, h, w], in pixel RMS per latent RMS: along ``direction`` ([C, h, w],
    e.g. b - a), else RMS over k seeded random directions (the decoder's sensitivity in general, as a
    weather map's "random" directions measure it). Cost: 2 decodes per direction on a CPU."""
    latent = latent.to(model.device)
    along = random_directions(latent, k, seed) if direction is None else direction[None].to(latent)
    return float(stretch(model.decode, latent, along).pow(2).mean().sqrt())


def geodesic(model: Autoencoder, a: torch.Tensor, b: torch.Tensor, *, points: int = 16, iterations: int = 12,
             batch: int = 4) -> Geodesic:
    """The route from a to b ([C, h, w]) along which the picture changes least (``lab.geodesic``): what the
    ``geodesic`` path kind plays. ``route(s)`` for s Tensor[T] in [0, 1] gives its latents [T, C, h, w]
    (exactly a and b at the ends); ``energy`` and ``length`` in pixels, beside the SLERP's
    (``slerp_energy``, ``slerp_length``) it started from. Cost per iteration: about 4 x ``points`` decodes
    (a backward pass each); it stops early when no step lowers the energy."""
    return find_geodesic(model.decode, a.to(model.device), b.to(model.device), points=points,
                         iterations=iterations, batch=batch)


def pacing(model: Autoencoder, anchors: Anchors | torch.Tensor, kind: str = "slerp", *,
           per_segment: int = SEGMENT_SAMPLES, batch: int = 4) -> PacingTable:
    """Measure the pixel-space arc length of the ``kind`` path through the anchors (a ``li.path`` kind),
    decoding it at ``per_segment`` even steps from anchor to anchor as live pacing does, and return its
    ``PacingTable``: ``table(u)`` maps even progress u in [0, 1] to the path position s at which the picture
    has changed by that fraction; ``table.positions(n)`` gives n such positions (feed them to ``li.path``),
    ``table.total`` the whole pixel length. Cost: ``per_segment`` x segments + 1 decodes."""
    stack = latents_of(anchors).to(model.device)
    segments = max(1, len(stack) if kind == "loop" else len(stack) - 1)
    breaks = [per_segment * i for i in range(1, segments)]  # the anchors inside: a path may turn there
    return pacing_table(model.decode, lambda s: path_point(stack, s.to(stack.device), kind),
                        segments * per_segment + 1, breaks=breaks, batch=batch)


def profile(model: Autoencoder, latents: torch.Tensor, *, batch: int = 16) -> torch.Tensor:
    """How much the picture changes between consecutive latents [T, C, h, w]: Tensor[T-1], RMS pixel
    change (pixels in [0, 1]). Even steps through a path give an uneven profile; paced ones an even one."""
    return path_profile(model.decode, latents.to(model.device), batch=batch)
