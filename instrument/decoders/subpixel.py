"""Nearest 2x upsampling + 3x3 convolution, computed as one 2x2 convolution at the low resolution.

Both decoders double their resolution with "repeat every pixel 2x2, then a 3x3 convolution (padding 1)"
(TAESD: ``nn.Upsample`` + ``Conv2d`` in a ``Sequential``; the KL VAE: diffusers' ``Upsample2D``). Each of the
four output pixels that one input pixel becomes sees only 2x2 distinct input pixels through the 3x3 kernel, so
the same function is one 2x2 convolution over the padded low-resolution input with four kernels (one per
output phase, each a sum of the 3x3 kernel's taps), followed by interleaving the phases: 16 multiply-adds
per input pixel and channel pair instead of 36. In the SD 1.5 VAE the upsampling convolutions are about a
quarter of the decoder's work (two of them run at 512 and 256 channels on 256x256 and 512x512 pixels).

Rows (and likewise columns): output row ``2i + a`` reads upsampled rows ``2i + a - 1 .. 2i + a + 1``, which
are input rows ``i - 1, i, i`` for ``a = 0`` and ``i, i, i + 1`` for ``a = 1``; so phase 0's taps are
``(k0, k1 + k2)`` on rows ``(i - 1, i)`` and phase 1's ``(k0 + k1, k2)`` on rows ``(i, i + 1)``.

``fold_upsampling(module)`` returns a module that computes what ``module`` computes with every such pair
replaced; it shares every other submodule and parameter with ``module``, which is left as it was.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

# PHASE_TAPS[a] (2 x 3): which of the 3x3 kernel's rows add up into phase a's two taps.
PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                           [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


class SubpixelUpsampleConv(nn.Module):
    """``conv(interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3, padding-1, stride-1 ``conv``.

    [B, C_in, h, w] -> [B, C_out, 2h, 2w], equal to the original within rounding. The folded kernels are
    summed in float32 from the convolution's weights, then kept in their dtype (a buffer: ``.to()`` moves it).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        weight = conv.weight.detach()
        c_out, c_in = weight.shape[:2]
        # phases[a, b, o, i, y, x] = sum over the 3x3 taps that land on tap (y, x) of phase (a, b)
        phases = torch.einsum("ayk,oikl,bxl->aboiyx", PHASE_TAPS.to(weight.device), weight.float(),
                              PHASE_TAPS.to(weight.device))
        self.register_buffer("weight", phases.reshape(4 * c_out, c_in, 2, 2).to(weight.dtype))
        bias = None if conv.bias is None else conv.bias.detach().repeat(4)
        self.register_buffer("bias", bias)
        self.out_channels = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # [B, 4 * C_out, h + 1, w + 1]: phase (a, b)'s output pixel (i, j) sits at (i + a, j + b)
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias)
        y = y.view(b, 2, 2, self.out_channels, h + 1, w + 1)
        rows = [torch.stack([y[:, a, c, :, a:a + h, c:c + w] for c in (0, 1)], dim=-1) for a in (0, 1)]
        return torch.stack(rows, dim=3).reshape(b, self.out_channels, 2 * h, 2 * w)


def _is_plain_3x3(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def _is_nearest_2x(up: nn.Module) -> bool:
    scale = up.scale_factor if isinstance(up, nn.Upsample) else None
    scale = scale if isinstance(scale, tuple) else (scale, scale)
    return isinstance(up, nn.Upsample) and up.mode == "nearest" and up.size is None \
        and tuple(float(s or 0) for s in scale) == (2.0, 2.0)


def _diffusers_upsampler_conv(module: nn.Module) -> nn.Conv2d | None:
    """The 3x3 conv of a diffusers ``Upsample2D`` that interpolates (nearest 2x) then convolves, else None."""
    if type(module).__name__ != "Upsample2D":
        return None
    conv = getattr(module, "conv", None)
    plain = (getattr(module, "use_conv", False) and getattr(module, "interpolate", False)
             and not getattr(module, "use_conv_transpose", True) and getattr(module, "norm", None) is None)
    return conv if plain and _is_plain_3x3(conv) else None


def fold_upsampling(module: nn.Module) -> nn.Module:
    """``module``, or a structural copy of it in which every nearest-2x-upsample + 3x3-conv pair is a
    ``SubpixelUpsampleConv``. Unchanged submodules and all parameters are shared, not copied."""
    conv = _diffusers_upsampler_conv(module)
    if conv is not None:
        return SubpixelUpsampleConv(conv)
    if type(module) is nn.Sequential:  # a subclass may have a forward of its own
        children = list(module)
        out: list[nn.Module] = []
        i = 0
        while i < len(children):
            if i + 1 < len(children) and _is_nearest_2x(children[i]) and _is_plain_3x3(children[i + 1]):
                out.append(SubpixelUpsampleConv(children[i + 1]))
                i += 2
            else:
                out.append(fold_upsampling(children[i]))
                i += 1
        if len(out) == len(children) and all(a is b for a, b in zip(out, children, strict=True)):
            return module
        return nn.Sequential(*out)
    folded = {name: fold_upsampling(child) for name, child in module.named_children()}
    if all(folded[name] is child for name, child in module.named_children()):
        return module
    clone = copy.copy(module)  # the same attributes and parameters; a children table of its own
    clone._modules = dict(module._modules)
    clone._modules.update(folded)
    return clone
