"""Geodesics: lower pixel energy than SLERP on real pairs, routes through their control points, a job."""

from __future__ import annotations

import pytest
import torch

from instrument.lab.geodesic import energy_and_length, geodesic, route_energy, solve
from instrument.latent.geometry import lerp, route_point, slerp


@pytest.mark.parametrize("pair", [(0, 1), (3, 0), (2, 4)], ids=["dog-pastry", "panda-dog", "scribe-family"])
def test_a_geodesic_changes_the_picture_less_than_slerp_and_lerp(ae, latents64, pair):
    """Measured on the played route (33 even steps of s, between control points too), not on the control
    points the search saw."""
    a, b = latents64[pair[0]], latents64[pair[1]]
    route = geodesic(ae.decode, a, b, points=6, iterations=4)
    ours, ours_length = route_energy(ae.decode, route, 33)
    theirs, _ = route_energy(ae.decode, lambda s: slerp(a, b, s), 33)
    line, _ = route_energy(ae.decode, lambda s: lerp(a, b, s), 33)
    print(f"{pair}: geodesic {ours:.4f}, SLERP {theirs:.4f}, LERP {line:.4f}")
    assert ours < 0.95 * theirs and ours < line
    assert ours >= ours_length ** 2 - 1e-6  # E >= L² always
    assert route.history == sorted(route.history, reverse=True)  # every accepted step lowered the energy
    assert route.energy < min(route.slerp_energy, route.history[0] + 1e-9) + 1e-9


def test_routes_pass_through_their_points(latents64):
    a, b, c = latents64[0], latents64[1], latents64[2]
    routes = torch.stack([lerp(a, b, torch.linspace(0, 1, 5)), lerp(b, c, torch.linspace(0, 1, 5))])
    routes[0, 2] += 0.5  # bend the first route's middle point
    assert torch.equal(route_point(routes, 0.0), a) and torch.equal(route_point(routes, 1.0), c)
    assert torch.allclose(route_point(routes, 0.5), b, atol=1e-5)
    assert torch.allclose(route_point(routes, 0.25), routes[0, 2], atol=1e-5)  # the bent control point
    points = route_point(routes, torch.linspace(0, 1, 41))
    assert points.shape == (41, *a.shape) and bool(torch.isfinite(points).all())
    steps = (points[1:] - points[:-1]).flatten(1).norm(dim=1)
    assert float(steps.max()) < 3 * float(steps.median())  # no jumps where segments meet
    with pytest.raises(ValueError, match="routes must be"):
        route_point(routes[:, :1], 0.5)


def test_solve_is_a_job_that_says_how_far_it_got(ae, latents64):
    job = solve(ae.decode, latents64[0], latents64[1], points=4, iterations=2, batch=2)
    notes = []
    while True:
        try:
            notes.append(next(job))
        except StopIteration as done:
            found = done.value
            break
    assert notes[0] == "start" and "step 2/2" in notes
    assert found.points.shape == (5, *latents64.shape[1:])
    assert torch.equal(found.points[0], latents64[0]) and torch.equal(found.points[-1], latents64[1])
    with torch.no_grad():
        frames = ae.decode(found.points)
    assert energy_and_length(frames)[0] == pytest.approx(found.energy, rel=1e-4)
