"""The sculpt stage with tiny random models loaded through the user's paths, on the CPU."""

from __future__ import annotations

import threading

import pytest
import torch

from instrument.sculpt import (
    NonFiniteSculpt,
    SculptOptions,
    Sculptor,
    SculptSettings,
    load_sculpt_model,
    noise_at,
)
from instrument.sculpt.schedule import NoiseSchedule, timesteps

SHAPE = (4, 8, 8)
SYNC = SculptOptions(background=False)


def latent_for(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def turbo(models):
    return load_sculpt_model(str(models / "tiny-turbo"), device="cpu")


def count_calls(unet) -> list[int]:
    """The batch size of every UNet call from now on."""
    calls: list[int] = []
    unet.register_forward_hook(lambda module, args, output: calls.append(int(args[0].shape[0])))
    return calls


@pytest.mark.parametrize("options", [SYNC, SculptOptions(background=True)], ids=["sync", "background"])
def test_strength_zero_returns_the_input_itself(turbo, tmp_path, options):
    calls = count_calls(turbo.unet)
    sculptor = Sculptor(turbo, SHAPE, family="sd15", options=options, prompt_cache_dir=tmp_path)
    try:
        latent = latent_for()
        job = sculptor.begin(latent, SculptSettings(strength=0.0, steps=4, noise_seed=3))
        assert sculptor.ready(job)
        result = sculptor.finish(job)
        assert result.latent is latent and result.x0s.shape == (0, *SHAPE) and result.view(2) is latent
        assert calls == []
    finally:
        sculptor.close()


@pytest.mark.parametrize("steps", [1, 3, pytest.param(8, marks=pytest.mark.slow)])
def test_k_steps_give_k_snapshots(turbo, tmp_path, steps):
    calls = count_calls(turbo.unet)
    sculptor = Sculptor(turbo, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)
    latent = latent_for()
    settings = SculptSettings(strength=0.8, steps=steps, noise_seed=5, noise_mix=0.3)
    result = sculptor(latent, settings)
    assert result.x0s.shape == result.xts.shape == (steps, *SHAPE) and calls == [1] * steps
    assert torch.equal(result.latent, result.x0s[-1]) and bool(torch.isfinite(result.x0s).all())
    ab = NoiseSchedule().alphas_cumprod()[timesteps(0.8, steps)[0]].float()
    noised = ab.sqrt() * latent + (1 - ab).sqrt() * noise_at(5, 0.3, SHAPE)
    assert torch.allclose(result.xts[0], noised, atol=1e-5)
    assert not torch.allclose(result.latent, latent, atol=0.1)


def test_same_controls_give_the_same_latent_bit_for_bit(models, tmp_path):
    settings = SculptSettings(strength=0.7, steps=3, noise_seed=11, noise_mix=0.4)
    latent = latent_for(1)
    results = []
    for options in (SYNC, SculptOptions(background=True)):
        model = load_sculpt_model(str(models / "tiny-turbo"), device="cpu")
        sculptor = Sculptor(model, SHAPE, options=options, prompt_cache_dir=tmp_path)
        try:
            results.append(sculptor(latent, settings))
            results.append(sculptor(latent.clone(), SculptSettings.from_json(settings.to_json())))
        finally:
            sculptor.close()
    first = results[0]
    assert all(torch.equal(r.latent, first.latent) and torch.equal(r.xts, first.xts) for r in results)
    other = Sculptor(load_sculpt_model(str(models / "tiny-turbo"), device="cpu"), SHAPE, options=SYNC,
                     prompt_cache_dir=tmp_path)
    for changed in (dict(noise_seed=12), dict(noise_mix=0.5), dict(strength=0.71), dict(steps=2)):
        moved = SculptSettings(**{**settings.to_json(), "prompts": ("",), **changed})
        assert not torch.equal(other(latent, moved).latent, results[0].latent), changed


def test_a_batch_sculpts_each_frame_in_one_call_per_step(turbo, tmp_path):
    calls = count_calls(turbo.unet)
    sculptor = Sculptor(turbo, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)
    settings = SculptSettings(strength=0.6, steps=2)
    frames = torch.stack([latent_for(i) for i in range(3)])
    batch = sculptor(frames, settings)
    assert calls == [3, 3] and batch.latent.shape == (3, *SHAPE) and batch.x0s.shape == (2, 3, *SHAPE)
    for i in range(3):
        single = sculptor(frames[i], settings)
        assert torch.allclose(batch.latent[i], single.latent, atol=1e-4 * float(single.latent.abs().max()))


def test_a_dropped_cpu_job_stops_at_its_next_step(turbo, tmp_path):
    """The first UNet call blocks until the job is dropped; the job then makes no further call."""
    entered, release, calls = threading.Event(), threading.Event(), []

    def hold(module, args):
        calls.append(1)
        entered.set()
        release.wait(10)

    turbo.unet.register_forward_pre_hook(hold)
    sculptor = Sculptor(turbo, SHAPE, options=SculptOptions(background=True), prompt_cache_dir=tmp_path)
    try:
        assert sculptor.asynchronous
        job = sculptor.begin(latent_for(), SculptSettings(strength=1.0, steps=8))
        assert entered.wait(10) and not sculptor.ready(job)
        sculptor.drop(job)
        release.set()
        later = sculptor.finish(sculptor.begin(latent_for(), SculptSettings(strength=1.0, steps=2)))
        assert len(calls) == 1 + 2 and later.x0s.shape[0] == 2
        with pytest.raises(RuntimeError, match="dropped"):
            sculptor.finish(job)
    finally:
        sculptor.close()


def test_guidance_only_for_models_that_need_it_and_only_with_a_prompt(models, tmp_path):
    plain = load_sculpt_model(str(models / "tiny-sd"), device="cpu")
    assert not plain.distilled
    calls = count_calls(plain.unet)
    sculptor = Sculptor(plain, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)
    latent, prompt = latent_for(), ("a marble statue",)
    guided = sculptor(latent, SculptSettings(strength=0.9, steps=2, guidance=4.0, prompts=prompt))
    unguided = sculptor(latent, SculptSettings(strength=0.9, steps=2, guidance=1.0, prompts=prompt))
    sculptor(latent, SculptSettings(strength=0.9, steps=2, guidance=4.0))  # empty prompt: nothing to guide
    assert calls == [2, 2, 1, 1, 1, 1] and not torch.allclose(guided.latent, unguided.latent)

    turbo = load_sculpt_model(str(models / "tiny-turbo"), device="cpu")
    calls = count_calls(turbo.unet)
    Sculptor(turbo, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)(
        latent, SculptSettings(strength=0.9, steps=2, guidance=4.0, prompts=prompt))
    assert calls == [1, 1]  # distilled: guidance off


def test_prompts_condition_mix_and_are_cached_on_disk(models, tmp_path):
    latent = latent_for()
    first = Sculptor(load_sculpt_model(str(models / "tiny-turbo"), device="cpu"), SHAPE, options=SYNC,
                     prompt_cache_dir=tmp_path)
    empty = first(latent, SculptSettings(strength=0.9, steps=2))
    statue = first(latent, SculptSettings(strength=0.9, steps=2, prompts=("a marble statue",)))
    assert not torch.allclose(empty.latent, statue.latent)
    pair = ("", "a marble statue")
    at_start = first(latent, SculptSettings(strength=0.9, steps=2, prompts=pair, prompt_mix=0.0))
    at_end = first(latent, SculptSettings(strength=0.9, steps=2, prompts=pair, prompt_mix=1.0))
    between = first(latent, SculptSettings(strength=0.9, steps=2, prompts=pair, prompt_mix=0.5))
    assert torch.equal(at_start.latent, empty.latent) and torch.equal(at_end.latent, statue.latent)
    assert not torch.allclose(between.latent, empty.latent)
    assert not torch.allclose(between.latent, statue.latent)
    assert first.prompts.encoded == 2 and first.prompts.hits == 0

    second = Sculptor(load_sculpt_model(str(models / "tiny-turbo"), device="cpu"), SHAPE, options=SYNC,
                      prompt_cache_dir=tmp_path)
    again = second(latent, SculptSettings(strength=0.9, steps=2, prompts=("  a marble statue",)))
    assert torch.equal(again.latent, statue.latent)
    assert (second.prompts.hits, second.prompts.encoded, second.prompts.encoder_loaded) == (1, 0, False)


def test_fp16_overflow_falls_back_to_fp32(models, tmp_path, caplog):
    model = load_sculpt_model(str(models / "tiny-turbo"), device="cpu", dtype="fp16")
    with torch.no_grad():
        model.unet.conv_out.weight.mul_(1e4)  # activations beyond fp16's range; fine in fp32
    sculptor = Sculptor(model, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)
    result = sculptor(latent_for(), SculptSettings(strength=1.0, steps=2))
    assert bool(torch.isfinite(result.x0s).all()) and model.dtype == torch.float32 and sculptor.fallbacks == 1
    assert "fp32" in caplog.text and "fp32 fallback" in sculptor.describe()


def test_non_finite_in_fp32_raises_at_finish(turbo, tmp_path):
    with torch.no_grad():
        turbo.unet.conv_out.bias.fill_(float("nan"))
    sculptor = Sculptor(turbo, SHAPE, options=SculptOptions(background=True), prompt_cache_dir=tmp_path)
    try:
        job = sculptor.begin(latent_for(), SculptSettings(strength=0.5, steps=1))
        with pytest.raises(NonFiniteSculpt, match="fp32"):
            sculptor.finish(job)
    finally:
        sculptor.close()
