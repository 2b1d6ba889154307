"""Model families: the latent space each autoencoder lives in.

A latent in this package is always in *diffusion space*: the space a diffusion model's denoiser sees, where
seeds are Gaussian with std ``latent_std``. A KL VAE's raw latent ``r`` relates to it by
``latent = (r - shift) * scale``; TAESD-family decoders take diffusion-space latents directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    latent_channels: int
    downscale: int  # pixels per latent cell along each side
    scale: float  # diffusion latent = (raw VAE latent - shift) * scale
    shift: float
    pixel_range: tuple[float, float]  # what the full (KL) VAE takes and gives; TAESD always works in [0, 1]
    latent_std: float = 1.0  # std of a seed latent in diffusion space
    taesd_prefix: str | None = None  # file-name prefix of the family's TAESD `.pth` pair


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("sd15", 4, 8, 0.18215, 0.0, (-1.0, 1.0), taesd_prefix="taesd"),
        Family("sdxl", 4, 8, 0.13025, 0.0, (-1.0, 1.0), taesd_prefix="taesdxl"),
        Family("sd3", 16, 8, 1.5305, 0.0609, (-1.0, 1.0), taesd_prefix="taesd3"),
        Family("flux1", 16, 8, 0.3611, 0.1159, (-1.0, 1.0), taesd_prefix="taef1"),
        Family("flux2", 32, 8, 1.0, 0.0, (-1.0, 1.0), taesd_prefix="taef2"),
        # The built-in procedural decoder: no weights, its own small latent space.
        Family("procedural", 4, 8, 1.0, 0.0, (0.0, 1.0)),
    ]
}


def get_family(name: str) -> Family:
    """The family called ``name``; a clear error listing the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def family_from_filename(filename: str) -> Family | None:
    """Guess a TAESD-family checkpoint's family from its name (``taesdxl_decoder.pth`` -> sdxl)."""
    stem = filename.lower().rsplit("/", 1)[-1]
    # Longest prefix first: "taesdxl" must win over "taesd".
    for family in sorted(FAMILIES.values(), key=lambda f: -len(f.taesd_prefix or "")):
        if family.taesd_prefix and stem.startswith(family.taesd_prefix + "_"):
            return family
        if family.taesd_prefix and stem.startswith(family.taesd_prefix + "."):
            return family
    return None


# Words in a file or repo name that give its family away, most specific first.
NAME_HINTS: list[tuple[str, str]] = [
    ("taesdxl", "sdxl"), ("taesd3", "sd3"), ("taef1", "flux1"), ("taef2", "flux2"), ("taesd", "sd15"),
    ("sdxl", "sdxl"), ("flux.2", "flux2"), ("flux2", "flux2"), ("flux", "flux1"),
    ("stable-diffusion-3", "sd3"), ("sd3", "sd3"), ("stable-diffusion-v1", "sd15"), ("sd15", "sd15"),
]  # fmt: skip


def family_from_name(text: str) -> Family | None:
    """The family a file, folder or repo name points to (``madebyollin/taesdxl`` -> sdxl), or None."""
    text = text.lower()
    return next((FAMILIES[family] for word, family in NAME_HINTS if word in text), None)
