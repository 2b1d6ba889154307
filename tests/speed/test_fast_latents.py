"""latent.fast.FastLatents is performance.latent_at (within float32 rounding) wherever it serves a point."""

from __future__ import annotations

import pytest
import torch

from instrument.latent.fast import FastLatents
from instrument.performance import Coords, latent_at

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_fast_latents_equal_latent_at(device):
    gen = torch.Generator().manual_seed(1)
    anchors = torch.randn(5, 4, 8, 8, generator=gen)
    anchors[3] = -1.3 * anchors[2]  # an antipodal segment: geometry's far branch
    anchors = anchors.to(device)
    fast = FastLatents(anchors, seed=3, std=0.9)
    positions = [0.0, 1.0, 0.25, 0.5, 0.6, 0.62, 0.7, 0.999] + torch.rand(20, generator=gen).tolist()
    for s in positions:
        for noise, walk_t in [(0.0, 0.0), (0.3, 1.2345), (0.05, 17.9)]:
            for path in ("slerp", "walk"):
                coords = Coords(path, s, noise=noise, walk_t=walk_t)
                want = latent_at(anchors, coords, seed=3, std=0.9)
                got = fast(coords)
                assert got.shape == want.shape and got.device == want.device
                assert float((got - want).norm() / want.norm()) < 1e-5, (coords, s)
                mix = fast.mix(coords)  # what a CUDA graph sums: the same terms
                assert len(mix.vectors) - (4 if noise else 0) in (1, 2)  # (1: on an anchor)
                assert torch.equal(mix.latent(), got)
    assert fast.fast_calls == len(positions) * 6 * 2
    # Everything else is latent_at itself.
    for coords in [Coords("loop", 0.3), Coords("slerp", 0.4, glide_from=0.1, glide=0.5),
                   Coords("slerp", 0.4, offset=0.5, offset_channel=1), Coords("slerp", 0.4, lock_channels=2)]:
        assert torch.equal(fast(coords), latent_at(anchors, coords, seed=3, std=0.9))
        assert fast.mix(coords) is None


def test_fast_latents_hand_atlas_coordinates_to_latent_at():
    """Atlas mode: the frame sits at the atlas cursor, never on the path (even where the path is simple)."""
    class Atlas:  # the one method latent_at calls
        def from_map(self, x, y):
            return torch.full((4, 8, 8), x + 10 * y)

    anchors = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    fast = FastLatents(anchors, seed=1)
    coords = Coords("slerp", 0.5, atlas=True, atlas_x=0.25, atlas_y=0.5)
    with pytest.raises(ValueError, match="no atlas"):
        fast(coords)
    fast.atlas = Atlas()
    assert torch.equal(fast(coords), latent_at(anchors, coords, atlas=fast.atlas))
    assert torch.equal(fast(coords), torch.full((4, 8, 8), 5.25)) and fast.fast_calls == 0
