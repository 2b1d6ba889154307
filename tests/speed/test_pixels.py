"""pixels_to_uint8: the one conversion of [0, 1] pictures to uint8 frames."""

from __future__ import annotations

import pytest
import torch

from instrument.pixels import pixels_to_uint8


def test_values_round_and_clamp():
    pixels = torch.tensor([-0.5, 0.0, 0.5 / 255, 0.6 / 255, 0.5, 1.0, 1.5, float("inf")]).reshape(1, 1, 8)
    out = pixels_to_uint8(pixels.expand(3, 1, 8))
    assert out.dtype == torch.uint8 and out.shape == (1, 8, 3) and out.is_contiguous()
    assert out[0, :, 0].tolist() == [0, 0, 0, 1, 128, 255, 255, 255]  # round half to even at 0.5


def test_batch_layout_and_resize():
    pixels = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    same = pixels_to_uint8(pixels)
    assert same.shape == (2, 16, 24, 3)
    assert torch.equal(same[1, 5, 7], (pixels[1, :, 5, 7] * 255).round().to(torch.uint8))
    small = pixels_to_uint8(pixels, (12, 8))  # (width, height)
    assert small.shape == (2, 8, 12, 3)
    flat = torch.full((3, 16, 24), 0.25)
    assert torch.equal(pixels_to_uint8(flat, (48, 32)), torch.full((32, 48, 3), 64, dtype=torch.uint8))


def test_clamp_comes_before_the_resize():
    """An out-of-range value must not bleed into its neighbours when the picture shrinks."""
    pixels = torch.zeros(3, 4, 4)
    pixels[:, 0, 0] = 100.0
    out = pixels_to_uint8(pixels, (2, 2))
    assert int(out[0, 0, 0]) <= 255 // 4 + 1 and int(out[1, 1, 0]) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_the_device():
    pixels = torch.rand(1, 3, 8, 8, device="cuda")
    out = pixels_to_uint8(pixels, (4, 4))
    host = pixels_to_uint8(pixels.cpu(), (4, 4))
    assert out.device.type == "cuda" and int((out.cpu().int() - host.int()).abs().max()) <= 1
