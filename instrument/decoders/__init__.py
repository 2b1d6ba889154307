"""Autoencoders: load one from wherever it is kept, decode diffusion-space latents to [0, 1] pictures.

``load_autoencoder(source)`` for one model, ``load_models(config)`` for the (fast, full) pair the instrument
plays, ``random_autoencoder(arch)`` for benchmarks. See ``loaders.py`` for the accepted sources.
"""

from instrument.decoders.autoencoder import Autoencoder, ModelLoadError, NonFiniteDecode
from instrument.decoders.families import FAMILIES, Family, family_from_filename, family_from_name, get_family
from instrument.decoders.loaders import (
    hub_cache,
    load_autoencoder,
    load_models,
    procedural_autoencoder,
    random_autoencoder,
)

__all__ = [
    "FAMILIES",
    "Autoencoder",
    "Family",
    "ModelLoadError",
    "NonFiniteDecode",
    "family_from_filename",
    "family_from_name",
    "get_family",
    "hub_cache",
    "load_autoencoder",
    "load_models",
    "procedural_autoencoder",
    "random_autoencoder",
]
