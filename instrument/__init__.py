"""Latent Instrument: play the latent space of an image autoencoder with a MIDI controller.

As a library, ``import instrument as li``: ``li.load``, ``li.encode``, ``li.decode``, the geometry, the lab,
``li.open_take`` and the ``li.Scrubber`` widget (see ``instrument.api`` and ``instrument.notebook``). They
are imported on first use, so that the command line starts without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("Anchors", "Coords", "Take", "add_offset", "apply_locks", "atlas", "atlas_figure", "blend",
        "chart", "decode", "encode", "geodesic", "latent_at", "lerp", "load", "lock_mask", "open_take",
        "pacing", "path", "profile", "random_walk", "sheet", "slerp", "stretch_at", "trace", "walk",
        "walk_offset", "weather_figure", "weather_map")
_WIDGETS = ("Scrubber", "MidiLink")
_HOME = {**dict.fromkeys(_API, "instrument.api"), **dict.fromkeys(_WIDGETS, "instrument.notebook")}
__all__ = [*_API, *_WIDGETS]

if TYPE_CHECKING:
    from instrument.api import *  # noqa: F403
    from instrument.notebook import MidiLink, Scrubber  # noqa: F401


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:  # (a submodule not imported yet: the import system goes on to look for it)
        raise AttributeError(f"module 'instrument' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
