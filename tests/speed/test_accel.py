"""accel.FastDecoder gives the plain decode's picture (CPU; CUDA too where present), in every mode."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from instrument.accel import AccelOptions, FastDecoder, make_frame_fn, options_from_config
from instrument.config import Config
from instrument.decoders import Autoencoder, NonFiniteDecode, get_family, random_autoencoder

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def reference(ae, latent: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
    """Plain path in fp32: Autoencoder.decode, resize, uint8."""
    with torch.no_grad():
        x = ae.decode(latent[None]).float()
        if tuple(x.shape[-2:]) != out_hw:
            x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
        return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def close(a: np.ndarray, b: np.ndarray, tol: int) -> bool:
    return a.shape == b.shape and a.dtype == np.uint8 and int(np.abs(a.astype(int) - b).max()) <= tol


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ["taesd", "kl"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("subpixel", [False, True])
def test_frame_equals_plain_decode(device, arch, channels_last, subpixel):
    ae = random_autoencoder(arch, device=device, dtype="fp32")
    latent = torch.randn(ae.latent_shape((64, 64)))
    want = reference(ae, latent, (64, 64))
    fd = FastDecoder(ae, (64, 64), AccelOptions(channels_last=channels_last, subpixel=subpixel))
    try:
        got = fd(latent)
        assert close(got, want, 1), np.abs(got.astype(int) - want).max()
        assert got.flags.c_contiguous and fd.frames == 1
        assert ("subpixel" in fd.describe()) == subpixel
        # The plain decode is as it was (channels_last changes the shared weights' layout: rounding only).
        assert close(reference(ae, latent, (64, 64)), want, 1 if channels_last else 0)
    finally:
        fd.close()


@pytest.mark.parametrize("device", DEVICES)
def test_resize_on_device_and_two_phase(device):
    ae = random_autoencoder("taesd", device=device, dtype="fp32")
    latents = [torch.randn(ae.latent_shape((64, 64))) for _ in range(2)]
    fd = FastDecoder(ae, (40, 32), AccelOptions(background=device == "cpu"), size=(64, 64))
    try:
        fd.launch(latents[0])
        fd.launch(latents[1].to(device))
        assert fd.in_flight == 2
        with pytest.raises(RuntimeError):
            fd.launch(latents[0])  # two in flight at most
        first = fd.collect()
        with pytest.raises(RuntimeError, match="in flight"):
            fd(latents[0])  # (it would get the frame in flight)
        second = fd.collect()
        assert not fd.ready() and fd.in_flight == 0
        for got, z in [(first, latents[0]), (second, latents[1])]:
            assert got.shape == (32, 40, 3)
            assert close(got, reference(ae, z, (32, 40)), 2)
        batch = fd.decode_batch(torch.stack(latents))
        assert batch.shape == (2, 32, 40, 3)
        assert close(batch[1], second, 2)
    finally:
        fd.close()


def test_background_decode_does_not_block_launch():
    ae = random_autoencoder("taesd", device="cpu", dtype="fp32")
    fd = FastDecoder(ae, (64, 64), AccelOptions(background=True))
    try:
        fd.launch(torch.randn(ae.latent_shape((64, 64))))
        for _ in range(2000):
            if fd.ready():
                break
            time.sleep(0.005)
        assert fd.ready()
        time.sleep(1.0)  # collected late: the caller's delay is not the decoder's time
        assert fd.collect().shape == (64, 64, 3)
        assert 0 < fd.device_seconds < 0.9
    finally:
        fd.close()


class NaNInHalf(nn.Module):
    """A decoder that overflows in reduced precision only: stands in for fp16 trouble."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3 * 64, 1)
        self.up = nn.PixelShuffle(8)

    def forward(self, x):
        y = self.up(self.conv(x))
        if x.dtype != torch.float32:
            y = y * float("nan")
        return y


def test_non_finite_frame_falls_back_to_fp32():
    ae = Autoencoder(NaNInHalf(), None, family=get_family("sd15"), label="nan test", arch="taesd",
                     dtype=torch.bfloat16)
    latent = torch.randn(4, 8, 8)
    fd = FastDecoder(ae, (64, 64), AccelOptions())
    frame = fd(latent)
    assert fd.fallbacks == 1 and ae.dtype == torch.float32 and "fallback" in fd.describe()
    assert close(frame, reference(ae, latent, (64, 64)), 1)
    assert close(fd(latent), frame, 0)  # later frames take the fp32 path directly
    assert fd.fallbacks == 1


def decode_threads() -> int:
    return sum(t.name == "cpu-decode" for t in threading.enumerate())


def test_fall_back_stops_the_decode_thread():
    """A non-finite frame from the CPU decode thread: the frame is decoded again in fp32, the thread stops,
    and later frames are made in the caller's thread."""
    ae = Autoencoder(NaNInHalf(), None, family=get_family("sd15"), label="nan test", arch="taesd",
                     dtype=torch.bfloat16)
    latent = torch.randn(4, 8, 8)
    before = decode_threads()
    fd = FastDecoder(ae, (64, 64), AccelOptions(background=True))
    try:
        assert fd.asynchronous
        fd.launch(latent)
        assert decode_threads() == before + 1
        frame = fd.collect()
        assert fd.fallbacks == 1 and not fd.asynchronous and decode_threads() == before
        assert close(frame, reference(ae, latent, (64, 64)), 1)
        fd.launch(latent)
        assert fd.ready() and close(fd.collect(), frame, 0) and fd.fallbacks == 1
    finally:
        fd.close()


def test_close_stops_the_decode_thread_and_frames_still_come():
    ae = random_autoencoder("taesd", device="cpu", dtype="fp32")
    latent = torch.randn(ae.latent_shape((64, 64)))
    before = decode_threads()
    fd = FastDecoder(ae, (64, 64), AccelOptions(background=True))
    want = fd(latent)
    fd.launch(latent)  # dropped by close()
    fd.close()
    assert decode_threads() == before and fd.in_flight == 0 and not fd.asynchronous
    assert close(fd(latent), want, 0)


def test_options_from_config():
    cfg = Config(compile="off", cuda_graphs="on", channels_last="off", prefetch=3)
    opts = options_from_config(cfg, "cpu", "taesd")
    assert opts == AccelOptions(channels_last=False, compile="off", cuda_graphs=False, prefetch=3,
                                background=True)  # no CUDA graphs off CUDA
    assert options_from_config(Config(), "cuda", "kl").compile == "default"
    assert options_from_config(Config(), "cuda", "kl").cuda_graphs
    with pytest.raises(ValueError, match="compile"):
        options_from_config(Config(compile="fastest"), "cpu", "taesd")
    with pytest.raises(ValueError, match="channels_last"):
        options_from_config(Config(channels_last="maybe"), "cpu", "taesd")
    ae = random_autoencoder("taesd", device="cpu", dtype="fp32")
    fd = make_frame_fn(ae, (32, 32), Config(size=(64, 64)))
    assert fd.latent_shape == (4, 8, 8) and fd.out_size == (32, 32)
    fd.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("arch", ["taesd", "kl"])
def test_cuda_default_path_compiled_and_graphed(arch):
    """The CUDA default (compile + our CUDA graph, fp16) against the plain fp16 decode."""
    ae = random_autoencoder(arch, device="cuda", dtype="fp16")
    latents = [torch.randn(ae.latent_shape((128, 128))) for _ in range(3)]
    wants = [reference(ae, z, (96, 96)) for z in latents]
    fd = make_frame_fn(ae, (96, 96), Config(size=(128, 128)))
    try:
        assert fd.options.cuda_graphs and fd.options.compile == "default"
        for z, want in zip(latents, wants, strict=True):
            got = fd(z)
            assert close(got, want, 3), np.abs(got.astype(int) - want).max()
        fd.launch(latents[0])
        fd.launch(latents[1])
        assert close(fd.collect(), wants[0], 3) and close(fd.collect(), wants[1], 3)
        assert fd.decode_batch(torch.stack(latents)).shape == (3, 96, 96, 3)
        assert 0 < fd.device_seconds < 1  # timed on the device (CUDA events)
    finally:
        fd.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_sums_a_mix_as_the_latent():
    """A Mix launched into the CUDA graph gives the picture of its latent; plain latents in between (from the
    CPU and the GPU) still decode exactly as before; a non-finite mix falls back to the plain path."""
    from instrument.latent.fast import FastLatents
    from instrument.performance import Coords

    ae = random_autoencoder("taesd", device="cuda", dtype="fp16")
    fd = make_frame_fn(ae, (64, 64), Config(size=(64, 64)))
    anchors = torch.randn(4, *ae.latent_shape((64, 64)), device="cuda")
    fast = FastLatents(anchors, seed=2)
    try:
        assert fd.options.cuda_graphs
        steps = [Coords("walk", s, noise=0.3, walk_t=3 * s) for s in (0.1, 0.12, 0.4, 0.41, 0.9)]
        steps += [Coords("slerp", s) for s in (0.0, 0.5, 0.95)]
        for coords in steps:
            mix = fast.mix(coords)
            latent = mix.latent()
            got = fd(mix)
            assert close(got, fd(latent), 1) and close(got, reference(ae, latent, (64, 64)), 3), coords
            assert close(got, fd(latent.cpu()), 1)
        fd.launch(fast.mix(steps[0]))
        fd.launch(fast.mix(steps[-1]))
        assert close(fd.collect(), reference(ae, fast(steps[0]), (64, 64)), 3)
        assert close(fd.collect(), reference(ae, fast(steps[-1]), (64, 64)), 3)
        poisoned = fast.mix(steps[2])
        poisoned = poisoned._replace(weights=(float("nan"),) + poisoned.weights[1:])
        with pytest.raises(NonFiniteDecode):
            fd(poisoned)  # the fp32 fallback of a NaN latent: an error, never a NaN picture
    finally:
        fd.close()


def test_pipeline_sums_mixes_in_its_rows():
    """A mix pipeline's rows: vectors copied once and reused, a plain latent as row 0, rows a smaller mix
    leaves behind weighted 0. (The same code runs inside the CUDA graph; here eagerly on the CPU.)"""
    from instrument.accel.pipeline import Pipeline
    from instrument.latent.fast import MIX_TERMS, FastLatents
    from instrument.performance import Coords

    shape = (4, 8, 8)
    anchors = torch.randn(3, *shape, generator=torch.Generator().manual_seed(5))
    fast = FastLatents(anchors, seed=7)
    pipe = Pipeline(lambda z: (z * 1.0, torch.isfinite(z).all()), 1, shape, torch.device("cpu"),
                     graphs=False, terms=MIX_TERMS)
    weights, staging = torch.empty(MIX_TERMS), torch.empty(shape)
    copies = 0

    def run(source) -> torch.Tensor:
        pipe.load(source, weights, staging)
        return pipe.run()[0][0]

    plain = torch.randn(shape)
    sources = [Coords("walk", 0.3, noise=0.4, walk_t=2.5), Coords("walk", 0.35, noise=0.4, walk_t=2.6),
               plain, Coords("slerp", 0.35), Coords("slerp", 0.0),
               Coords("slerp", 0.8, noise=0.2, walk_t=9.1), plain]
    for source in sources:
        if isinstance(source, torch.Tensor):
            assert torch.equal(run(source), source)  # exact: weight 1, the rest 0
            continue
        mix = fast.mix(source)
        rows_before = list(pipe.rows)
        got = run(mix)
        assert torch.allclose(got, mix.latent(), rtol=1e-6, atol=1e-6), source
        copies += sum(a is not b for a, b in zip(rows_before, mix.vectors, strict=False))
    assert copies < sum(len(fast.mix(c).vectors) for c in sources if isinstance(c, Coords))  # rows reused


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_full_decoder_plays_through_its_pipeline():
    """``decoder: full`` on CUDA: loop.decoding.Decoding uses the full decoder's compiled, graphed, sub-pixel
    pipeline (as play and render build it), and its frames match the plain fp16 decode."""
    from instrument.loop.decoding import Decoding, full_pipeline
    from instrument.performance import Coords

    fast = random_autoencoder("taesd", device="cuda", dtype="fp16")
    full = random_autoencoder("kl", device="cuda", dtype="fp16")
    config = Config(size=(128, 128))
    full_frames = full_pipeline(full, (128, 128), config)
    assert full_frames.options.subpixel and full_frames.options.cuda_graphs
    anchors = torch.randn(3, *full.latent_shape((128, 128)), device="cuda")
    decoding = Decoding(anchors, fast, full, out_size=(128, 128), seed=0, full_frames=full_frames)
    plain = Decoding(anchors, fast, full, out_size=(128, 128), seed=0)
    before = full_frames.frames  # (its warm-up made one)
    try:
        for s in (0.1, 0.5, 0.8):
            coords = Coords("slerp", s)
            got, exact = decoding.frame(coords, "full")
            assert exact and close(got, plain.render(coords, "full"), 3)
        assert full_frames.frames == before + 3
    finally:
        full_frames.close()
