"""The sculptor's noise: seeded Gaussian latents, the same for the same seed on every machine, and playable.

A noise seed is like a seed anchor (``anchors.seed_latent``) but drawn from a stream of its own, so that noise
seed 3 is not the anchor ``seed:3``, and always with std 1 (what the denoiser was trained on). ``noise_mix``
turns the seed into a continuous position: ``noise_at(seed, mix)`` slerps from seed's noise toward seed + 1's
with the latent geometry's own slerp, so a knob drifts the texture without the image jumping and
``noise_at(s, 1) == noise_at(s + 1, 0)``. Slerp keeps the norm of two equal-norm noises, so the mix stays
noise-like (a straight blend would shrink it toward zero halfway).
"""

from __future__ import annotations

import functools

import torch

from instrument.latent.geometry import slerp

# Added to a noise seed so that noise is not the seed anchor of the same number (torch's CPU generator keeps
# only the low 32 bits of a seed, so the offset lives there).
NOISE_STREAM = 0x5C0FFEE1


@functools.lru_cache(maxsize=16)
def _seed_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed((NOISE_STREAM + seed) % 2**32)
    return torch.randn(shape, generator=generator)


def noise_at(seed: int, mix: float, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise ``mix`` (0..1) of the way from seed's to seed + 1's along a slerp: float32 CPU ``shape``
    (e.g. [C, h, w]), standard Gaussian at mix 0 and 1, bit-identical on every machine."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"noise_mix must be in [0, 1], not {mix}")
    if seed < 0:
        raise ValueError(f"noise seed must be >= 0, not {seed}")
    # (slerp hits its ends bit for bit: mix 0 is seed's noise, mix 1 seed + 1's)
    return slerp(_seed_noise(int(seed), tuple(shape)), _seed_noise(int(seed) + 1, tuple(shape)), float(mix))
