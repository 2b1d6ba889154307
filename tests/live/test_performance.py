"""Performance: controls and time -> coordinates -> latents: deterministic, anchors hit exactly."""

from __future__ import annotations

import math

import pytest
import torch

from instrument.params import PARAMS
from instrument.performance import Coords, Performance, anchor_position, ease, fold, latent_at


def controls(**changes):
    values = {name: p.default for name, p in PARAMS.items()}
    values.update(tempo=120.0, beat=0.0)
    values.update(changes)
    return values


@pytest.fixture
def anchors():
    return torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))


def run(performance, timeline):
    return [performance.step(c, t, pick) for t, c, pick in timeline]


def test_position_hits_anchors_exactly(anchors):
    p = Performance(n_anchors=3)
    for position, k in ((0.0, 0), (0.5, 1), (1.0, 2)):
        coords = p.step(controls(position=position), 0.0)
        assert torch.equal(latent_at(anchors, coords), anchors[k])


def test_same_inputs_same_coordinates_and_latents(anchors):
    timeline = [(i / 30, controls(position=i / 90, speed=0.3, noise=0.2 if i > 20 else 0.0, path="loop"),
                 1 if i == 40 else None) for i in range(90)]
    a, b = run(Performance(3), timeline), run(Performance(3), timeline)
    assert a == b
    assert torch.equal(latent_at(anchors, a[70], seed=3), latent_at(anchors, b[70], seed=3))
    assert len(set(a)) > 50  # it does move


def test_speed_travels_path_lengths_per_bar():
    p = Performance(n_anchors=3)
    # 120 bpm: a bar is 2 s; speed 0.25 -> a quarter of the loop in 2 s.
    for i in range(61):
        coords = p.step(controls(speed=0.25, path="loop"), i / 30)
    assert coords.s == pytest.approx(0.25, abs=1e-3)


def test_loop_second_lap_repeats_coordinates():
    p = Performance(n_anchors=3)
    # 2 s per lap at 30 fps: lap two lands on the same (rounded) coordinates, so the frame cache hits.
    laps = [p.step(controls(speed=1.0, path="loop"), n / 30) for n in range(120)]
    assert laps[:60] == laps[60:]


def test_pick_glides_with_ease_and_lands(anchors):
    p = Performance(n_anchors=3)
    p.step(controls(), 0.0)
    start = p.step(controls(transition=1.0), 1.0, pick=2)
    assert start.glide == 0.0 and start.s == 1.0 and start.home == 2
    assert torch.allclose(latent_at(anchors, start), anchors[0])
    middle = p.step(controls(transition=1.0), 1.5)
    assert middle.glide == pytest.approx(0.5, abs=1 / 256)
    end = p.step(controls(transition=1.0), 2.0)
    assert end.glide == 1.0
    assert torch.equal(latent_at(anchors, end), anchors[2])
    assert ease(0.1) < 0.1 and ease(0.9) > 0.9


def test_position_moves_relative_to_the_picked_anchor():
    p = Performance(n_anchors=3)
    p.step(controls(position=1.0), 0.0)
    coords = p.step(controls(position=1.0, transition=0.0), 0.1, pick=0)
    assert coords.s == 0.0 and coords.glide == 1.0  # jump: transition 0
    # The fader now moves from anchor 0; below it the path bounces off its start (a ping-pong path).
    assert p.step(controls(position=0.75), 0.2).s == 0.25
    assert p.step(controls(position=1.0), 0.3).s == 0.0


def test_sync_ends_glide_on_a_beat():
    p = Performance(n_anchors=2)
    p.step(controls(), 0.0)
    # 120 bpm, at beat 0.3; a 0.6 s glide would end at beat 1.5 -> it is stretched to beat 2 (t = 0.85 s).
    p.step(controls(transition=0.6, sync=True, beat=0.3), 0.0, pick=1)
    assert p.glide_end == pytest.approx((2 - 0.3) * 0.5)


def test_freeze_holds_everything_and_resumes():
    p = Performance(n_anchors=3)
    moving = dict(speed=1.0, path="loop")
    p.step(controls(**moving), 0.0)
    held = p.step(controls(freeze=True, **moving), 0.1)
    assert p.step(controls(freeze=True, **moving), 5.0) == held
    after = p.step(controls(**moving), 5.1)
    assert after.s == pytest.approx(held.s + 0.05, abs=1e-3)


def test_noise_offset_and_locks(anchors):
    p = Performance(n_anchors=3)
    plain = p.step(controls(), 0.0)
    noisy = Performance(3).step(controls(noise=0.5), 0.0)
    assert noisy.walk_t == 0.0 and noisy.noise == 0.5
    moved = latent_at(anchors, noisy, seed=1) - latent_at(anchors, plain)
    assert 0.3 < moved.std().item() < 0.7
    offset = Coords("slerp", 0.0, offset=1.0, offset_channel=5)  # channel wraps around 4
    assert torch.allclose(latent_at(anchors, offset)[1] - anchors[0][1], torch.ones(8, 8))
    locked = Coords("slerp", 1.0, home=0, lock_channels=2)
    out = latent_at(anchors, locked)
    assert torch.equal(out[:2], anchors[0][:2]) and torch.equal(out[2:], anchors[2][2:])


def test_fold_and_positions():
    assert fold(1.25, loop=False) == 0.75 and fold(-0.25, loop=False) == 0.25
    assert fold(1.25, loop=True) == 0.25
    assert anchor_position(2, 4, loop=True) == 0.5 and anchor_position(2, 3, loop=False) == 1.0
    assert math.isclose(Coords.from_json(Coords("loop", 0.5).to_json()).s, 0.5)
