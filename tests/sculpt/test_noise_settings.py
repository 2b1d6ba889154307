"""Seeded, playable noise and the settings that key a sculpt."""

from __future__ import annotations

import pytest
import torch

from instrument.latent.anchors import seed_latent
from instrument.sculpt import SculptResult, SculptSettings, noise_at

SHAPE = (4, 8, 8)


def test_noise_is_seeded_and_standard():
    a, b = noise_at(7, 0.0, SHAPE), noise_at(7, 0.0, SHAPE)
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert not torch.equal(a, noise_at(8, 0.0, SHAPE))
    big = noise_at(1, 0.0, (4, 64, 64))
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05
    # noise seed N is not the anchor seed:N
    assert not torch.allclose(noise_at(3, 0.0, SHAPE), seed_latent(3, "sd15", (64, 64)))


def test_noise_mix_drifts_from_one_seed_to_the_next():
    start, end = noise_at(4, 0.0, SHAPE), noise_at(5, 0.0, SHAPE)
    assert torch.equal(noise_at(4, 1.0, SHAPE), end)
    half = noise_at(4, 0.5, SHAPE)
    norms = [float(x.norm()) for x in (start, half, end)]
    assert min(norms[0], norms[2]) * 0.999 <= norms[1] <= max(norms[0], norms[2]) * 1.001  # stays noise-sized
    near = noise_at(4, 0.01, SHAPE)
    assert float((near - start).norm()) < 0.05 * norms[0]  # a small turn, a small change
    with pytest.raises(ValueError, match="noise_mix"):
        noise_at(4, 1.5, SHAPE)


def test_settings_are_hashable_keys_and_round_trip():
    a = SculptSettings(strength=0.5, steps=4, noise_seed=2, prompts=("a marble statue",))
    b = SculptSettings(strength=0.5, steps=4, noise_seed=2, prompts=("a marble statue",))
    assert a == b and hash(a) == hash(b) and len({a, b, SculptSettings()}) == 2
    assert SculptSettings.from_json(a.to_json()) == a and a.key() == b.key()
    assert not SculptSettings().active and a.active and a.prompted and not SculptSettings().prompted


@pytest.mark.parametrize("bad", [dict(strength=1.5), dict(steps=0), dict(steps=9), dict(steps=2.0),
                                 dict(noise_seed=-1), dict(guidance=0.5), dict(prompts=()),
                                 dict(noise_mix=-0.1)])
def test_settings_refuse_bad_values(bad):
    with pytest.raises(ValueError):
        SculptSettings(**bad)


def test_settings_from_params_clamp():
    s = SculptSettings.from_params({"sculpt": 1.7, "steps": 11.6, "noise_seed": 3.2, "noise_mix": -1,
                                    "guidance": 0.2, "prompt_mix": 0.25}, prompts=("x", "y"))
    assert s == SculptSettings(strength=1.0, steps=8, noise_seed=3, noise_mix=0.0, guidance=1.0,
                               prompt_mix=0.25, prompts=("x", "y"))
    assert SculptSettings.from_params({}) == SculptSettings()
    with pytest.raises(ValueError, match="unknown"):
        SculptSettings.from_json({"strength": 0.5, "colour": 1})


def test_result_view():
    x0s, xts = torch.arange(3.0)[:, None], -torch.arange(3.0)[:, None]
    result = SculptResult(x0s[-1], x0s, xts, SculptSettings(strength=1, steps=3))
    assert result.view(0) is result.latent
    assert float(result.view(1)) == 0 and float(result.view(2, noisy=True)) == -1
    assert float(result.view(9)) == 2  # beyond the last step: the last step
