"""Latent geometry: endpoints, norms, stability at 0 and π, smoothness of loops and splines, walks, locks."""

import math

import pytest
import torch

from instrument.latent.geometry import (
    PATHS,
    add_offset,
    apply_locks,
    blend,
    lerp,
    lock_mask,
    path_point,
    path_velocity,
    random_walk,
    slerp,
    walk_offset,
)

SHAPE = (4, 6, 8)


def norms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1)


@pytest.fixture
def anchors() -> torch.Tensor:
    return torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(1))


def test_endpoints_are_exact(anchors):
    a, b = anchors[0], anchors[1]
    for f in (lerp, slerp):
        assert torch.equal(f(a, b, 0.0), a) and torch.equal(f(a, b, 1.0), b)
        ends = f(a, b, torch.tensor([0.0, 1.0]))
        assert torch.equal(ends[0], a) and torch.equal(ends[1], b)
    # Half precision in, half precision out, endpoints still exact.
    assert slerp(a.half(), b.half(), 0.3).dtype == torch.float16
    assert torch.equal(slerp(a.half(), b.half(), 0.0), a.half())


def test_slerp_keeps_equal_norms_and_interpolates_unequal_ones(anchors):
    a = anchors[0]
    b = anchors[1] * (a.norm() / anchors[1].norm())
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(norms(slerp(a, b, t)), a.norm().expand(11), rtol=1e-5)
    # lerp of independent latents shrinks in the middle; slerp does not.
    assert norms(lerp(a, b, t))[5] < 0.8 * a.norm()
    c = anchors[2] * 3
    expected = (1 - t) * a.norm() + t * c.norm()
    assert torch.allclose(norms(slerp(a, c, t)), expected, rtol=1e-5)


def test_slerp_near_zero_angle_is_finite_and_lerp_like(anchors):
    a = anchors[0]
    t = torch.linspace(0, 1, 7)
    for b in (a.clone(), a + 1e-6 * anchors[1], a * (1 + 1e-7)):
        out = slerp(a, b, t)
        assert torch.isfinite(out).all()
        assert torch.allclose(out, lerp(a, b, t), atol=1e-5)


def test_slerp_at_antipode_is_finite_keeps_norm_and_passes_orthogonally(anchors):
    a = anchors[0]
    t = torch.linspace(0, 1, 9)
    for b in (-a, -a + 1e-7 * anchors[1]):
        out = slerp(a, b, t)
        assert torch.isfinite(out).all()
        assert torch.allclose(norms(out), a.norm().expand(9), rtol=1e-4)
        mid = out[4].flatten()
        assert abs(float(mid @ a.flatten())) / float(a.norm() * mid.norm()) < 1e-3
    # Deterministic: the same great circle every call.
    assert torch.equal(slerp(a, -a, 0.5), slerp(a, -a, 0.5))
    # Just inside the blend zone and just outside it, the result hardly moves (no jump at the threshold).
    eps = anchors[1].flatten() - (anchors[1].flatten() @ a.flatten()) / a.norm() ** 2 * a.flatten()
    eps = eps.reshape(SHAPE) / eps.norm() * a.norm()
    near = [slerp(a, -a * math.cos(d) + eps * math.sin(d), 0.5) for d in (0.9999e-3, 1.0001e-3)]
    assert (near[0] - near[1]).norm() < 1e-2 * a.norm()


def test_blend_preserves_norm_and_matches_batched(anchors):
    w = torch.tensor([0.2, 0.3, 0.5, 0.0, 0.0])
    out = blend(anchors, w)
    expected = float((w * norms(anchors)).sum())
    assert out.norm().item() == pytest.approx(expected, rel=1e-5)
    assert blend(anchors, w, preserve_norm=False).norm() < out.norm()
    # Unnormalised weights mean the same thing.
    assert torch.allclose(blend(anchors, w * 4), out, atol=1e-5)
    assert torch.allclose(blend(anchors, torch.eye(5)), anchors, atol=1e-5)
    ws = torch.rand(6, 5, generator=torch.Generator().manual_seed(2))
    batch = blend(anchors, ws)
    assert batch.shape == (6, *SHAPE)
    for k in range(6):
        assert torch.allclose(batch[k], blend(anchors, ws[k]), atol=1e-5)


@pytest.mark.parametrize("kind", PATHS)
def test_paths_hit_anchors_and_batch_like_single_points(anchors, kind):
    n = len(anchors)
    knots = torch.arange(n) / (n if kind == "loop" else n - 1)
    at = path_point(anchors, knots, kind)
    assert torch.allclose(at, anchors, atol=1e-5)
    assert torch.equal(path_point(anchors, 0.0, kind), anchors[0])
    s = torch.rand(7, generator=torch.Generator().manual_seed(3))
    batch = path_point(anchors, s, kind)
    assert batch.shape == (7, *SHAPE) and torch.isfinite(batch).all()
    for k in range(7):
        assert torch.allclose(batch[k], path_point(anchors, float(s[k]), kind), atol=1e-5)


def test_open_paths_end_at_the_last_anchor(anchors):
    for kind in ("lerp", "slerp", "spline"):
        assert torch.allclose(path_point(anchors, 1.0, kind), anchors[-1], atol=1e-6)


def test_loop_closes_with_a_continuous_derivative(anchors):
    anchors = anchors.double()  # float64 so that fine finite differences are meaningful
    h = 1e-5
    assert torch.allclose(path_point(anchors, 1.0, "loop"), anchors[0], atol=1e-5)
    assert torch.allclose(path_point(anchors, 0.3, "loop"), path_point(anchors, 1.3, "loop"), atol=1e-5)
    # Finite differences just before and just after the seam agree.
    before = (path_point(anchors, 1.0, "loop") - path_point(anchors, 1.0 - h, "loop")) / h
    after = (path_point(anchors, h, "loop") - path_point(anchors, 0.0, "loop")) / h
    assert (before - after).norm() < 1e-3 * after.norm()
    velocity = path_velocity(anchors, 0.0, "loop", h=1e-5)
    assert velocity.dtype == torch.float64
    assert (velocity - after).norm() < 1e-3 * after.norm()
    # A loop of straight segments would have a corner at the seam: the test can tell.
    corner = (path_point(anchors, 1.0, "lerp") - path_point(anchors, 1.0 - h, "lerp")) / h
    assert (corner - after).norm() > 0.1 * after.norm()


@pytest.mark.parametrize("preserve_norm", [True, False])
def test_spline_derivative_is_continuous_at_knots(anchors, preserve_norm):
    anchors = anchors.double()
    h = 1e-5
    n = len(anchors)
    for k in range(1, n - 1):
        s = k / (n - 1)
        p = path_point(anchors, torch.tensor([s - h, s, s + h], dtype=torch.float64), "spline", preserve_norm)
        left, right = (p[1] - p[0]) / h, (p[2] - p[1]) / h
        assert (left - right).norm() < 1e-3 * left.norm()
    # A polyline has a corner at each inner knot: the same test can fail.
    s = 1 / (n - 1)
    p = path_point(anchors, torch.tensor([s - h, s, s + h]), "lerp")
    assert ((p[1] - p[0]) - (p[2] - p[1])).norm() > 0.5 * (p[1] - p[0]).norm()


def test_spline_norm_correction_avoids_the_grey_middle(anchors):
    s = torch.linspace(0, 1, 41)
    plain = norms(path_point(anchors, s, "spline", preserve_norm=False))
    kept = norms(path_point(anchors, s, "spline"))
    assert kept.min() > 0.95 * norms(anchors).min()
    assert plain.min() < 0.85 * norms(anchors).min()


def test_path_kinds_are_checked(anchors):
    with pytest.raises(ValueError, match="walk"):
        path_point(anchors, 0.5, "walk")
    assert torch.equal(path_point(anchors[:1], torch.tensor([0.2, 0.9]), "spline")[1], anchors[0])


def test_random_walk_is_reproducible_bounded_and_seed_dependent(anchors):
    start = anchors[0]
    a = random_walk(start, 300, seed=7, step_size=0.2, bound=0.5)
    assert a.shape == (300, *SHAPE) and torch.equal(a[0], start)
    assert torch.equal(a, random_walk(start, 300, seed=7, step_size=0.2, bound=0.5))
    b = random_walk(start, 300, seed=8, step_size=0.2, bound=0.5)
    assert not torch.allclose(a[1:], b[1:])
    rms = (a - start).flatten(1).norm(dim=1) / math.sqrt(start.numel())
    assert rms.max() <= 0.5 + 1e-5
    assert rms[50:].mean() > 0.1  # it does wander
    step = (a[1:] - a[:-1]).flatten(1).norm(dim=1) / math.sqrt(start.numel())
    assert step.max() < 0.5


def test_walk_offset_is_smooth_deterministic_and_unit_variance():
    shape = (4, 32, 32)
    o = walk_offset(2.37, seed=5, shape=shape, speed=1.5)
    assert torch.equal(o, walk_offset(2.37, seed=5, shape=shape, speed=1.5))
    assert not torch.allclose(o, walk_offset(2.37, seed=6, shape=shape, speed=1.5))
    assert 0.9 < o.std().item() < 1.1
    # Smooth: small time steps give small changes, also across a keyframe (t * speed = 3).
    for t in (2.37, 2.0):
        d = (walk_offset(t + 1e-3, 5, shape, 1.5) - walk_offset(t, 5, shape, 1.5)).abs().max()
        assert d < 0.02
    assert walk_offset(0.5, 1, shape, device="cpu", dtype=torch.float16).dtype == torch.float16


def test_locks_hold_exactly_the_chosen_channels_and_region(anchors):
    moving, held = anchors[:3], anchors[4]
    out = apply_locks(moving, held, channels=2)
    assert torch.equal(out[:, :2], held[:2].expand(3, -1, -1, -1))
    assert torch.equal(out[:, 2:], moving[:, 2:])
    out = apply_locks(moving, held, channels=[1, 3])
    assert torch.equal(out[:, [1, 3]], held[[1, 3]].expand(3, -1, -1, -1))
    assert torch.equal(out[:, [0, 2]], moving[:, [0, 2]])
    out = apply_locks(moving, held, region="left")
    assert torch.equal(out[..., :4], held[..., :4].expand(3, -1, -1, -1))
    assert torch.equal(out[..., 4:], moving[..., 4:])
    mask = lock_mask(SHAPE, region="center")
    assert mask[:, 1:5, 2:6].all() and mask.sum() == 4 * 4 * 4
    assert torch.equal(lock_mask(SHAPE, region="border"), ~mask)
    both = lock_mask(SHAPE, channels=1, region="top")
    assert both[0].all() and both[1:, :3].all() and not both[1:, 3:].any()
    assert apply_locks(moving, held) is moving
    with pytest.raises(ValueError, match="middle"):
        apply_locks(moving, held, region="middle")


def test_offset_moves_one_channel(anchors):
    out = add_offset(anchors, channel=6, amount=0.5, std=2.0)  # 6 wraps to channel 2 of 4
    assert torch.allclose(out[:, 2], anchors[:, 2] + 1.0)
    assert torch.equal(out[:, [0, 1, 3]], anchors[:, [0, 1, 3]])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_function_returns_the_input_dtype(anchors, dtype):
    x = anchors.to(dtype)
    s = torch.linspace(0, 1, 3)
    for kind in PATHS:
        out = path_point(x, s, kind)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert torch.equal(out[0], x[0])
    assert blend(x, [1.0, 2, 0, 0, 0]).dtype == dtype
    assert slerp(x[0], -x[0], 0.5).dtype == dtype
    assert random_walk(x[0], 4, seed=1, step_size=0.1, bound=1.0).dtype == dtype
    assert apply_locks(x[:2], anchors[3], channels=1).dtype == dtype
