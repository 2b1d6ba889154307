"""Stretch and bend: how the decoder turns latent movement into picture movement.

The decoder D maps a latent z to a picture. Its Jacobian J at z says how far the picture moves when z moves:
a latent step v changes the picture by about J v. The *stretch* along v (first order: the decoder's
sensitivity in that direction) is

    stretch(z, v) = RMS(J v) / RMS(v)

with RMS taken over every pixel value (3 channels, pixels in [0, 1]) and over every latent element. Unit:
pixel RMS per latent RMS -- a latent step whose elements change by δ (RMS) changes each pixel value by about
stretch·δ (RMS). Being a ratio of means, it does not depend on the resolution. It is the square root of the
decoder's pullback metric ``vᵀ JᵀJ v`` up to those normalisations.

Stretch is first order: it says how fast the picture changes, not whether the change goes on the same way.
The *bend* (second order, at a chosen scale) does: for three frames x₋, x₀, x₊ a step apart along a path,

    bend = RMS(x₊ − 2 x₀ + x₋) / (RMS(x₊ − x₀) + RMS(x₀ − x₋))   in [0, 1]

0 where the picture moves straight on at an even rate (the middle frame is the blend of its neighbours),
1 where it turns straight back. It is the normalised distance of the middle frame from the blend of its
neighbours: where interpolation turns unpredictable. (For a piecewise-linear decoder such as TAESD's ReLU
network, point-wise second derivatives are zero or infinite, so the bend is always measured over a step.)

J v comes from forward-mode autodiff (``torch.func.jvp``) or a central difference (2 decodes); "auto" takes
the difference on a CPU, where a jvp costs several decodes, and wherever jvp fails (compiled graphs,
channels-last weights, custom kernels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

DecodeFn = Callable[[torch.Tensor], torch.Tensor]
UNITS = "pixel RMS per latent RMS (pixels in [0, 1])"

_warned_fallback = False


def rms(x: torch.Tensor) -> torch.Tensor:
    """Tensor[B, ...] -> Tensor[B] float32: root mean square over everything but the batch."""
    return x.detach().float().flatten(1).pow(2).mean(1).sqrt()


def directional_derivative(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor, *, method: str = "auto",
                           eps: float = 1e-2) -> torch.Tensor:
    """J v: how the picture moves per unit of latent step v.

    z, v: Tensor[B,C,h,w] (same shape). Returns Tensor[B,3,H,W] float32 (pixels per latent unit).
    ``method``: "jvp" (forward-mode AD, raises where unsupported), "fd" (central difference with a step of
    RMS ``eps`` latent units), "auto" (fd on a CPU; elsewhere jvp, falling back to fd once it fails).
    """
    global _warned_fallback
    if method not in ("auto", "jvp", "fd"):
        raise ValueError(f"method must be auto, jvp or fd, not {method!r}")
    if method == "jvp" or (method == "auto" and z.device.type != "cpu"):
        try:
            _, jv = torch.func.jvp(decode, (z,), (v.to(z.dtype),))
            # A decoder that cuts the tangent (detach, a numpy round trip, a CUDA graph) gives exact zeros.
            if method == "jvp" or bool(jv.any()):
                return jv.float()
            reason = "it gave exactly zero (the decoder detaches its input?)"
        except Exception as error:  # forward AD is missing in some decoders; a difference still works
            if method == "jvp":
                raise
            reason = str(error)
        if not _warned_fallback:
            log.warning("jvp unusable (%s); using finite differences for stretch", reason)
            _warned_fallback = True
    with torch.no_grad():
        scale = (eps / rms(v).clamp_min(1e-12)).to(z.device).view(-1, *[1] * (z.dim() - 1))
        step = (v * scale).to(z.dtype)
        return (decode(z + step).float() - decode(z - step).float()) / (2 * scale.float())


def stretch(decode: DecodeFn, z: torch.Tensor, v: torch.Tensor, *, method: str = "auto", eps: float = 1e-2,
            batch: int = 16) -> torch.Tensor:
    """Stretch RMS(J v) / RMS(v) at latents z along directions v (see the module docstring for the unit).

    z: Tensor[B,C,h,w] or [C,h,w]; v: the same or broadcastable with it (one z along B directions, B points
    along one direction). Returns Tensor[B] float32 on the CPU.
    Cost: B directional derivatives (2 decodes each, or a jvp), ``batch`` at a time.
    """
    z = z.unsqueeze(0) if z.dim() == 3 else z
    v = v.unsqueeze(0) if v.dim() == 3 else v
    # Contiguous copies: decoders write in place, which expanded views do not allow under jvp.
    z, v = (t.contiguous() for t in torch.broadcast_tensors(z, v.to(z.device)))
    out = []
    for i in range(0, len(z), batch):
        zb, vb = z[i:i + batch], v[i:i + batch]
        jv = directional_derivative(decode, zb, vb, method=method, eps=eps)
        out.append((rms(jv) / rms(vb).clamp_min(1e-12)).cpu())
    return torch.cat(out)


def bend(before: torch.Tensor, middle: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Bend of frames a step apart (Tensor[B, 3, H, W] each) -> Tensor[B] in [0, 1] (module docstring); 0
    where the picture stands still."""
    second = rms(after - 2 * middle + before)
    chords = rms(after - middle) + rms(middle - before)
    return torch.where(chords > 0, second / chords.clamp_min(1e-12), torch.zeros_like(chords))


def random_directions(like: torch.Tensor, k: int, seed: int = 0, *, varied: bool = False) -> torch.Tensor:
    """k seeded random directions shaped like ``like`` (Tensor[C,h,w]) -> Tensor[k,C,h,w] with unit RMS.

    ``varied``: scale channels (log-normal) and regions (a smooth log-normal field) differently, so that the
    directions probe the decoder's anisotropy instead of averaging it away.
    """
    g = torch.Generator().manual_seed(seed)
    c, h, w = like.shape
    v = torch.randn(k, c, h, w, generator=g)
    if varied:
        v = v * torch.exp(torch.randn(k, c, 1, 1, generator=g))
        field_ = torch.nn.functional.interpolate(torch.randn(k, 1, 2, 2, generator=g), size=(h, w),
                                                 mode="bilinear", align_corners=False)
        v = v * torch.exp(field_)
    return (v / rms(v).view(-1, 1, 1, 1)).to(like.device, like.dtype)


def path_profile(decode: DecodeFn, latents: torch.Tensor, *, batch: int = 16) -> torch.Tensor:
    """Measured pixel-space speed along a path: Tensor[T,C,h,w] -> Tensor[T-1] float32, the RMS pixel change
    between consecutive decodes (pixels in [0, 1]; per step: per frame when each step is a frame)."""
    with torch.no_grad():
        frames = torch.cat([decode(latents[i:i + batch]).float().cpu()
                            for i in range(0, len(latents), batch)])
    return rms(frames[1:] - frames[:-1])


def predicted_profile(decode: DecodeFn, latents: torch.Tensor, *, method: str = "auto",
                      batch: int = 16) -> torch.Tensor:
    """Predicted pixel-space speed along a path, from the Jacobian: RMS(J Δz) at each step's midpoint.
    Tensor[T,C,h,w] -> Tensor[T-1], in the same unit as ``path_profile``."""
    steps = latents[1:] - latents[:-1]
    mids = (latents[1:] + latents[:-1]) / 2
    return stretch(decode, mids, steps, method=method, batch=batch) * rms(steps).cpu()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two Tensor[N] (ranks, then Pearson; ties broken by order)."""
    def rank(x: torch.Tensor) -> torch.Tensor:
        r = torch.empty(len(x), dtype=torch.float64)
        r[x.argsort()] = torch.arange(len(x), dtype=torch.float64)
        return r - r.mean()
    ra, rb = rank(a.flatten()), rank(b.flatten())
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))
