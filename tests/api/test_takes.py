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
from instrument.lab.measure import GEODESIC
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
  - {cc: 3, param: path}
"""
FRAMES = 8


def exact_frames(*args, **kwargs):
    """The decode stage with no blends: every frame exact (deterministic when stepped)."""
    return Decoding(*args, **{**kwargs, "progressive": False})


def recorder(shared, anchors, folder, frames: int) -> tuple[Renderer, EventQueue, SteppedClock]:
    """The render loop, stepped, recording a take of at most ``frames`` frames at 20 fps into ``folder``
    (prepared; the caller closes it). Its model is its own: the render loop's frame pipeline switches a
    model's layout to channels_last."""
    model = li.load(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="fp32")
    mapping, errors = parse_mapping(MAPPING, "test.yaml")
    assert not errors
    queue, clock = EventQueue(), SteppedClock(start=100.0)
    config = Config(size=(SIZE, SIZE), fps=20.0, seed=3, full_model="none", frames=frames,
                    record_root=str(folder.parent))
    load = lambda say: (model, None, anchors.latents.clone(), anchors.names, [])  # noqa: E731
    renderer = Renderer(config, queue=queue, mailbox=Mailbox(), load=load, clock=clock,
                        controls=lambda: Controls(mapping, queue=queue), decoding=exact_frames,
                        record=str(folder))
    renderer.prepare()
    return renderer, queue, clock


@pytest.fixture(scope="module")
def take(shared, anchors, tmp_path_factory):
    """A take of FRAMES frames: the position fader moved at frame 2, noise at frame 5."""
    folder = tmp_path_factory.mktemp("takes") / "take"
    renderer, queue, clock = recorder(shared, anchors, folder, FRAMES)
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


def test_a_take_on_the_geodesic_path_has_the_routes_it_played(shared, anchors, model, tmp_path, monkeypatch):
    monkeypatch.setitem(GEODESIC, "cpu", (4, 2))  # 4 control points, 2 steps: quick on two cores
    renderer, queue, clock = recorder(shared, anchors, tmp_path / "take", 400)
    try:
        for control, value in ((1, 40), (3, 127)):  # (the last path kind: geodesic)
            queue.put(ControlEvent(clock.now(), "test", mido.Message("control_change", control=control,
                                                                     value=value)))
        while renderer.run_frames(10) and renderer.parts.decoding.latents.routes is None:
            pass  # (resting, the lab finds the routes a batch of decodes a frame, SLERP meanwhile)
        renderer.run_frames(2)
        played = renderer.parts.decoding.latents.routes
    finally:
        renderer.close()
    take = li.open_take(tmp_path / "take")
    kinds = [c.path for c in take.coords]
    assert played is not None and kinds[-1] == "geodesic" and "slerp" in kinds
    latents = take.latents()
    std = model.family.latent_std
    for i in (kinds.index("slerp"), len(take) - 1):
        own = li.latent_at(anchors.latents, take.coords[i], seed=3, std=std, routes=played)
        assert torch.allclose(latents[i], own, atol=1e-4)
    (tmp_path / "take" / "geodesic" / "routes.safetensors").write_bytes(b"junk")
    with pytest.raises(TakeError, match="routes.safetensors"):
        take.latents()


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
