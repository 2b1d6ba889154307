"""The geometry on tensors: the library's walks are the ``walk`` command's frames, its functions play's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import instrument as li
from instrument.cli import main
from instrument.latent import geometry
from instrument.performance import latent_at

from .conftest import SIZE


@pytest.mark.parametrize("kind", ["slerp", "loop", "walk"])
def test_walk_frames_are_the_walk_commands(kind, shared, model, images, tmp_path):
    dog, pastry = str(images / "dog.png"), str(images / "pastry.png")
    out = tmp_path / "walk"
    status = main(["walk", dog, pastry, "seed:3", "--path", kind, "--steps", "5", "-o", str(out),
                   "--model", str(shared / "models" / "taef2_decoder.pth"), "--full-model", "none",
                   "--device", "cpu", "--dtype", "fp32", "--size", str(SIZE), "--seed", "4",
                   "--cache-dir", str(tmp_path / "cache")])
    assert status == 0
    anchors = li.encode(model, [dog, pastry, "seed:3"], SIZE, cache=False)
    pictures = li.decode(model, li.walk(anchors, 5, kind, seed=4), output="array")
    written = [np.asarray(Image.open(out / f["file"]).convert("RGB"))
               for f in json.loads((out / "frames.json").read_text())["frames"]]
    assert len(written) == 5
    for got, own in zip(written, pictures, strict=True):
        assert np.array_equal(got, own)


def test_walk_spacing_and_its_random_walk(anchors):
    frames = li.walk(anchors, 5, "slerp")
    assert torch.equal(frames[0], anchors[0]) and torch.equal(frames[-1], anchors[1])
    assert torch.allclose(frames[2], li.slerp(anchors[0], anchors[1], 0.5), atol=1e-5)
    loop = li.walk(anchors, 4, "loop")
    assert torch.equal(loop[0], anchors[0]) and torch.equal(loop[2], anchors[1])  # the start not repeated
    wander = li.walk(anchors, 6, "walk", seed=1, step_size=0.1, bound=0.3)
    expected = geometry.random_walk(anchors[0], 6, 1, 0.1 * anchors.family.latent_std,
                                    0.3 * anchors.family.latent_std)
    assert torch.equal(wander, expected) and torch.equal(wander[0], anchors[0])
    with pytest.raises(ValueError, match="unknown walk kind 'zigzag'"):
        li.walk(anchors, 3, "zigzag")


def test_the_geometry_is_plays_own(anchors):
    for name in ("slerp", "lerp", "blend", "random_walk", "walk_offset", "lock_mask", "apply_locks",
                 "add_offset"):
        assert getattr(li, name) is getattr(geometry, name)
    assert li.latent_at is latent_at
    s = torch.tensor([0.0, 0.3, 1.0])
    assert torch.equal(li.path(anchors, s, "spline"), geometry.path_point(anchors.latents, s, "spline"))
    coords = li.Coords(path="slerp", s=0.5, lock_channels=4, home=1)
    held = li.latent_at(anchors.latents, coords)
    assert torch.equal(held[:4], anchors[1][:4]) and not torch.equal(held[4:], anchors[1][4:])
