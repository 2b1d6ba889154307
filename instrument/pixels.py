"""Pictures in [0, 1] -> uint8 pixels for the screen, files and the frame cache: the one conversion."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixels_to_uint8(pixels: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Pictures in [0, 1] -> uint8, channels last, on the pictures' device.

    ``pixels``: [B, 3, H, W] or [3, H, W], any float dtype. Values outside [0, 1] are clamped before a resize,
    so that the resize never spreads them. ``size``: (width, height) to resize to (bilinear; antialiased when
    either side shrinks), or None to keep H x W. Returns [B, h, w, 3] or [h, w, 3] uint8, contiguous.

    Plain tensor operations of fixed shape, so that ``torch.compile`` fuses them into a decoder's frame and a
    CUDA graph captures them; a caller that wants the host's copy adds ``.cpu().numpy()``.
    """
    single = pixels.dim() == 3
    x = (pixels[None] if single else pixels).float().clamp(0, 1)
    if size is not None and (x.shape[-1], x.shape[-2]) != tuple(size):
        width, height = size
        shrink = x.shape[-2] > height or x.shape[-1] > width
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    out = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return out[0] if single else out
