"""Perceptual pacing on real SLERPs, the lookup-table cache, bent routes and the HUD stretch probe."""

from __future__ import annotations

import math

import pytest
import torch

from instrument.lab.curvature import path_profile
from instrument.lab.pacing import (
    PacingBuilder,
    PacingCache,
    PacingTable,
    Route,
    pacing_table,
    smooth_route,
    stretch_at,
)
from instrument.latent.geometry import slerp


def cv(x: torch.Tensor) -> float:
    return float(x.std() / x.mean())


@pytest.mark.parametrize(("pair", "method"), [((0, 1), "decode"), ((2, 4), "jvp")],
                         ids=["dog-pastry-decode", "scribe-family-jvp"])
def test_pacing_evens_out_picture_change(ae, latents128, pair, method):
    """Frames paced by pixel arc length change the picture at a steadier rate than uniform steps in s: the
    coefficient of variation of the frame-to-frame RMS change drops to half or less."""
    a, b = latents128[pair[0]], latents128[pair[1]]

    def path(s: torch.Tensor) -> torch.Tensor:
        return slerp(a, b, s)

    frames = 17
    uniform = path_profile(ae.decode, path(torch.linspace(0, 1, frames)))
    table = pacing_table(ae.decode, path, samples=25 if method == "decode" else 13, method=method)
    paced = path_profile(ae.decode, path(table.positions(frames)))
    print(f"{pair} {method}: CV uniform {cv(uniform):.3f} -> paced {cv(paced):.3f}")
    assert cv(uniform) > 0.05  # there is something to fix
    assert cv(paced) <= 0.5 * cv(uniform)
    assert abs(float(paced.sum()) - float(uniform.sum())) < 0.05 * float(uniform.sum())


def test_table_inverts_and_stays_in_range():
    # A made-up path whose "picture" changes 4x faster at the end: speed ∝ s³.
    table = PacingTable(torch.linspace(0, 1, 101), torch.linspace(0, 1, 101) ** 4, 1.0)
    u = torch.linspace(0, 1, 11)
    s = table(u)
    assert torch.allclose(s, u ** 0.25, atol=0.02)
    assert torch.allclose(table.progress(s), u, atol=1e-4)
    assert table(-0.5) == 0.0 and table(2.0) == 1.0 and isinstance(table(0.3), float)
    assert bool((table.positions(7).diff() > 0).all())


def test_table_survives_a_standing_picture():
    """A path along which the picture does not change at all still gives positions from 0 to 1."""
    def path(s: torch.Tensor) -> torch.Tensor:
        return s.view(-1, 1, 1, 1).expand(-1, 4, 1, 1)

    table = pacing_table(lambda z: torch.zeros(len(z), 3, 8, 8), path, samples=9)
    positions = table.positions(5)
    assert positions[0] == 0 and positions[-1] == 1 and bool((positions.diff() >= 0).all())
    assert all(math.isfinite(float(p)) for p in positions)


def test_cache_builds_once_and_forgets_oldest():
    cache = PacingCache(maxsize=2)
    builds = []

    def build(key):
        builds.append(key)
        return PacingTable(torch.linspace(0, 1, 3), torch.linspace(0, 1, 3), 1.0)

    for key in ["a", "b", "a", "c", "b"]:
        cache.get(key, lambda key=key: build(key))
    assert builds == ["a", "b", "c", "b"]  # "a" reused; "b" dropped when "c" came, rebuilt


def test_routes_bend_towards_smooth_or_turbulent(ae, latents64):
    a, b = latents64[0], latents64[3]
    kwargs = dict(candidates=2, amplitudes=(0.4,), samples=7)
    smooth = smooth_route(ae.decode, a, b, **kwargs)
    turbulent = smooth_route(ae.decode, a, b, goal="turbulent", **kwargs)
    straight = Route(a, b, torch.zeros(1, *a.shape))
    s = torch.linspace(0, 1, 7)
    straight_length = float(path_profile(ae.decode, straight(s)).sum())
    assert smooth.pixel_length <= straight_length + 1e-6 <= turbulent.pixel_length + 2e-6
    assert turbulent.pixel_length > smooth.pixel_length
    for route in (smooth, turbulent):
        ends = route(torch.tensor([0.0, 1.0]))
        assert torch.allclose(ends[0], a, atol=1e-4) and torch.allclose(ends[1], b, atol=1e-4)
    with pytest.raises(ValueError, match="smooth or turbulent"):
        smooth_route(ae.decode, a, b, goal="wild")


def test_stretch_at_is_a_positive_number(ae, latents64):
    value = stretch_at(ae.decode, latents64[1])
    assert 0.01 < value < 10
    assert value == stretch_at(ae.decode, latents64[1])  # fixed directions: steady on a still picture


def test_builder_spreads_the_work_and_matches_the_table(ae, latents64):
    def path(s: torch.Tensor) -> torch.Tensor:
        return slerp(latents64[1], latents64[2], s)

    builder = PacingBuilder(ae.decode, path, samples=9, per_step=4)
    assert builder.step() is None and builder.step() is None  # 4 + 4 of 9 samples decoded
    table = builder.step()
    assert table is not None and builder.step() is table
    whole = pacing_table(ae.decode, path, samples=9)
    assert torch.allclose(table.length, whole.length, atol=1e-5)
    assert abs(table.total - whole.total) < 1e-4 * whole.total
