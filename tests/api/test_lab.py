"""The lab through the library: atlases, weather maps, geodesics, pacing and their pictures, with the real
taef2."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

import instrument as li
from instrument.lab.atlas import Atlas

from .conftest import SIZE


def test_an_atlas_of_a_folder_charts_its_pictures_as_the_command_does(model, images, tmp_path):
    folder = tmp_path / "pictures"
    shutil.copytree(images, folder)
    (folder / "notes.txt").write_text("not a picture")
    (folder / "seed.safetensors").write_bytes(b"")  # the atlas command reads pictures only
    atlas = li.atlas(model, folder, 32, cache=False)
    assert atlas.names == ["dog", "family", "panda", "pastry", "scribe"]
    assert atlas.coords.shape == (5, 2) and bool(((atlas.coords >= 0) & (atlas.coords <= 1)).all())
    encoded = li.encode(model, sorted(str(p) for p in folder.glob("*.png")), 32, cache=False)
    again = Atlas.fit(encoded.latents, encoded.names)
    assert torch.equal(atlas.coords, again.coords) and torch.equal(atlas.labels, again.labels)
    x, y = atlas.coords[2].tolist()
    assert torch.allclose(atlas.from_map(x, y), encoded[2], atol=1e-4)  # exact at an anchor
    figure = li.atlas_figure(atlas, model, size=320)
    assert isinstance(figure, Image.Image) and figure.width == 320
    assert li.atlas_figure(atlas, size=200).width == 200  # grey squares without a model
    with pytest.raises(Exception, match="at least 3 latents"):
        li.atlas(model, [images / "dog.png", images / "panda.png"], 32, cache=False)


def test_a_weather_map_with_routes_traced_on_it_and_its_picture(model, anchors):
    wmap = li.weather_map(model, anchors, n=3, directions=anchors[1] - anchors[0])
    assert wmap.stretch.shape == wmap.bend.shape == (3, 3) and wmap.names == ["dog", "pastry"]
    assert bool((wmap.stretch > 0).all()) and bool(((wmap.bend >= 0) & (wmap.bend <= 1)).all())
    route = li.trace(model, wmap, lambda s: li.path(anchors, s, "slerp"), "SLERP", samples=5)
    assert wmap.routes == [route] and (route.start, route.end) == ("dog", "pastry")
    assert route.uv.shape == (5, 2) and torch.allclose(route.uv[[0, -1]], wmap.anchor_uv, atol=1e-3)
    assert route.energy >= route.length ** 2 * (1 - 1e-6)  # E >= L², equal only at an even pace
    figure = li.weather_figure(wmap, model, size=200)
    assert figure.width > 2 * 200 and figure.height > 200  # stretch and bend side by side


def test_the_stretch_at_a_latent(model, anchors):
    way = anchors[1] - anchors[0]
    along = li.stretch_at(model, anchors[0], way)
    assert along > 0 and li.stretch_at(model, anchors[0], 3 * way) == pytest.approx(along, rel=1e-3)
    assert li.stretch_at(model, anchors[0]) > 0  # over seeded random directions
    assert li.stretch_at(model, anchors[0], seed=1) != li.stretch_at(model, anchors[0], seed=2)


def test_pacing_evens_out_the_change_per_step(model, anchors):
    table = li.pacing(model, anchors, "slerp", per_segment=8)
    positions = table.positions(9)
    assert positions[0] == 0 and positions[-1] == pytest.approx(1) and bool((positions.diff() > 0).all())
    even = li.profile(model, li.walk(anchors, 9, "slerp"))
    paced = li.profile(model, li.path(anchors, positions, "slerp"))
    assert even.shape == paced.shape == (8,)
    variation = lambda steps: float(steps.std() / steps.mean())  # noqa: E731
    assert variation(paced) < variation(even)
    three = torch.cat([anchors.latents, anchors.latents[:1].flip(-1)])
    loop = li.pacing(model, three, "loop", per_segment=4)
    assert loop.progress(0.0) == 0 and loop.progress(1.0) == pytest.approx(1) and loop.total > table.total
    with pytest.raises(ValueError, match="unknown path kind 'geodesic'"):
        li.pacing(model, anchors, "geodesic")


def test_a_geodesic_changes_the_picture_less_than_the_slerp(model, anchors):
    route = li.geodesic(model, anchors[0], anchors[1], points=4, iterations=2)
    ends = route(torch.tensor([0.0, 1.0]))
    assert torch.allclose(ends[0], anchors[0], atol=1e-5) and torch.allclose(ends[1], anchors[1], atol=1e-5)
    assert route.energy <= route.slerp_energy
    wmap = li.weather_map(model, anchors, n=3)
    slerp = li.trace(model, wmap, lambda s: li.path(anchors, s, "slerp"), "SLERP", samples=9)
    shortest = li.trace(model, wmap, route, "geodesic", samples=9)
    assert [r.name for r in wmap.routes] == ["SLERP", "geodesic"]
    assert shortest.energy < slerp.energy


def test_sheets_and_charts(model, anchors):
    pictures = li.decode(model, li.walk(anchors, 5))
    grid = li.sheet(pictures, columns=3, labels=["a", "b"], width=32, gap=2)
    assert grid.size == (3 * 34 + 2, 2 * (32 + 18 + 2) + 2)
    small = pictures[0].resize((32, 32), Image.Resampling.LANCZOS)
    assert grid.getpixel((2 + 16, 2 + 16)) == small.getpixel((16, 16))
    assert li.sheet([li.decode(model, anchors[0], output="array")]).size == (SIZE + 8, SIZE + 8)
    chart = li.chart({"even": [1.0, 2.0, 3.0], "paced": torch.tensor([2.0, 2.0, 2.0])}, size=(300, 200))
    assert chart.size == (300, 200)
    with pytest.raises(ValueError, match="at least one picture"):
        li.sheet([])
    with pytest.raises(ValueError, match="at least one series"):
        li.chart({})
