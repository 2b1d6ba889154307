"""The encode and walk commands, run through the real command line with the shared taef2 pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from instrument.cli import main
from instrument.latent.anchors import load_image, load_latent


def model_args(shared, tmp_path, size: str) -> list[str]:
    return ["--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2",
            "--full-model", "none", "--device", "cpu", "--dtype", "fp32", "--size", size,
            "--cache-dir", str(tmp_path / "cache")]


def test_walk_writes_frames_whose_ends_are_the_anchors_round_trips(shared, taef2, tmp_path):
    dog, pastry = shared / "images" / "dog.png", shared / "images" / "pastry.png"
    out = tmp_path / "walk"
    status = main(["walk", str(dog), str(pastry), "--path", "slerp", "--steps", "4", "-o", str(out),
                   "--batch", "3", *model_args(shared, tmp_path, "256")])
    assert status == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 4
    sidecar = json.loads((out / "frames.json").read_text())
    assert [f["position"] for f in sidecar["frames"]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert [a["name"] for a in sidecar["anchors"]] == ["dog", "pastry"]
    assert json.loads((out / "config.json").read_text())["size"] == [256, 256]
    for frame, image in ((frames[0], dog), (frames[-1], pastry)):
        with torch.no_grad():
            own = taef2.decode(taef2.encode(load_image(image, (256, 256))[None]))[0]
        own = (own * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy().astype(int)
        got = np.asarray(Image.open(frame).convert("RGB")).astype(int)
        assert got.shape == own.shape and np.abs(got - own).max() <= 1
    middle = np.asarray(Image.open(frames[1])).astype(int)
    assert np.abs(middle - np.asarray(Image.open(frames[0])).astype(int)).mean() > 5  # it moved


def test_walk_loop_through_seeds_and_a_latent_file(shared, tmp_path):
    out = tmp_path / "loop"
    status = main(["walk", "seed:1", "seed:2", "seed:3", "--path", "loop", "--steps", "3", "-o", str(out),
                   *model_args(shared, tmp_path, "64")])
    assert status == 0 and len(list(out.glob("frame_*.png"))) == 3
    positions = [f["position"] for f in json.loads((out / "frames.json").read_text())["frames"]]
    assert positions == pytest.approx([0, 1 / 3, 2 / 3])  # the loop's end is its start: not repeated


def test_walk_with_a_bad_anchor_fails_and_names_it(shared, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    status = main(["walk", "seed:1", str(bad), "--steps", "2", "-o", str(tmp_path / "w"),
                   *model_args(shared, tmp_path, "64")])
    assert status == 2 and "bad.png" in capsys.readouterr().err


def test_encode_writes_latents_reports_bad_files_and_hits_the_cache(shared, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    out = tmp_path / "latents"
    images = shared / "images"
    args = ["encode", str(images / "dog.png"), str(bad), str(images / "panda.png"), "-o", str(out),
            *model_args(shared, tmp_path, "64")]
    assert main(args) == 2
    first = capsys.readouterr()
    assert "broken.png" in first.err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "dog.safetensors", "panda.safetensors"]
    latent, meta = load_latent(out / "dog.safetensors")
    assert latent.shape == (32, 8, 8) and meta["family"] == "flux2" and meta["image"] == "dog.png"
    assert first.out.count(": encoded ->") == 2 and "1 failed" in first.out
    assert main(args) == 2
    again = capsys.readouterr().out
    assert again.count(": cache hit ->") == 2 and "0 encoded, 2 from the cache" in again
    torch.testing.assert_close(load_latent(out / "dog.safetensors")[0], latent)
