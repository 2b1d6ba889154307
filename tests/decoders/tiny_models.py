"""Tiny randomly initialised diffusers autoencoders for the decoder tests."""

from __future__ import annotations

import torch


def tiny_kl(levels: int = 4):
    """A randomly initialised AutoencoderKL with few channels (8x downscale when levels=4)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    widths = (8, 8, 16, 16)[:levels] if levels == 4 else (8, 16)
    return AutoencoderKL(
        block_out_channels=widths,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
    ).eval()


def tiny_taesd():
    """A randomly initialised AutoencoderTiny (diffusers' TAESD) with few channels."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ).eval()
