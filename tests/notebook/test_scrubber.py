"""The Scrubber widget driven from Python: sliders in, pictures out, on play's decode stage."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import instrument as li
from instrument.lab.measure import GEODESIC
from instrument.performance import WALK_FLOOR

from .conftest import MISSING, SIZE

pytest.importorskip("ipywidgets", reason=MISSING)


def decoded(model, latent: torch.Tensor) -> np.ndarray:
    return li.decode(model, latent, output="array").astype(int)


def shown_picture(scrubber) -> Image.Image:
    """The picture the browser gets (the Image widget's bytes)."""
    return Image.open(io.BytesIO(scrubber.picture.value))


def cpu_decode_threads() -> int:
    return sum(t.name == "cpu-decode" and t.is_alive() for t in threading.enumerate())


def test_a_slider_change_shows_a_new_picture(model, anchors):
    with li.Scrubber(model, anchors) as scrubber:
        first, sent = scrubber.frame, scrubber.picture.value
        assert first.shape == (SIZE, SIZE, 3) and shown_picture(scrubber).size == (SIZE, SIZE)
        assert np.abs(first.astype(int) - decoded(model, anchors[0])).max() <= 1
        scrubber.position.value = 0.5  # a script: the change waits for its exact frame
        assert scrubber.exact and scrubber.shown == "fast"
        assert scrubber.picture.value != sent and not np.array_equal(scrubber.frame, first)
        assert np.abs(scrubber.frame.astype(int) - decoded(model, anchors[1])).max() <= 1  # 0.5 of 3 anchors
        assert "TAESD (taef2" in scrubber.status.value and "exact" in scrubber.status.value
        jpeg = np.asarray(shown_picture(scrubber).convert("RGB")).astype(int)
        assert np.abs(jpeg - scrubber.frame).mean() < 4  # what the browser shows is that frame


def test_the_sliders_are_plays_coordinates(model, anchors):
    with li.Scrubber(model, anchors, seed=5) as scrubber:
        scrubber.set(path="loop", position=0.3, noise=0.4, wander=2.5, lock_channels=8, lock_region="left",
                     hold=1, offset=1.0, offset_channel=3)
        coords = scrubber.coords
        assert (coords.path, coords.s, coords.noise, coords.walk_t) == ("loop", 0.3, 0.4, 2.5)
        assert (coords.home, coords.lock_channels, coords.lock_region) == (1, 8, "left")
        std = model.family.latent_std
        own = li.latent_at(anchors.latents, coords, seed=5, std=std)
        assert torch.allclose(scrubber.latent, own, atol=1e-4)
        assert torch.equal(scrubber.latent[:8], anchors[1][:8])  # the locked channels hold anchor 1
        assert np.abs(scrubber.frame.astype(int) - decoded(model, own)).max() <= 2
        scrubber.set(path="walk", noise=0.0)
        assert scrubber.coords.noise == WALK_FLOOR  # the walk path wanders at noise 0, as in play


def test_set_fits_values_to_the_sliders_and_refuses_others(model, anchors):
    with li.Scrubber(model, anchors) as scrubber:
        scrubber.set(position=5, lock_channels=999, offset=-10)
        values = (scrubber.position.value, scrubber.lock_channels.value, scrubber.offset.value)
        assert values == (1.0, 32, -3.0)
        with pytest.raises(KeyError, match="no slider called speed"):
            scrubber.set(speed=1.0)
        with pytest.raises(ValueError, match="'zigzag' is not one of"):
            scrubber.set(path="zigzag")
        with pytest.raises(ValueError, match="not one of"):
            scrubber.set(hold=7)


def test_resting_sliders_get_the_full_decoders_redraw(model, anchors, full):
    with li.Scrubber(model, anchors, full=full) as scrubber:
        fast = scrubber.frame
        scrubber.settle()  # as if the sliders rested: the full decoder redraws
        assert scrubber.shown == "full" and "inverted taef2" in scrubber.status.value
        assert np.abs(scrubber.frame.astype(int) - (255 - fast.astype(int))).max() <= 1
        scrubber.position.value = 1.0
        assert scrubber.shown == "fast"  # moving again: the fast decoder's picture


def test_on_the_kernels_loop_a_drag_shows_blends_then_the_exact_frame_then_the_redraw(model, anchors, full):
    async def drag() -> tuple[list[tuple[bool, str]], np.ndarray, float]:
        seen = []
        with li.Scrubber(model, anchors, full=full) as scrubber:
            for position in (0.1, 0.2, 0.3):
                scrubber.position.value = position  # (as the browser's messages set it)
                seen.append((scrubber.exact, scrubber.shown))
                await asyncio.sleep(0)
            start = time.monotonic()
            while scrubber.shown != "full" and time.monotonic() - start < 60:
                await asyncio.sleep(0.02)
                seen.append((scrubber.exact, scrubber.shown))
            return seen, scrubber.frame, scrubber.decoding.progressive.approx_frames

    seen, frame, blends = asyncio.run(drag())
    assert (False, "fast") in seen and blends > 0  # a CPU shows blends while the exact frame decodes
    assert (True, "fast") in seen  # then the exact frame lands, from the loop
    assert seen[-1] == (True, "full")  # and, resting, the full decoder's redraw
    own = li.latent_at(anchors.latents, li.Coords(path="slerp", s=0.3))
    assert np.abs(frame.astype(int) - (255 - decoded(model, own))).max() <= 1


def test_pictures_are_shown_at_the_size_asked_for(model, anchors):
    with li.Scrubber(model, anchors, size=(96, 80)) as scrubber:
        scrubber.position.value = 1.0
        assert scrubber.frame.shape == (80, 96, 3) and shown_picture(scrubber).size == (96, 80)
        assert (scrubber.picture.width, scrubber.picture.height) == ("96", "80")


def test_a_frame_that_fails_is_said_and_the_last_picture_stays(model, anchors):
    with li.Scrubber(model, anchors) as scrubber:
        last = scrubber.frame
        scrubber.decoding.latents.anchors = anchors.latents[:, :4]  # 4 channels for a 32-channel decoder
        scrubber.position.value = 0.75
        assert scrubber.status.value.startswith("frame failed:") and scrubber.frame is last
    with pytest.raises(ValueError, match=r"plays anchors \[N, 32, h, w\], not \(3, 4, 8, 8\)"):
        li.Scrubber(model, anchors.latents[:, :4])


def test_the_geodesic_path_plays_slerp_until_its_routes_are_found(model, anchors, monkeypatch):
    monkeypatch.setitem(GEODESIC, "cpu", (4, 2))  # 4 control points, 2 steps: quick on two cores
    two = anchors.latents[:2]

    async def choose() -> tuple[tuple, torch.Tensor, np.ndarray, torch.Tensor]:
        with li.Scrubber(model, two) as scrubber:
            scrubber.set(position=0.4, path="geodesic")  # (as the browser's messages set them)
            meanwhile = (scrubber.coords.path, scrubber.exact, scrubber.status.value)
            deadline = time.monotonic() + 60
            while not (scrubber.coords.path == "geodesic" and scrubber.exact) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return meanwhile, scrubber.latent, scrubber.frame, scrubber.decoding.latents.routes

    meanwhile, latent, frame, routes = asyncio.run(choose())
    assert meanwhile[:2] == ("slerp", False) and meanwhile[2].startswith("geodesic: finding the routes")
    found = li.geodesic(model, two[0], two[1], points=4, iterations=2)  # the lab's own, from the library
    # (the same search, its decodes rounded differently: the scrubber runs channels_last, one at a time)
    start = li.slerp(two[0], two[1], torch.linspace(0, 1, 5))
    assert routes.shape == (1, 5, 32, 8, 8)
    assert (routes[0] - found.points).abs().max() < 0.05 * (found.points - start).abs().max()
    own = li.latent_at(two, li.Coords(path="geodesic", s=0.4), routes=routes)
    assert torch.allclose(latent, own, atol=1e-5)
    assert np.abs(frame.astype(int) - decoded(model, own)).max() <= 1


def test_a_geodesic_that_cannot_be_found_is_said_and_slerp_plays(model, anchors, monkeypatch):
    monkeypatch.setitem(GEODESIC, "cpu", (1, 2))  # one control point: no route between two anchors
    with li.Scrubber(model, anchors) as scrubber:
        scrubber.set(position=0.4, path="geodesic")  # a script: waits until the search ends
        assert scrubber.status.value.startswith("geodesic unavailable, SLERP instead: ValueError")
        assert scrubber.exact and scrubber.coords.path == "slerp"
        slerp = li.latent_at(anchors.latents, li.Coords(path="slerp", s=0.4))
        assert np.abs(scrubber.frame.astype(int) - decoded(model, slerp)).max() <= 1


def test_close_stops_the_decode_threads(model, anchors, full):
    before = cpu_decode_threads()
    scrubber = li.Scrubber(model, anchors, full=full)
    assert cpu_decode_threads() >= before + 1
    scrubber.close()
    assert cpu_decode_threads() == before
