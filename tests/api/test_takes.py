"""``li.open_take``: a take recorded by the real render loop (stepped, no thread), read for analysis."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import torch

import instrument as li
from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping
from instrument.render import Renderer
from instrument.replay import TakeError

from .conftest import SIZE

MAPPING = """
version: 1
name: test
controls:
  - {cc: 1, param: position, smoothing: 0}
  - {cc: 2, param: noise, smoothing: 0}
"""
FRAMES = 8


def exact_frames(*args, **kwargs):
    """The decode stage with no blends: every frame exact (deterministic when stepped)."""
    return Decoding(*args, **{**kwargs, "progressive": False})


@pytest.fixture(scope="module")
def take(shared, anchors, tmp_path_factory):
    """A take of FRAMES frames at 20 fps: the position fader moved at frame 2, noise at frame 5. (Its
    model is its own: the render loop's frame pipeline switches a model's layout to channels_last.)"""
    model = li.load(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="fp32")
    folder = tmp_path_factory.mktemp("takes") / "take"
    mapping, errors = parse_mapping(MAPPING, "test.yaml")
    assert not errors
    queue, clock = EventQueue(), SteppedClock(start=100.0)
    config = Config(size=(SIZE, SIZE), fps=20.0, seed=3, full_model="none", frames=FRAMES,
                    record_root=str(folder.parent))
    load = lambda say: (model, None, anchors.latents.clone(), anchors.names, [])  # noqa: E731
    renderer = Renderer(config, queue=queue, mailbox=Mailbox(), load=load, clock=clock,
                        controls=lambda: Controls(mapping, queue=queue), decoding=exact_frames,
                        record=str(folder))
    renderer.prepare()
    try:
        renderer.run_frames(2)
        queue.put(ControlEvent(clock.now(), "test", mido.Message("control_change", control=1, value=64)))
        renderer.run_frames(3)
        queue.put(ControlEvent(clock.now(), "test", mido.Message("control_change", control=2, value=127)))
        renderer.run_frames(10)
    finally:
        renderer.close()
    return li.open_take(folder)


def test_a_take_opens_with_its_frames_coordinates_and_events(take, anchors):
    assert len(take) == FRAMES and take.names == anchors.names
    assert take.frame_numbers == list(range(FRAMES))
    assert take.times == pytest.approx(np.arange(FRAMES) / 20)
    coords = take.coords
    assert coords[1].s == 0 and coords[3].s == pytest.approx(64 / 127, abs=1e-3)
    assert coords[4].noise == 0 and coords[6].noise > 0 and coords[6].walk_t > 0
    events = take.events
    assert [n for n, _ in events] == [2, 5]
    assert [e.message.control for _, e in events] == [1, 2]
    assert take.settings.seed == 3 and take.settings.size == (SIZE, SIZE)
    assert "8 frames, 2 control events" in repr(take)


def test_a_takes_latents_are_the_render_loops(take, model, anchors):
    assert torch.equal(take.anchors, anchors.latents.cpu())
    latents = take.latents()
    assert latents.shape == (FRAMES, 32, 8, 8)
    std = model.family.latent_std
    for i in (0, 3, 6):
        own = li.latent_at(anchors.latents, take.coords[i], seed=3, std=std)
        assert torch.allclose(latents[i], own, atol=1e-4)
    assert torch.equal(take.latents([3, 6]), latents[[3, 6]]) and len(take.latents(slice(2, 4))) == 2
    decoded = li.decode(model, latents[3], output="array")
    recorded = np.asarray(take.image(3))
    assert recorded.shape == (SIZE, SIZE, 3) and np.abs(recorded.astype(int) - decoded).max() <= 1


def test_a_take_re_renders_through_the_render_command(take, model, tmp_path):
    result = take.render(out=tmp_path / "again", model=str(model.source), offline=True)
    assert result.frames == FRAMES and result.mismatches == 0
    assert result.coords == take.coords


def test_a_damaged_take_names_the_file(take, tmp_path):
    with pytest.raises(TakeError, match="recording.json: not found"):
        li.open_take(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "recording.json").write_text(json.dumps(take.sidecar))
    (broken / "frames.jsonl").write_text('{"n": 0, "coords": {"path": "slerp"}}\n{"n": 1}\n')
    with pytest.raises(TakeError, match="frames.jsonl:1: bad coordinates"):
        li.open_take(broken)
