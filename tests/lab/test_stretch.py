"""Stretch estimates against measured pixel change, the jvp/difference choice, and the bend's meaning."""

from __future__ import annotations

import logging

import torch

from instrument.lab import stretch as stretch_module
from instrument.lab.stretch import (
    bend,
    directional_derivative,
    path_profile,
    predicted_profile,
    random_directions,
    rms,
    spearman,
    stretch,
)
from instrument.latent.geometry import slerp


def test_spearman_is_rank_correlation():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert abs(spearman(x, x ** 3) - 1) < 1e-9  # monotonic, not linear
    assert abs(spearman(x, -x) + 1) < 1e-9
    assert abs(spearman(x, torch.tensor([2.0, 1.0, 4.0, 3.0, 5.0])) - 0.8) < 1e-9


def test_stretch_predicts_measured_change(ae, latents64):
    """120 short random steps from points on SLERPs between the shared pictures (64×64 decodes): the jvp
    estimate RMS(Jv)/RMS(v) ranks the steps like the measured RMS(D(z + εv) - D(z)) / (ε RMS(v))."""
    latents = latents64
    g = torch.Generator().manual_seed(7)
    n = 120
    i = torch.randint(0, 5, (n,), generator=g)
    j = (i + torch.randint(1, 5, (n,), generator=g)) % 5
    s = torch.rand(n, generator=g)
    z = torch.stack([slerp(latents[a], latents[b], float(t)) for a, b, t in zip(i, j, s, strict=True)])
    v = random_directions(z[0], n, seed=3, varied=True)  # unit RMS, channel and region scales vary
    eps = 0.05  # a short step: 5% of a latent's typical magnitude (std ≈ 1)
    predicted = stretch(ae.decode, z, v, method="jvp", batch=20)
    with torch.no_grad():
        measured = torch.cat([rms(ae.decode(z[k:k + 20] + eps * v[k:k + 20]) - ae.decode(z[k:k + 20])) / eps
                              for k in range(0, n, 20)])
    rho = spearman(predicted, measured)
    print(f"Spearman(predicted, measured) = {rho:.3f} over {n} steps")
    assert predicted.max() > 2 * predicted.min()  # the directions really probe different stretches
    assert rho >= 0.8


def test_difference_and_jvp_agree_and_auto_takes_the_difference_on_a_cpu(ae, latents64, caplog):
    z = latents64[:2]
    v = random_directions(z[0], 2, seed=1)
    jvp = stretch(ae.decode, z, v, method="jvp")
    fd = stretch(ae.decode, z, v, method="fd")
    assert torch.allclose(jvp, fd, rtol=0.05)

    class NoForwardAD(torch.autograd.Function):  # no setup_context: torch.func.jvp refuses it
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad

    refusing = lambda x: ae.decode(NoForwardAD.apply(x))  # noqa: E731
    stretch_module._warned_fallback = False
    with caplog.at_level(logging.WARNING):
        assert torch.equal(stretch(refusing, z, v), fd)  # "auto" on a CPU: never tries jvp
    assert "jvp unusable" not in caplog.text
    # Where jvp is tried and fails (a GPU decoder that refuses it), the difference takes over.
    assert not directional_derivative(lambda x: ae.decode(x.detach()), z, v, method="jvp").any()


def test_path_profile_matches_prediction(ae, latents64):
    path = slerp(latents64[0], latents64[3], torch.linspace(0, 1, 9))
    measured = path_profile(ae.decode, path)
    predicted = predicted_profile(ae.decode, path)
    assert measured.shape == predicted.shape == (8,)
    assert torch.allclose(measured, predicted, rtol=0.15)


def test_bend_is_zero_straight_on_and_one_turning_back():
    a, b = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    middle = (a + b) / 2
    assert float(bend(a, middle, b)) == 0.0  # the middle frame is the blend of its neighbours
    assert abs(float(bend(a, b, a)) - 1.0) < 1e-6  # there and straight back
    uneven = a + 0.9 * (b - a)  # straight on, but most of the change in the first step
    red, green = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    red[:, 0], green[:, 1] = 1.0, 1.0
    values = bend(torch.cat([a, a, a]), torch.cat([uneven, red, a]), torch.cat([b, red + green, a]))
    assert 0 < float(values[0]) < 1
    assert abs(float(values[1]) - 2 ** 0.5 / 2) < 1e-6  # a right-angle turn
    assert float(values[2]) == 0.0  # a still picture: no change, no bend
