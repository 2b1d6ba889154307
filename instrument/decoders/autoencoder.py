"""One face for every autoencoder: diffusion-space latents in, pictures in [0, 1] out.

Each architecture keeps its own conventions inside (a KL VAE wants raw latents and gives [-1, 1]; TAESD works
in diffusion space and [0, 1]); ``Autoencoder`` converts at the edges, so the rest of the instrument only ever
sees diffusion-space latents (``family``) and [0, 1] pixels.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from instrument.decoders.families import Family
from instrument.errors import UserError

log = logging.getLogger(__name__)


class ModelLoadError(UserError):
    """A model could not be loaded; the message names the file, folder or repo and says why."""


class NonFiniteDecode(RuntimeError):
    """A decode gave NaN or Inf even in fp32; the frame must not be shown."""


def module_dtype(module: nn.Module) -> torch.dtype:
    """The floating dtype of a module's weights (or buffers, for weightless modules); fp32 if it has none."""
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


class Autoencoder:
    """An encoder/decoder pair living in one latent space (``family``) on one device.

    Inside, ``decoder_module`` maps *model-space* latents (``latent / latent_scale + latent_shift``) to
    pixels in ``pixel_range``; ``encoder_module`` (optional) does the reverse. The render path's speed-ups
    (``accel.FastDecoder``) build on ``decoder_module`` and leave ``decode`` as it is.

    Attributes: ``family`` (Family), ``label`` (for people: "TAESD (taef2, local file)"), ``arch``
    ("taesd", "kl", "tiny" or "procedural"), ``source`` (the path or repo id it came from), ``device``,
    ``dtype`` (of the decoder), ``downscale``, ``can_encode``, ``notice`` (a message for the user, e.g. why
    the built-in decoder is in use).
    """

    def __init__(
        self,
        decoder_module: nn.Module,
        encoder_module: nn.Module | None,
        *,
        family: Family,
        label: str,
        arch: str,
        source: str = "",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        latent_scale: float = 1.0,
        latent_shift: float = 0.0,
        pixel_range: tuple[float, float] = (0.0, 1.0),
        downscale: int | None = None,
        notice: str | None = None,
    ):
        self.family = family
        self.label = label
        self.arch = arch
        self.source = source
        self.notice = notice
        self.latent_scale = latent_scale
        self.latent_shift = latent_shift
        self.pixel_range = pixel_range
        # Pixels per latent cell: the family's, unless an odd (e.g. tiny test) model says otherwise.
        self.downscale = downscale or family.downscale
        self.device = torch.device(device)
        self.dtype = dtype
        # Weights never need gradients here; gradients with respect to the *latent* still flow (the lab's
        # curvature tools may use them) because decode is not wrapped in no_grad.
        self.decoder_module = decoder_module.eval().requires_grad_(False).to(self.device, dtype)
        self.encoder_module = None
        if encoder_module is not None:
            self.encoder_module = encoder_module.eval().requires_grad_(False).to(self.device, dtype)

    def __repr__(self) -> str:
        where = f"family={self.family.name}, device={self.device}, dtype={self.dtype}"
        return f"Autoencoder({self.label!r}, {where})"

    @property
    def can_encode(self) -> bool:
        return self.encoder_module is not None

    def latent_shape(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """(C, h, w) of the latent for a picture of ``size`` = (width, height) pixels."""
        width, height = size
        f = self.downscale
        if width % f or height % f:
            raise ValueError(f"size {width}x{height} is not a multiple of {f} ({self.label})")
        return self.family.latent_channels, height // f, width // f

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Autoencoder:
        """Move both halves (in place; returns self)."""
        self.device = torch.device(device) if device is not None else self.device
        self.dtype = dtype or self.dtype
        for module in (self.decoder_module, self.encoder_module):
            if module is not None:
                module.to(self.device, self.dtype)
        return self

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Diffusion-space latents [B, C, h, w] (any float dtype, any device) -> [B, 3, f*h, f*w] in [0, 1],
        f = ``self.downscale`` (8 for every real family).

        The result is on ``self.device`` in ``self.dtype``, clamped, and always finite: a non-finite result
        in fp16/bf16 moves this decoder to fp32 for good (with a warning) and decodes again (its weights keep
        their reduced-precision rounding: what overflowed was the activations); a non-finite result in fp32
        raises NonFiniteDecode.
        """
        self._check_latents(latents)
        model_latents = latents.to(self.device, torch.float32) / self.latent_scale + self.latent_shift
        pixels = self.decoder_module(model_latents.to(self.dtype))
        if not bool(torch.isfinite(pixels).all()):
            if self.dtype == torch.float32:
                raise NonFiniteDecode(f"{self.label} decoded NaN/Inf in fp32; the latent may be out of range")
            log.warning("%s gave NaN/Inf in %s; switching this decoder to fp32", self.label, self.dtype)
            self.dtype = torch.float32
            self.decoder_module.float()
            pixels = self.decoder_module(model_latents)
            if not bool(torch.isfinite(pixels).all()):
                raise NonFiniteDecode(f"{self.label} decoded NaN/Inf even in fp32")
        low, high = self.pixel_range
        return ((pixels - low) / (high - low)).clamp(0, 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pictures [B, 3, H, W] in [0, 1] (H, W multiples of the downscale) -> float32 diffusion latents
        [B, C, H/f, W/f] on ``self.device``. fp16 trouble falls back to fp32 as in ``decode``."""
        if self.encoder_module is None:
            raise RuntimeError(f"{self.label} has no encoder; it cannot turn images into latents")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        self.latent_shape((images.shape[-1], images.shape[-2]))  # checks the size
        low, high = self.pixel_range
        pixels = images.to(self.device, torch.float32) * (high - low) + low
        dtype = module_dtype(self.encoder_module)
        with torch.no_grad():
            raw = self.encoder_module(pixels.to(dtype))
            if not bool(torch.isfinite(raw).all()) and dtype != torch.float32:
                log.warning("%s encoder gave NaN/Inf in %s; switching it to fp32", self.label, dtype)
                self.encoder_module.float()
                raw = self.encoder_module(pixels)
            if not bool(torch.isfinite(raw).all()):
                raise NonFiniteDecode(f"{self.label} encoded an image to NaN/Inf")
        return (raw.float() - self.latent_shift) * self.latent_scale

    def _check_latents(self, latents: torch.Tensor) -> None:
        channels = self.family.latent_channels
        if latents.ndim != 4 or latents.shape[1] != channels:
            shape = tuple(latents.shape)
            raise ValueError(f"{self.label} decodes [B, {channels}, h, w] latents; got {shape}")
