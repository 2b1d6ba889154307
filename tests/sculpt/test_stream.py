"""The stream batch (several frames' sculpt steps in one UNet call) against the Sculptor one frame at a time,
with tiny random models loaded through the user's paths, on the CPU (inline: the steps in the caller's
thread, as a GPU queues them)."""

from __future__ import annotations

import pytest
import torch

from instrument.sculpt import SculptOptions, Sculptor, SculptSettings, StreamBatch, load_sculpt_model

SHAPE = (4, 8, 8)
SYNC = SculptOptions(background=False)
STREAM = SculptOptions(background=False, stream=True)
PROMPTS = ("a marble statue", "marble")


def latent_for(seed: int) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def count_calls(unet) -> list[int]:
    """The batch size of every UNet call from now on."""
    calls: list[int] = []
    unet.register_forward_hook(lambda module, args, output: calls.append(int(args[0].shape[0])))
    return calls


@pytest.fixture
def turbo(models):
    return load_sculpt_model(str(models / "tiny-turbo"), device="cpu")


def assert_same_sculpt(got, want) -> None:
    """The same sculpt, every step's latents included, up to the float rounding of a batched call."""
    assert got.settings == want.settings
    for a, b in ((got.latent, want.latent), (got.x0s, want.x0s), (got.xts, want.xts)):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_a_still_input_streams_to_its_sequential_sculpt_at_one_call_a_frame(turbo, tmp_path):
    settings = SculptSettings(strength=0.8, steps=3, noise_seed=2, noise_mix=0.25)
    latent = latent_for(0)
    want = Sculptor(turbo, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)(latent, settings)
    sculptor = Sculptor(turbo, SHAPE, options=STREAM, prompt_cache_dir=tmp_path)
    stream = StreamBatch(sculptor)
    calls = count_calls(turbo.unet)
    shown = []
    for n in range(7):
        job, tag = stream.push(latent, settings, n)
        shown.append(tag)
        assert_same_sculpt(sculptor.finish(job), want)
    assert shown == [0, 0, 0, 1, 2, 3, 4]  # a refill shows its frame; then 2 (k - 1) frames behind
    assert calls == [1, 1, 1] + [3] * 6  # the refill's 3 steps one call each; then one call of 3 a frame
    assert (stream.refills, stream.calls, stream.delay) == (1, 6, 2)


@pytest.mark.parametrize("guided", [False, True], ids=["turbo", "guided"])
def test_a_moving_input_shows_the_sculpt_of_frame_n_minus_k_plus_1_each_with_its_own_settings(
        models, tmp_path, guided):
    """Each row is its own frame's sculpt: strength, noise mix and prompt mix change every frame (the
    timesteps, coefficients, noise and embedding of every row differ), and nothing is flushed."""
    model = load_sculpt_model(str(models / ("tiny-sd" if guided else "tiny-turbo")), device="cpu")
    sequential = Sculptor(model, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)
    sculptor = Sculptor(model, SHAPE, options=STREAM, prompt_cache_dir=tmp_path)
    stream, k = StreamBatch(sculptor), 4
    frames = [(latent_for(n), SculptSettings(strength=0.5 + 0.06 * n, steps=k, noise_seed=1,
                                             noise_mix=0.1 * n, prompts=PROMPTS, prompt_mix=0.12 * n,
                                             guidance=3.0 + 0.5 * n if guided else 1.0))
              for n in range(9)]
    calls = count_calls(model.unet)
    for n, (latent, settings) in enumerate(frames):
        job, tag = stream.push(latent, settings, n)
        assert tag == max(0, n - k + 1)
        assert_same_sculpt(sculptor.finish(job), sequential(*frames[tag]))
    rows = 2 * k if guided else k  # (guidance: each row's empty prompt and its prompt, in one call)
    assert stream.refills == 1 and calls.count(rows) == len(frames) - 1


def test_changing_the_steps_or_guidance_flushes_and_the_next_frame_refills(models, tmp_path):
    model = load_sculpt_model(str(models / "tiny-sd"), device="cpu")
    sequential = Sculptor(model, SHAPE, options=SYNC, prompt_cache_dir=tmp_path)
    sculptor = Sculptor(model, SHAPE, options=STREAM, prompt_cache_dir=tmp_path)
    stream = StreamBatch(sculptor)
    two = SculptSettings(strength=0.7, steps=2, prompts=PROMPTS)
    played = [two] * 3 + [SculptSettings(strength=0.7, steps=3, prompts=PROMPTS)] * 3 \
        + [SculptSettings(strength=0.7, steps=3, prompts=PROMPTS, guidance=2.0)] * 2 \
        + [SculptSettings(strength=0.9, steps=3, prompts=PROMPTS, guidance=2.0)]
    shown, refills = [], []
    for n, settings in enumerate(played):
        job, tag = stream.push(latent_for(n), settings, n)
        shown.append(tag)
        refills.append(stream.refills)
        assert_same_sculpt(sculptor.finish(job), sequential(latent_for(tag), played[tag]))
    assert shown == [0, 0, 1, 3, 3, 3, 6, 6, 6]  # a flush shows the new frame at once, then refills
    assert refills == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # the strength alone rides in its row: no flush


def test_one_step_and_strength_zero_are_made_whole_and_flush(turbo, tmp_path):
    sculptor = Sculptor(turbo, SHAPE, options=STREAM, prompt_cache_dir=tmp_path)
    stream = StreamBatch(sculptor)
    two = SculptSettings(strength=0.7, steps=2)
    for n in range(3):
        stream.push(latent_for(n), two, n)
    assert stream.delay == 1
    latent = latent_for(9)
    job, tag = stream.push(latent, SculptSettings(strength=0.0, steps=2), 9)
    assert tag == 9 and sculptor.finish(job).latent is latent and stream.delay == 0
    job, tag = stream.push(latent, SculptSettings(strength=0.7, steps=1), 10)
    assert tag == 10 and stream.delay == 0 and sculptor.finish(job).x0s.shape[0] == 1


def test_the_cpu_sculpt_thread_cannot_stream(turbo, tmp_path):
    sculptor = Sculptor(turbo, SHAPE, options=SculptOptions(background=True), prompt_cache_dir=tmp_path)
    try:
        with pytest.raises(ValueError, match="stream batch"):
            StreamBatch(sculptor)
    finally:
        sculptor.close()


def test_warmup_runs_a_refill_and_a_batched_call_and_leaves_the_stream_empty(turbo, tmp_path):
    sculptor = Sculptor(turbo, SHAPE, options=STREAM, prompt_cache_dir=tmp_path)
    stream = StreamBatch(sculptor)
    calls = count_calls(turbo.unet)
    stream.warmup(3)
    assert calls == [1, 1, 1, 3] and (stream.delay, stream.refills, stream.calls) == (0, 0, 0)
    job, tag = stream.push(latent_for(1), SculptSettings(strength=0.6, steps=3), "first")
    assert tag == "first" and stream.refills == 1  # (played frames refill: nothing of the warm-up shows)


def test_the_bench_times_the_stream_batch_beside_its_baseline():
    from instrument.bench.sculpt import sculpt_checks, sculpt_kinds, sculpt_line, sculpt_table

    assert sculpt_kinds(4, gpu=True) == [False, True]
    assert sculpt_kinds(1, gpu=True) == sculpt_kinds(4, gpu=False) == [False]
    rows = [{"device": "cuda", "size": 512, "steps": 4, "fps": fps, "model": "m", "dtype": "fp16",
             "stream": stream, "sculpt": {"steps": 4, "unet_ms": unet, "decode_ms": 1.0, "overhead_ms": 0.3}}
            for fps, stream, unet in ((54.0, False, 17.0), (97.0, True, 8.9))]
    met = {c["check"]: c["met"] for c in sculpt_checks(rows)}
    assert met["cuda 512px sculpt 4 step(s): live frames/s"] is False
    assert met["cuda 512px sculpt 4 step(s) stream batch: live frames/s"] is True
    assert "stream batch (3 frames behind): 97.0 fps" in sculpt_line(rows[1])
    table = sculpt_table(rows)
    assert "| 4 | 54.0 |" in table[-3] and "| 4 stream batch | 97.0 |" in table[-2]
