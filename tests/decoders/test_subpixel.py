"""decoders.subpixel: the folded upsampling computes what the decoder does and leaves the decoder alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from instrument.decoders import random_autoencoder
from instrument.decoders.subpixel import SubpixelUpsampleConv, fold_upsampling


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 5, 7, 4), (2, 3, 1, 6), (1, 8, 16, 16)])
def test_one_pair_equals_upsample_then_conv(bias, shape):
    gen = torch.Generator().manual_seed(sum(shape))
    conv = nn.Conv2d(shape[1], 6, 3, padding=1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        if bias:
            conv.bias.copy_(torch.randn(6, generator=gen))
    x = torch.randn(shape, generator=gen)
    want = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    got = SubpixelUpsampleConv(conv)(x)
    assert got.shape == want.shape == (shape[0], 6, 2 * shape[2], 2 * shape[3])
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def count_folded(module: nn.Module) -> int:
    return sum(isinstance(m, SubpixelUpsampleConv) for m in module.modules())


def tiny_diffusers_decoder() -> nn.Module:
    """diffusers' AutoencoderTiny decoder, small, from a config (its upsampling is nn.Upsample + conv)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    return AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).decoder.eval()


@pytest.mark.parametrize("arch", ["taesd", "kl", "diffusers-tiny"])
def test_whole_decoders_fold_and_agree(arch):
    if arch == "diffusers-tiny":
        module = tiny_diffusers_decoder()
    else:
        module = random_autoencoder(arch, device="cpu", dtype="fp32").decoder_module
    z = torch.randn(1, 4, 6, 8)  # 48x64 pixels
    before = {k: v.clone() for k, v in module.state_dict().items()}
    folded = fold_upsampling(module)
    assert count_folded(folded) >= 2 and count_folded(module) == 0  # the decoder itself is untouched
    assert module.state_dict().keys() == before.keys()
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items())
    shared = {p.data_ptr() for p in module.parameters()}
    assert {p.data_ptr() for p in folded.parameters()} <= shared  # parameters shared, not copied
    with torch.no_grad():
        want, got = module(z), folded(z)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4 * float(want.abs().max())), (got - want).abs().max()


def test_real_taef2_decoder_agrees(taef2):
    folded = fold_upsampling(taef2.decoder_module)
    assert count_folded(folded) == 3
    z = torch.randn(1, *taef2.latent_shape((128, 128)), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = taef2.decoder_module(z), folded(z)
    assert (got - want).abs().max() < 1e-4


def test_leaves_other_layers_alone():
    net = nn.Sequential(
        nn.Upsample(scale_factor=3), nn.Conv2d(2, 2, 3, padding=1),  # not 2x
        nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(2, 2, 3, padding=1),  # not nearest
        nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, padding=1, stride=2),  # strided
        nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 5, padding=2),  # 5x5
        nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, padding=1),  # this one
    )
    folded = fold_upsampling(net)
    assert count_folded(folded) == 1 and len(folded) == len(net) - 1
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)
    plain = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU())
    assert fold_upsampling(plain) is plain  # nothing to fold: the module itself
