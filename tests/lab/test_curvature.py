"""The weather map: stretch and bend on the grid, their meaning along a real SLERP, and the command."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from instrument.cli import main
from instrument.lab.curvature import anchor_plane, weather_map
from instrument.lab.stretch import bend, path_profile, rms, spearman
from instrument.latent.geometry import slerp


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


def test_the_grid_measures_from_neighbouring_points(ae, latents64):
    anchors = latents64[[0, 3]]
    smap = weather_map(ae.decode, anchors, n=5, span=1.2, names=["dog", "panda"])
    assert smap.stretch.shape == smap.bend.shape == (5, 5)
    assert bool((smap.stretch > 0).all()) and bool(((smap.bend >= 0) & (smap.bend <= 1)).all())
    # The centre point, from its four neighbours' pictures: stretch along each axis is the change between
    # the neighbours over their latent distance; the bend, the three pictures' second difference.
    step = 2 * smap.extent / 4
    uv = torch.tensor([[-step, 0.0], [0.0, 0.0], [step, 0.0], [0.0, -step], [0.0, step]])
    with torch.no_grad():
        x = ae.decode(smap.plane.point(uv))
    distance = 2 * step / anchors[0].numel() ** 0.5  # latent RMS of two grid steps
    along = torch.stack([rms(x[2:3] - x[0:1]), rms(x[4:5] - x[3:4])]) / distance
    assert abs(float(smap.stretch[2, 2]) - float(along.pow(2).mean().sqrt())) < 1e-4
    bends = torch.cat([bend(x[0:1], x[1:2], x[2:3]), bend(x[3:4], x[1:2], x[4:5])])
    assert abs(float(smap.bend[2, 2]) - float(bends.pow(2).mean().sqrt())) < 1e-4
    data = smap.to_json()
    assert [a["name"] for a in data["anchors"]] == ["dog", "panda"]
    assert data["anchors"][0]["u"] < 0 < data["anchors"][1]["u"]
    assert all(abs(a["row"] - 2) < 1e-4 and 0 < a["col"] < 4 for a in data["anchors"])


def test_the_map_ranks_the_change_along_a_slerp(ae, latents64):
    """Sampled along the SLERP arc (which lies on the two-anchor map), the map's stretch ranks the real
    frame-to-frame change of 24 frames along it."""
    a, b = latents64[0], latents64[3]
    smap = weather_map(ae.decode, torch.stack([a, b]), n=12, span=1.2)
    arc = slerp(a, b, torch.linspace(0, 1, 25))
    change = path_profile(ae.decode, arc)
    mids = smap.to_pixel(smap.plane.coords((arc[1:] + arc[:-1]) / 2), 12)
    grid = smap.stretch.numpy()
    # bilinear lookup of the grid at the midpoints (cells are centred on the samples)
    x, y = (mids[:, 0] - 0.5).clamp(0, 11).numpy(), (mids[:, 1] - 0.5).clamp(0, 11).numpy()
    x0, y0 = np.minimum(np.floor(x).astype(int), 10), np.minimum(np.floor(y).astype(int), 10)
    fx, fy = x - x0, y - y0
    values = (grid[y0, x0] * (1 - fx) * (1 - fy) + grid[y0, x0 + 1] * fx * (1 - fy)
              + grid[y0 + 1, x0] * (1 - fx) * fy + grid[y0 + 1, x0 + 1] * fx * fy)
    rho = spearman(torch.tensor(values), change)
    print(f"Spearman(map stretch along the arc, frame change) = {rho:.3f}")
    assert rho >= 0.7


def test_curvature_command(shared, tmp_path, capsys):
    out = tmp_path / "maps" / "weather.png"
    images = [str(shared / "images" / f"{n}.png") for n in ("dog", "panda", "pastry")]
    code = main(["curvature", *images[:2], "-o", str(out), "--grid", "4", "--size", "64", "--picture-size",
                 "256", "--geodesic-steps", "2", "--geodesic-points", "4",
                 "--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2",
                 "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])
    printed = capsys.readouterr()
    assert code == 0, printed
    assert "weather map" in printed.err and "decode" in printed.err  # the progress bar
    data = json.loads(out.with_suffix(".json").read_text())
    grids = np.load(out.with_suffix(".npz"))
    assert grids["stretch"].shape == (4, 4)
    assert np.allclose(grids["stretch"], np.asarray(data["stretch"]), atol=1e-5)
    assert grids["bend"].shape == (4, 4)
    assert [a["name"] for a in data["anchors"]] == ["dog", "panda"]
    energy = {r["route"]: r["energy"] for r in data["routes"]}
    assert set(energy) == {"LERP", "SLERP", "geodesic"} and energy["geodesic"] < energy["SLERP"]
    assert "geodesic dog -> panda: pixel energy" in printed.out
    with Image.open(out) as im:
        assert im.size[0] > 2 * 256 and im.mode == "RGB"


def test_curvature_command_takes_three_anchors_without_geodesics(shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("instrument.lab.curvature.ROUTE_SAMPLES", 9)
    out = tmp_path / "three.png"
    images = [str(shared / "images" / f"{n}.png") for n in ("dog", "panda", "pastry")]
    code = main(["curvature", *images, "-o", str(out), "--grid", "3", "--size", "64", "--picture-size", "128",
                 "--geodesic-steps", "0", "--no-thumbnails", "--directions", "random", "-k", "1",
                 "--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2",
                 "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])
    assert code == 0, capsys.readouterr()
    data = json.loads(out.with_suffix(".json").read_text())
    assert [(r["route"], r["from"], r["to"]) for r in data["routes"]][::2] == [
        ("LERP", "dog", "panda"), ("LERP", "panda", "pastry"), ("LERP", "pastry", "dog")]
    assert data["directions"].startswith("random")


def test_curvature_command_rejects_bad_input(shared, tmp_path, capsys):
    assert main(["curvature", str(shared / "images" / "dog.png"), "-o", str(tmp_path / "m.png")]) == 2
    assert "2 or 3 anchors" in capsys.readouterr().out
    dog = str(shared / "images" / "dog.png")
    assert main(["curvature", dog, dog, "-o", str(tmp_path / "m.png"), "--grid", "2"]) == 2
    assert "--grid: '2' is out of range; use a whole number from 3 to 512" in capsys.readouterr().err
