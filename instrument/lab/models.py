"""Loading for the lab's commands: the fast autoencoder and anchor latents (errors printed, not raised)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from instrument.config import Config

if TYPE_CHECKING:
    from instrument.decoders import Autoencoder
    from instrument.latent.anchors import Anchor


def load_fast_decoder(config: Config) -> Autoencoder:
    """The autoencoder named by ``--model`` (``auto``: the family's fast default) on the configured device.
    The full-quality decoder is never loaded: the lab measures the decoder it plays with."""
    from instrument.decoders import load_models

    return load_models(dataclasses.replace(config, full_model="none"))[0]


def load_anchor_latents(specs: list[str], ae: Autoencoder, config: Config, *,
                        strict: bool = True) -> list[Anchor] | None:
    """Anchors (image files, seed:N, saved latents) encoded at ``config.size`` through the anchor cache.

    Every error is printed. Returns the list of ``Anchor``, or None when nothing loaded or (``strict``) when
    anything failed.
    """
    from instrument.latent.anchors import AnchorCache, load_anchors

    cache = AnchorCache(Path(config.cache_dir) if config.cache_dir else None)
    anchors, errors = load_anchors(specs, ae, config.size, cache=cache, seed=config.seed, fit=config.fit)
    for error in errors:
        print(f"error: {error}")
    if (strict and errors) or not anchors:
        return None
    return anchors
