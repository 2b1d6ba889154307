"""Stretch estimates against measured pixel change, the stretch map and the curvature command."""

from __future__ import annotations

import json

import numpy as np
import torch

from instrument.cli import main
from instrument.lab.curvature import (
    anchor_plane,
    directional_derivative,
    path_profile,
    predicted_profile,
    random_directions,
    rms,
    spearman,
    stretch,
    stretch_map,
)
from instrument.latent.geometry import slerp


def test_spearman_is_rank_correlation():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert abs(spearman(x, x ** 3) - 1) < 1e-9  # monotonic, not linear
    assert abs(spearman(x, -x) + 1) < 1e-9
    assert abs(spearman(x, torch.tensor([2.0, 1.0, 4.0, 3.0, 5.0])) - 0.8) < 1e-9


def test_stretch_predicts_measured_change(ae, latents64):
    """200 short random steps from points on SLERP walks between the shared pictures (64×64 decodes, to keep
    400 of them fast): the jvp estimate RMS(Jv)/RMS(v) ranks the steps like the measured
    RMS(D(z + εv) - D(z)) / (ε RMS(v))."""
    latents = latents64
    g = torch.Generator().manual_seed(7)
    n = 200
    i = torch.randint(0, 5, (n,), generator=g)
    j = (i + torch.randint(1, 5, (n,), generator=g)) % 5
    s = torch.rand(n, generator=g)
    z = torch.stack([slerp(latents[a], latents[b], float(t)) for a, b, t in zip(i, j, s, strict=True)])
    v = random_directions(z[0], n, seed=3, varied=True)  # unit RMS, channel and region scales vary
    eps = 0.05  # a short step: 5% of a latent's typical magnitude (std ≈ 1)
    predicted = stretch(ae.decode, z, v, method="jvp", batch=25)
    with torch.no_grad():
        measured = torch.cat([rms(ae.decode(z[k:k + 25] + eps * v[k:k + 25]) - ae.decode(z[k:k + 25])) / eps
                              for k in range(0, n, 25)])
    rho = spearman(predicted, measured)
    print(f"Spearman(predicted, measured) = {rho:.3f} over {n} steps; "
          f"stretch {predicted.min():.3f}..{predicted.max():.3f}")
    assert predicted.max() > 2 * predicted.min()  # the directions really probe different stretches
    assert rho >= 0.8


def test_finite_difference_fallback_agrees_with_jvp(ae, latents64):
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

    assert torch.allclose(stretch(lambda x: ae.decode(NoForwardAD.apply(x)), z, v), fd, rtol=1e-4)
    # A decoder that cuts the tangent gives exact zeros under jvp; "auto" notices and measures instead.
    assert torch.allclose(stretch(lambda x: ae.decode(x.detach()), z, v), fd, rtol=1e-4)
    assert not directional_derivative(lambda x: ae.decode(x.detach()), z, v, method="jvp").any()


def test_path_profile_matches_prediction(ae, latents64):
    path = slerp(latents64[0], latents64[3], torch.linspace(0, 1, 9))
    measured = path_profile(ae.decode, path)
    predicted = predicted_profile(ae.decode, path)
    assert measured.shape == predicted.shape == (8,)
    assert torch.allclose(measured, predicted, rtol=0.15)


def test_plane_through_anchors(latents128):
    three = latents128[:3]
    plane = anchor_plane(three)
    assert torch.allclose(plane.point(plane.coords(three)), three, atol=1e-3)
    assert abs(float((plane.e1 * plane.e2).sum())) < 1e-5
    # Two anchors, "origin": the plane holds both anchors, the zero latent and so the whole SLERP arc.
    two = anchor_plane(latents128[[0, 3]])
    arc = slerp(latents128[0], latents128[3], torch.linspace(0, 1, 5))
    assert torch.allclose(two.point(two.coords(arc)), arc, atol=1e-3)
    assert torch.allclose(two.point(two.coords(torch.zeros(1, *arc.shape[1:]))), torch.zeros(1), atol=1e-3)


def test_stretch_map_grid(ae, latents64):
    anchors = latents64[[0, 3]]  # 64×64 pictures: a quick 5×5 map
    smap = stretch_map(ae.decode, anchors, n=5, span=1.2, names=["dog", "panda"])
    assert smap.grid.shape == (5, 5) and bool((smap.grid > 0).all())
    # The plane's centre row holds the anchors' line: the grid there equals stretch measured directly.
    centre = smap.plane.point(torch.zeros(1, 2))
    direct = stretch(ae.decode, centre, torch.stack([smap.plane.e1, smap.plane.e2])).pow(2).mean().sqrt()
    assert abs(float(smap.grid[2, 2]) - float(direct)) < 1e-4
    data = smap.to_json()
    assert [a["name"] for a in data["anchors"]] == ["dog", "panda"]
    assert data["anchors"][0]["u"] < 0 < data["anchors"][1]["u"]
    # Anchor (col, row) are fractional grid indices: the anchors' line crosses the middle row.
    assert all(abs(a["row"] - 2) < 1e-4 and 0 < a["col"] < 4 for a in data["anchors"])


def test_curvature_command(shared, tmp_path, capsys):
    out = tmp_path / "maps" / "weather.png"
    images = [str(shared / "images" / f"{n}.png") for n in ("dog", "panda", "pastry")]
    code = main(["curvature", *images, "-o", str(out), "--grid", "4", "--size", "64", "--picture-size", "256",
                 "--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2",
                 "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])
    assert code == 0, capsys.readouterr()
    data = json.loads(out.with_suffix(".json").read_text())
    grid = np.load(out.with_suffix(".npy"))
    assert grid.shape == (4, 4) and np.allclose(grid, np.asarray(data["grid"]), atol=1e-5)
    assert [a["name"] for a in data["anchors"]] == ["dog", "panda", "pastry"]
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] > 256 and im.mode == "RGB"


def test_curvature_command_rejects_one_anchor(shared, tmp_path, capsys):
    assert main(["curvature", str(shared / "images" / "dog.png"), "-o", str(tmp_path / "m.png")]) == 2
    assert "2 or 3 anchors" in capsys.readouterr().out
