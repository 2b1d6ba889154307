"""Decoding behaviour: non-finite frames, the offline fallback, the procedural decoder, devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from instrument.config import Config
from instrument.decoders import (
    FAMILIES,
    Autoencoder,
    NonFiniteDecode,
    load_models,
    procedural_autoencoder,
    random_autoencoder,
)
from instrument.devices import resolve_device, resolve_dtype


class NaNInHalf(nn.Module):
    """Upsamples like a decoder; NaN whenever it runs in reduced precision (like SD's VAE in fp16)."""

    def __init__(self, always: bool = False):
        super().__init__()
        self.always = always
        self.weight = nn.Parameter(torch.ones(3, 4, 1, 1) * 0.1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = nn.functional.interpolate(nn.functional.conv2d(z, self.weight), scale_factor=8)
        if self.always or z.dtype != torch.float32:
            out = out * float("nan")
        return out


def nan_autoencoder(always: bool) -> Autoencoder:
    return Autoencoder(NaNInHalf(always), None, family=FAMILIES["sd15"], label="test", arch="kl",
                       device="cpu", dtype=torch.bfloat16)  # fmt: skip


def test_nan_in_half_falls_back_to_fp32():
    ae = nan_autoencoder(always=False)
    frame = ae.decode(torch.randn(1, 4, 4, 4))
    assert torch.isfinite(frame).all() and frame.shape == (1, 3, 32, 32)
    assert ae.dtype == torch.float32
    assert ae.decoder_module.weight.dtype == torch.float32
    assert torch.isfinite(ae.decode(torch.randn(1, 4, 4, 4))).all()


def test_always_nan_raises():
    ae = nan_autoencoder(always=True)
    with pytest.raises(NonFiniteDecode):
        ae.decode(torch.randn(1, 4, 4, 4))
    with pytest.raises(NonFiniteDecode):  # now in fp32: raises at once
        ae.decode(torch.randn(1, 4, 4, 4))


def test_wrong_latent_shape_is_a_clear_error():
    ae = random_autoencoder("taesd", device="cpu")
    with pytest.raises(ValueError, match=r"\[B, 4, h, w\]"):
        ae.decode(torch.randn(1, 16, 4, 4))


def test_offline_with_empty_cache_gives_procedural_decoder():
    fast, full = load_models(Config(offline=True, device="cpu"))
    assert full is None
    assert fast.arch == "procedural" and "procedural" in fast.label
    assert "madebyollin/taesd" in fast.notice and "--model" in fast.notice
    seed = torch.randn(1, *fast.latent_shape((128, 96)), generator=torch.Generator().manual_seed(0))
    frame = fast.decode(seed)
    assert frame.shape == (1, 3, 96, 128)
    assert frame.std() > 0.1  # colourful, not a flat field
    assert frame.mean(dim=(2, 3)).std() > 0.01 or frame.std(dim=(2, 3)).min() > 0.05  # colour, not grey


def test_procedural_decoder_is_smooth_and_deterministic():
    ae = procedural_autoencoder(device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)

    def largest_step(n: int) -> torch.Tensor:
        frames = ae.decode(torch.cat([a + t * (b - a) for t in torch.linspace(0, 1, n + 1)]))
        return (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3)).max()

    frames = ae.decode(torch.cat([a, b]))
    assert (frames[1] - frames[0]).abs().mean() > 0.1  # different seeds look different
    # Smooth: halving the step halves the largest change between frames (a jump would not shrink).
    coarse, fine = largest_step(10), largest_step(20)
    assert fine < 0.6 * coarse and fine < 0.15
    assert torch.equal(procedural_autoencoder(device="cpu", dtype=torch.float32).decode(a), frames[:1])
    latent = ae.encode(torch.rand(2, 3, 64, 64))  # images can become anchors
    assert latent.shape == (2, 4, 8, 8) and latent.dtype == torch.float32


def test_explicit_full_none_and_model_path(shared):
    config = Config(model=str(shared / "models" / "taef2_decoder.pth"), full_model="none", family="flux2",
                    device="cpu", offline=True)  # fmt: skip
    fast, full = load_models(config)
    assert fast.family.name == "flux2" and full is None and fast.notice is None


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.float16
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("fp8", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def test_load_models_uses_the_cached_default_offline(tmp_path):
    from tiny_models import tiny_taesd

    snapshot = tmp_path / "hf_home" / "hub" / "models--madebyollin--taesd" / "snapshots" / "0123abcd"
    tiny_taesd().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    fast, full = load_models(Config(offline=True, device="cpu"))
    assert fast.arch == "tiny" and fast.notice is None
    assert full is None  # the SD 1.5 VAE is not cached: no full decoder, no error
