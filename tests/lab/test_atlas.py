"""The atlas: variants of a picture chart together, the map inverts, it saves, and the minimap draws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from instrument.cli import main
from instrument.lab.atlas import Atlas, AtlasError, agreement, choose_k, draw_atlas, draw_minimap, kmeans

from .conftest import NAMES

VARIANTS = {
    "orig": lambda im: im,
    "mirror": ImageOps.mirror,
    "crop": lambda im: im.crop((40, 30, 472, 462)),
    "cropmirror": lambda im: ImageOps.mirror(im.crop((0, 60, 420, 480))),
    "warm": lambda im: Image.merge("RGB", [c.point(lambda v, k=k: min(255, int(v * k)))
                                           for c, k in zip(im.split(), (1.12, 0.97, 0.82), strict=True)]),
    "pale": lambda im: ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(1.15)).enhance(0.6),
}


@pytest.fixture(scope="module")
def charted(shared, tmp_path_factory):
    """The atlas command run on the five shared pictures × 6 variants (crops, mirror images, colour shifts),
    encoded at 128×128. Returns (output folder, picture folder)."""
    root = tmp_path_factory.mktemp("atlas")
    pictures = root / "pictures"
    pictures.mkdir()
    for name in NAMES:
        with Image.open(shared / "images" / f"{name}.png") as im:
            im = im.convert("RGB")
            for variant, make in VARIANTS.items():
                make(im).resize((160, 160), Image.LANCZOS).save(pictures / f"{name}-{variant}.png")
    (pictures / "notes.txt").write_text("not a picture")
    out = root / "out"
    code = main(["atlas", str(pictures), "-o", str(out), "--size", "128", "--picture-size", "640",
                 "--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2",
                 "--cache-dir", str(root / "cache"), "--device", "cpu"])
    assert code == 0
    return out, pictures


def test_variants_chart_nearer_each_other_than_other_pictures(charted):
    out, _ = charted
    info = json.loads((out / "atlas.json").read_text())
    assert len(info["anchors"]) == len(NAMES) * len(VARIANTS)
    xy = torch.tensor([[a["x"], a["y"]] for a in info["anchors"]])
    group = torch.tensor([NAMES.index(a["name"].split("-")[0]) for a in info["anchors"]])
    assert bool(((xy >= 0) & (xy <= 1)).all())
    d = torch.cdist(xy, xy)
    for i in range(len(xy)):
        same = group == group[i]
        same[i] = False
        assert d[i][same].max() < d[i][group != group[i]].min(), info["anchors"][i]["name"]


def test_map_inverts_and_reloads(charted):
    out, _ = charted
    atlas = Atlas.load(out)
    assert len(atlas.names) == 30 and atlas.latents.shape[1:] == (32, 16, 16)
    for i in (0, 7, 29):
        x, y = atlas.coords[i].tolist()
        assert torch.allclose(atlas.from_map(x, y), atlas.latents[i], atol=1e-4)  # exact on an anchor
        tx, ty = atlas.to_map(atlas.latents[i])
        assert abs(tx - x) < 1e-4 and abs(ty - y) < 1e-4
        assert atlas.nearest(x, y) == i
    between = atlas.from_map(0.5, 0.5)
    assert between.shape == (32, 16, 16) and bool(torch.isfinite(between).all())
    # Flying across the map is continuous in latent space: no jump where the nearest anchors change, so
    # halving the cursor's steps about halves the largest latent step (a jump would stay the same size).
    def largest_step(n: int) -> float:
        line = torch.stack([atlas.from_map(x, 0.4) for x in torch.linspace(0.05, 0.95, n).tolist()])
        return float((line[1:] - line[:-1]).flatten(1).norm(dim=1).max())

    assert largest_step(801) < 0.65 * largest_step(401)
    assert atlas.to_map(atlas.latents[:3]).shape == (3, 2)
    with pytest.raises(AtlasError, match=r"\(32, 8, 8\)"):
        Atlas.load(out, latent_shape=(32, 8, 8))


def test_flight_keeps_the_pictures_vivid_and_lands_where_the_cursor_is(charted):
    """Flying between pictures, the latent keeps the norms of the anchors around it (a plain mix shrinks
    towards grey); and wherever the cursor is, the map puts its latent back under the cursor."""
    atlas = Atlas.load(charted[0])
    norms = atlas.latents.flatten(1).norm(dim=1)
    flown = []
    for i, j in ((0, 6), (7, 20), (13, 29), (24, 3)):  # between different subjects
        for u in torch.linspace(0, 1, 7).tolist():
            x, y = ((1 - u) * atlas.coords[i] + u * atlas.coords[j]).tolist()
            flown.append(float(atlas.from_map(x, y).norm()))
    assert float(norms.min()) - 1e-3 <= min(flown) and max(flown) <= float(norms.max()) + 1e-3
    misses = []
    for x in torch.linspace(0.02, 0.98, 7).tolist():
        for y in torch.linspace(0.02, 0.98, 7).tolist():
            tx, ty = atlas.to_map(atlas.from_map(x, y))
            misses.append(((tx - x) ** 2 + (ty - y) ** 2) ** 0.5)
    assert max(misses) < 0.02


def test_clusters_are_the_subjects(charted):
    """Five pictures in six variants each: the most stable clustering has five groups, one per picture."""
    info = json.loads((charted[0] / "atlas.json").read_text())
    groups = {}
    for a in info["anchors"]:
        groups.setdefault(a["name"].split("-")[0], set()).add(a["cluster"])
    assert len({a["cluster"] for a in info["anchors"]}) == 5
    assert all(len(clusters) == 1 for clusters in groups.values())
    atlas = Atlas.load(charted[0])
    assert len(set(Atlas.fit(atlas.latents, atlas.names, clusters=3).labels.tolist())) == 3  # or the user's k


def test_agreement_ignores_label_numbers():
    a = torch.tensor([0, 0, 1, 1, 2, 2])
    assert agreement(a, torch.tensor([2, 2, 0, 0, 1, 1])) == pytest.approx(1.0)
    assert agreement(a, torch.tensor([0, 1, 0, 1, 0, 1])) < 0.1


def test_atlas_picture_and_minimap(charted):
    out, pictures = charted
    with Image.open(out / "atlas.png") as im:
        assert im.width == 640 and im.height > 640
    atlas = Atlas.load(out)
    mini = draw_minimap(atlas, (0.25, 0.75), 96)
    assert mini.shape == (96, 96, 3) and mini.dtype == np.uint8
    ring = mini[71, 24 - 96 // 25:24 + 96 // 25 + 1]  # a row through the cursor ring
    assert (ring == 255).all(axis=1).any()
    assert mini is not draw_minimap(atlas, (0.25, 0.75), 96)  # a fresh array every call
    thumbs = [Image.open(p) for p in sorted(pictures.glob("*.png"))]
    assert draw_atlas(atlas, thumbs, 400).width == 400


def test_latent_features_and_small_atlas(latents64):
    atlas = Atlas.fit(latents64, NAMES, features="latent", clusters=2)
    assert set(atlas.labels.tolist()) == {0, 1}
    # Plain PCA charting: the linear part of from_map is the PCA back-projection, exact at anchors.
    for i in range(5):
        assert torch.allclose(atlas.from_map(*atlas.coords[i].tolist()), latents64[i], atol=1e-4)
    with pytest.raises(AtlasError, match="at least 3"):
        Atlas.fit(latents64[:2], NAMES[:2])


def test_umap_without_the_extra_says_how_to_get_it(latents64):
    pytest.importorskip("torch")
    try:
        import umap  # noqa: F401

        pytest.skip("umap-learn is installed")
    except ImportError:
        pass
    with pytest.raises(AtlasError, match=r"latent-instrument\[atlas\]"):
        Atlas.fit(latents64, NAMES, method="umap")


def test_kmeans_finds_obvious_groups():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]])
    x = torch.cat([c + 0.1 * torch.randn(10, 2, generator=g) for c in centres])
    assert choose_k(x) == 3
    labels, _ = kmeans(x, 3)
    for k in range(3):
        assert len(set(labels[10 * k:10 * (k + 1)].tolist())) == 1


def test_atlas_command_reports_bad_folder(tmp_path, capsys):
    assert main(["atlas", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    (tmp_path / "few").mkdir()
    assert main(["atlas", str(tmp_path / "few"), "-o", str(tmp_path / "o")]) == 2
    assert "needs 3 or more" in capsys.readouterr().out


def test_load_names_the_file(tmp_path):
    with pytest.raises(AtlasError, match="atlas.safetensors"):
        Atlas.load(tmp_path)
    Path(tmp_path / "atlas.safetensors").write_bytes(b"junk")
    with pytest.raises(AtlasError, match="not a readable atlas"):
        Atlas.load(tmp_path)


def test_umap_layout_inverts_by_blending(latents64, tmp_path, monkeypatch):
    """The umap path without umap-learn: a stand-in layout, then the same contract (exact at anchors, a
    norm-preserving blend between them, save/load)."""
    import instrument.lab.atlas as atlas_module

    monkeypatch.setattr(atlas_module, "_umap", lambda feats, seed: feats[:, :2] * 10)
    atlas = Atlas.fit(latents64, NAMES, method="umap")
    for i in range(5):
        assert torch.allclose(atlas.from_map(*atlas.coords[i].tolist()), latents64[i], atol=1e-4)
    middle = atlas.from_map(0.5, 0.5)
    norms = latents64.flatten(1).norm(dim=1)
    assert norms.min() * 0.99 <= middle.norm() <= norms.max() * 1.01  # blended, not shrunk towards zero
    atlas.save(tmp_path)
    again = Atlas.load(tmp_path)
    assert again.method == "umap" and torch.allclose(again.from_map(0.3, 0.7), atlas.from_map(0.3, 0.7))
    assert torch.allclose(again.to_map(latents64[:2]), atlas.coords[:2], atol=1e-4)
