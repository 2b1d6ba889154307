"""The instrument as a Python library: ``import instrument as li``.

The same functions the command line and the render thread use, with shapes and ranges in each docstring::

    model = li.load("madebyollin/taesd")                  # or a folder, a .safetensors VAE, a TAESD .pth pair
    anchors = li.encode(model, ["dog.png", "seed:3"], size=512)   # Anchors: latents [N, C, h, w], names
    frames = li.decode(model, li.walk(anchors, 60, "slerp"))       # 60 PIL images: the `walk` command's
    li.Scrubber(model, anchors)                           # a picture with sliders, in Jupyter or VS Code

- models (``models``): ``load``, ``encode`` -> ``Anchors``, ``decode``;
- geometry on tensors (``paths``): ``slerp``, ``lerp``, ``blend``, ``path``, ``walk``, ``random_walk``,
  ``walk_offset``, ``lock_mask``, ``apply_locks``, ``add_offset``, and ``latent_at`` with ``Coords``;
- the lab (``lab``): ``atlas``, ``weather_map`` (stretch and bend over a plane), ``trace`` (a route on
  it), ``stretch_at``, ``geodesic``, ``pacing``, ``profile``, and the pictures ``atlas_figure``,
  ``weather_figure``;
- pictures of results (``figures``): ``sheet``, ``chart``;
- takes (``takes``): ``open_take`` -> ``Take`` (frames, coordinates, latents, control events);
- widgets (``instrument.notebook``, the ``notebook`` extra): ``Scrubber``, driven by MIDI through
  ``Scrubber.listen``.
"""

from instrument.api.figures import chart, sheet
from instrument.api.lab import (
    atlas,
    atlas_figure,
    geodesic,
    pacing,
    profile,
    stretch_at,
    trace,
    weather_figure,
    weather_map,
)
from instrument.api.models import Anchors, decode, encode, load
from instrument.api.paths import (
    Coords,
    add_offset,
    apply_locks,
    blend,
    latent_at,
    lerp,
    lock_mask,
    path,
    random_walk,
    slerp,
    walk,
    walk_offset,
)
from instrument.api.takes import Take, open_take

__all__ = [
    "Anchors", "Coords", "Take", "add_offset", "apply_locks", "atlas", "atlas_figure", "blend", "chart",
    "decode", "encode", "geodesic", "latent_at", "lerp", "load", "lock_mask", "open_take", "pacing", "path",
    "profile", "random_walk", "sheet", "slerp", "stretch_at", "trace", "walk", "walk_offset",
    "weather_figure", "weather_map",
]
