"""The sampler's numbers against diffusers' own schedulers, with a real (tiny) UNet."""

from __future__ import annotations

import pytest
import torch
from tiny_sculpt import scheduler, tiny_unet

from instrument.sculpt.noise import noise_at
from instrument.sculpt.schedule import NoiseSchedule, step_table, timesteps
from instrument.sculpt.steps import StepRunner, make_step

SHAPE = (4, 8, 8)


def test_timesteps_trailing_like_sd_turbo():
    assert timesteps(1.0, 1) == [999]
    assert timesteps(1.0, 4) == [999, 749, 499, 249]
    assert timesteps(1.0, 3) == [999, 666, 332]  # diffusers' np.round(np.arange(1000, 0, -1000 / 3)) - 1
    assert timesteps(0.5, 2) == [499, 249]
    ts = timesteps(0.001, 8)
    assert all(t >= 0 for t in ts) and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError, match="strength"):
        timesteps(0.0, 1)


def run_steps(unet, schedule, sampler, strength, steps, latent, noise, emb):
    ts, coefs = step_table(schedule, sampler, strength, steps)
    step = make_step(unet, torch.float32, guided=False, channels_last=False)
    runner = StepRunner(step, (1, *SHAPE), tuple(emb.shape), coefs.shape[1], torch.device("cpu"),
                        torch.float32, graphs=False)
    with torch.no_grad():
        xts, x0s, finite = runner.run(latent[None], noise[None], emb, ts, coefs)
    assert bool(finite)
    return xts[:, 0], x0s[:, 0]


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [1, 4])
def test_ddim_steps_match_diffusers_euler(prediction, steps):
    """Strength 1: the same walk as diffusers' EulerDiscreteScheduler with trailing spacing (SD-Turbo's)."""
    unet = tiny_unet().requires_grad_(False)
    latent, noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5)), noise_at(3, 0.0, SHAPE)
    emb = torch.randn(1, 77, 64, generator=torch.Generator().manual_seed(6))
    euler = scheduler("euler")
    euler.register_to_config(prediction_type=prediction)
    euler.set_timesteps(steps)
    x = euler.add_noise(latent[None], noise[None], euler.timesteps[:1])
    with torch.no_grad():
        for t in euler.timesteps:
            out = unet(euler.scale_model_input(x, t), t, encoder_hidden_states=emb).sample
            x = euler.step(out, t, x).prev_sample
    schedule = NoiseSchedule(prediction_type=prediction)
    xts, x0s = run_steps(unet, schedule, "ddim", 1.0, steps, latent, noise, emb)
    assert [int(t) for t in euler.timesteps] == timesteps(1.0, steps)
    scale = x.abs().max()
    assert torch.allclose(x0s[-1], x[0], atol=1e-4 * scale), (x0s[-1] - x[0]).abs().max() / scale
    assert xts.shape == x0s.shape == (steps, *SHAPE)


def test_lcm_one_step_matches_diffusers_lcm():
    unet = tiny_unet().requires_grad_(False)
    latent, noise = torch.randn(SHAPE), noise_at(0, 0.0, SHAPE)
    emb = torch.randn(1, 77, 64)
    lcm = scheduler("lcm")
    lcm.set_timesteps(1)
    t = lcm.timesteps[0]
    assert int(t) == 999
    x = lcm.add_noise(latent[None], noise[None], lcm.timesteps[:1])
    with torch.no_grad():
        out = unet(x, t, encoder_hidden_states=emb).sample
    denoised = lcm.step(out, t, x).denoised
    _, x0s = run_steps(unet, NoiseSchedule(), "lcm", 1.0, 1, latent, noise, emb)
    assert torch.allclose(x0s[-1], denoised[0], atol=1e-4 * denoised.abs().max())


def test_first_step_starts_from_the_noised_latent():
    schedule = NoiseSchedule()
    ts, coefs = step_table(schedule, "ddim", 0.6, 3)
    ab = schedule.alphas_cumprod()[int(ts[0])]
    assert coefs[0, 0] == pytest.approx(float(ab) ** 0.5)
    assert coefs[0, 1] == pytest.approx(float(1 - ab) ** 0.5)
    assert torch.equal(coefs[1:, :2], torch.tensor([[1.0, 0.0]] * 2))  # later steps take x as it is
    assert coefs[-1, 8] == 1.0 and coefs[-1, 9] == 0.0  # the last step hands back the clean latent itself


def test_bad_scheduler_config():
    with pytest.raises(ValueError, match="prediction_type"):
        NoiseSchedule.from_config({"prediction_type": "sample"})
    assert NoiseSchedule.from_config({"_class_name": "PNDMScheduler", "beta_end": 0.012}) == NoiseSchedule()
