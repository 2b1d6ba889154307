"""Phase boundaries: cuts where the frames' features change, one per change of picture along a real path."""

from __future__ import annotations

import torch

from instrument.lab.pacing import finish, survey
from instrument.lab.phases import MIN_RUN, change_points, features
from instrument.latent.geometry import path_point


def test_cuts_fall_where_the_features_jump():
    g = torch.Generator().manual_seed(0)
    runs = [torch.full((n, 6), float(level)) for n, level in ((10, 0), (7, 3), (12, -2))]
    feats = torch.cat(runs) + 0.05 * torch.randn(29, 6, generator=g)
    assert change_points(feats, [0, 28]) == [10, 17]
    noise = 0.01 * torch.randn(20, 6, generator=g)
    assert change_points(noise + torch.linspace(0, 1, 20)[:, None]) == [10]  # a steady morph: it tips once
    assert change_points(noise) == []  # the same picture at both ends: one phase
    assert change_points(torch.zeros(8, 3)) == []
    # Every phase holds MIN_RUN frames or more, even around a one-frame blip.
    blip = torch.zeros(15, 2)
    blip[7], blip[-1] = 5.0, 1.0
    edges = [0, *change_points(blip), 15]
    assert len(edges) > 2 and min(b - a for a, b in zip(edges, edges[1:], strict=False)) >= MIN_RUN


def test_features_are_small_and_see_colour_and_edges():
    flat = torch.full((1, 3, 64, 64), 0.5)
    striped = flat.clone()
    striped[..., ::2, :] = 0.0
    red = flat.clone()
    red[:, 0] = 1.0
    f = features(torch.cat([flat, striped, red]))
    assert f.shape == (3, 4 * 64)
    assert not torch.allclose(f[0], f[1]) and not torch.allclose(f[0], f[2])


def test_a_path_through_three_pictures_has_a_boundary_in_each_segment(ae, latents64):
    """dog -> pastry -> scribe: each picture is a phase, and each morph tips from one to the next once, well
    inside its segment (not at an anchor)."""
    anchors = latents64[:3]

    def path(s: torch.Tensor) -> torch.Tensor:
        return path_point(anchors, s, "slerp")

    found = finish(survey(ae.decode, path, 33, breaks=[16]))
    boundaries = found.boundaries()
    print("boundaries", boundaries)
    assert len(boundaries) == 2
    assert 0.1 < boundaries[0] < 0.4 and 0.6 < boundaries[1] < 0.9
