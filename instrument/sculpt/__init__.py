"""Sculpting: the played latent noised to a strength and denoised in a few UNet steps, between the latent for
the frame's time and the decoder.

``load_sculpt_model(source, lora=None)`` loads a model (``models.py``); ``Sculptor(model, latent_shape)`` is
the stage (``sculptor.py``: begin / ready / finish / drop); ``SculptSettings`` are its controls and
``SculptResult`` its output, with every step's x_t and predicted x0 (``settings.py``). The pieces:
``schedule`` (timesteps and step coefficients), ``steps`` (the step function and its fixed-shape runner),
``stream`` (the live loop's stream batch: several frames' steps in one UNet call), ``noise`` (seeded,
slerp-mixed noise), ``prompts`` (text embeddings cached on disk), ``sources``,
``single_file``, ``hub`` and ``lora`` (where models come from).
"""

from instrument.sculpt.models import DEFAULT_MODEL, SculptModel, load_sculpt_model, require_family
from instrument.sculpt.noise import noise_at
from instrument.sculpt.prompts import PromptBook
from instrument.sculpt.sculptor import (
    Dropped,
    NonFiniteSculpt,
    SculptJob,
    SculptOptions,
    Sculptor,
    default_sculpt_options,
)
from instrument.sculpt.settings import MAX_STEPS, SculptResult, SculptSettings
from instrument.sculpt.stream import StreamBatch

__all__ = [
    "DEFAULT_MODEL",
    "Dropped",
    "MAX_STEPS",
    "NonFiniteSculpt",
    "PromptBook",
    "SculptJob",
    "SculptModel",
    "SculptOptions",
    "SculptResult",
    "SculptSettings",
    "Sculptor",
    "StreamBatch",
    "default_sculpt_options",
    "load_sculpt_model",
    "noise_at",
    "require_family",
]
