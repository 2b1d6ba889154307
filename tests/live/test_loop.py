"""The render loop stepped without a thread (a stepped clock), and the full decoder's redraw kept off it."""

from __future__ import annotations

import copy
import time

import mido
import pytest
import support
import torch
from torch import nn

from instrument.config import Config
from instrument.decoders.autoencoder import Autoencoder
from instrument.events import ControlEvent, EventQueue
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping
from instrument.render import Renderer

from .conftest import SIZE, wait_for

MAPPING = """
version: 1
name: test
controls:
  - {cc: 1, param: position}
  - {cc: 2, param: record, action: toggle}
"""


def every_frame_decoded(*args, **kwargs):
    """The decode stage with no blends: every frame exact, as on a GPU (deterministic for stepping)."""
    return Decoding(*args, **{**kwargs, "progressive": False})


def stepped_renderer(load, tmp_path, clock, record=None, **config):
    mapping, errors = parse_mapping(MAPPING, "test.yaml")
    assert not errors
    queue, mailbox = EventQueue(), Mailbox()
    settings = dict(size=(SIZE, SIZE), fps=20.0, record_root=str(tmp_path / "takes"), full_model="none")
    renderer = Renderer(Config(**{**settings, **config}), queue=queue, mailbox=mailbox, load=load,
                        controls=lambda: Controls(mapping, queue=queue), clock=clock,
                        decoding=every_frame_decoded, record=record)
    return renderer, queue, mailbox


def cc(control: int, value: int, at: float) -> ControlEvent:
    return ControlEvent(at, "test", mido.Message("control_change", control=control, value=value))


def test_stepping_makes_each_frame_at_its_time_without_a_thread(session_loader, tmp_path):
    clock = SteppedClock(start=1000.0)
    renderer, queue, mailbox = stepped_renderer(session_loader, tmp_path, clock)
    renderer.prepare()
    try:
        assert renderer.run_frames(3) == 3
        frames = [mailbox.latest()]
        assert frames[0].index == 2 and frames[0].time == pytest.approx(renderer.start_time + 2 / 20)
        still = frames[0].coords
        queue.put(cc(1, 127, clock.now()))  # the fader to the top: the next frame is at the last anchor
        assert renderer.step()
        moved = mailbox.latest()
        assert moved.index == 3 and moved.coords.s > 0.5 and still.s == 0.0  # (smoothed on its way)
        assert moved.latency == pytest.approx(0.05)  # the event waited for frame 3's time
        assert not (moved.image == frames[0].image).all()
        renderer.run_frames(10)
        assert mailbox.latest().coords.s == 1.0
        assert not renderer.is_alive()  # no thread ever ran
    finally:
        renderer.close()
    assert renderer.finished and renderer.failure is None


def test_a_take_stepped_frame_by_frame_holds_every_frame(session_loader, tmp_path):
    from instrument.recorder import FRAMES, SIDECAR, read_jsonl

    clock = SteppedClock(start=50.0)
    renderer, queue, mailbox = stepped_renderer(session_loader, tmp_path, clock, frames=12)
    renderer.prepare()
    try:
        renderer.run_frames(2)
        queue.put(cc(2, 127, clock.now()))  # record on
        renderer.run_frames(4)
        queue.put(cc(2, 0, clock.now()))
        renderer.step()
        queue.put(cc(2, 127, clock.now()))  # record off (a toggle on the press)
        assert renderer.run_frames(100) == 5  # config.frames ends the session
    finally:
        renderer.close()
    take = renderer.takes[0]
    lines = read_jsonl(take / FRAMES)
    assert [line["n"] for line in lines] == [2, 3, 4, 5, 6]  # toggled off before frame 7
    assert all((take / line["file"]).is_file() for line in lines)
    import json

    assert json.loads((take / SIDECAR).read_text())["status"] == "finished"


class Sleeping(nn.Module):
    """A layer that takes ``seconds`` (without holding the GIL: a stand-in for a slow convolution)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def slow_full_decoder(taef2, seconds: float, layers: int = 30) -> Autoencoder:
    """taef2's decoder behind ``layers`` slow layers: a full decoder that takes ``seconds`` a frame."""
    decoder = copy.deepcopy(taef2.decoder_module)  # (a full decoder shares no layer with the fast one)
    module = nn.Sequential(*[Sleeping(seconds / layers) for _ in range(layers)], decoder)
    return Autoencoder(module, None, family=taef2.family, label="slow full", arch="taesd",
                       latent_scale=taef2.latent_scale, latent_shift=taef2.latent_shift,
                       pixel_range=taef2.pixel_range)


def test_a_knob_move_after_a_rest_does_not_wait_for_the_full_decoder(taef2, anchor_latents, tmp_path):
    """A CPU with a full decoder: the redraw of a still frame runs in the background; a knob move while it
    runs reaches the screen within a couple of frames (the lab measures between frames meanwhile, a batch at
    a time), and the redraw is dropped."""
    full = slow_full_decoder(taef2, seconds=4.0)
    load = lambda say: (taef2, full, anchor_latents.clone(), ["dog", "pastry"], [])  # noqa: E731
    mapping, _ = parse_mapping(MAPPING, "test.yaml")
    queue, mailbox = EventQueue(), Mailbox()
    config = Config(size=(SIZE, SIZE), fps=20.0, record_root=str(tmp_path / "takes"))
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=load,
                        controls=lambda: Controls(mapping, queue=queue))
    renderer.start()
    try:
        assert wait_for(lambda: renderer.decoding is not None and renderer.decoding.refinement.busy)
        still = mailbox.peek().coords
        put = time.monotonic()
        queue.put(cc(1, 127, put))
        assert wait_for(lambda: mailbox.peek().coords.s > 0.5, timeout=10)
        waited = time.monotonic() - put
        assert waited < 1.5, f"the knob waited {waited:.2f} s for the screen"  # the redraw takes 4 s
        # Resting at the new point, the redraw (cancelled before) is made there and shown.
        assert wait_for(lambda: mailbox.peek().decoder == "full", timeout=30)
        assert mailbox.peek().coords.s == 1.0
        assert renderer.decoding.key(still, "full") not in renderer.decoding.cache  # cancelled, not made
    finally:
        renderer.stop()
        renderer.join(30)
    assert renderer.failure is None


def test_a_stall_neither_shortens_the_take_nor_moves_its_events(session_loader, taef2, tmp_path):
    """The live loop stalls for a second (a slow disk, a long measurement): it skips the frames it missed,
    and an event that came during the stall is applied late. The re-render draws every frame of the take's
    time span, with the event at the frame of its own time, so that the video lines up with the music."""
    from instrument.recorder import FRAMES, read_jsonl
    from instrument.replay import rerender

    clock = SteppedClock(start=10.0)
    take = str(tmp_path / "take")
    renderer, queue, mailbox = stepped_renderer(session_loader, tmp_path, clock, record=take)
    renderer.prepare()
    interval = renderer.interval
    try:
        renderer.run_frames(5)  # frames 0-4 on time
        clock.advance(1.0)  # the stall: frame 5 is made a second late
        renderer.step()
        queue.put(cc(1, 127, renderer.start_time + 10 * interval))  # came in the stall, at frame 10's time
        renderer.run_frames(5)
    finally:
        renderer.close()
    take = renderer.takes[0]
    live = read_jsonl(take / FRAMES)
    ns = [line["n"] for line in live]
    assert ns[:6] == [0, 1, 2, 3, 4, 5] and ns[6] > 20  # the live loop skipped what it missed
    result = rerender(take, load=lambda config: (taef2, None), progress=False)
    again = read_jsonl(result.folder / FRAMES)
    assert [line["n"] for line in again] == list(range(0, ns[-1] + 1))  # the take's whole span
    s = {line["n"]: line["coords"]["s"] for line in again}
    assert s[10] == 0.0 and s[11] > 0.3  # the fader moved at its own time, not at the end of the stall
    assert result.mismatches == 0  # and the frames that were played are as played


def test_a_take_begun_after_a_long_session_re_renders_exactly(session_loader, taef2, tmp_path):
    """Thousands of control events (MIDI clock, a knob, notes) before the take: it starts from a snapshot
    of the state, not from a replay of the whole session, and its re-render lands on the live coordinates."""
    from instrument.recorder import EVENTS, FRAMES, read_jsonl
    from instrument.replay import rerender

    clock = SteppedClock(start=5.0)
    renderer, queue, mailbox = stepped_renderer(session_loader, tmp_path, clock)
    renderer.prepare()
    try:
        for k in range(60):  # a long session, compressed: clock pulses, knob moves and notes every frame
            at = clock.now()
            for _ in range(100):
                queue.put(ControlEvent(at, "clock", mido.Message("clock")))
            queue.put(cc(1, (k * 37) % 128, at))
            if k % 7 == 0:
                queue.put(ControlEvent(at, "pads", mido.Message("note_on", note=60, velocity=100)))
            renderer.step()
        queue.put(cc(2, 127, clock.now()))  # record on, 6,000 clock pulses in
        for k in range(12):
            queue.put(cc(1, (k * 53) % 128, clock.now()))
            renderer.step()
    finally:
        renderer.close()
    take = renderer.takes[0]
    live = read_jsonl(take / FRAMES)
    assert len(read_jsonl(take / EVENTS)) < 100  # the take holds its own events, not the session's
    result = rerender(take, load=lambda config: (taef2, None), progress=False)
    again = read_jsonl(result.folder / FRAMES)
    assert result.mismatches == 0 and len(again) == len(live) == 12
    rendered, played = support.as_played(again, live)
    assert rendered == played
    assert len({f["coords"]["s"] for f in live}) > 3


def test_a_flood_is_counted_on_the_hud_and_in_the_take_and_nan_values_change_nothing(session_loader,
                                                                                      tmp_path):
    """Far more notes between two frames than the queue keeps: the drops are said on the HUD and written
    into the take's sidecar by type; a NaN or infinite value from a broken source is ignored."""
    import json

    from instrument.events import KEPT_LIMIT
    from instrument.recorder import SIDECAR

    clock = SteppedClock(start=3.0)
    renderer, queue, mailbox = stepped_renderer(session_loader, tmp_path, clock,
                                                record=str(tmp_path / "take"))
    renderer.prepare()
    try:
        renderer.run_frames(2)
        at = clock.now()
        for k in range(KEPT_LIMIT + 5000):  # notes 0-59: no anchor mapped, each note on and its note off
            note = mido.Message("note_on" if k % 2 == 0 else "note_off", note=(k // 2) % 60, velocity=64)
            queue.put(ControlEvent(at, "flood", note))
        state = renderer.parts.controls.state
        before = state.value("position")
        state.set("position", float("nan"), at)
        state.set("position", float("inf"), at)
        assert renderer.run_frames(3) == 3 and renderer.failure is None
        assert state.value("position") == before
        assert any("events dropped" in e and "note_on" in e for e in renderer.board.errors)
    finally:
        renderer.close()
    sidecar = json.loads((tmp_path / "take" / SIDECAR).read_text())
    dropped = sidecar["events_dropped"]
    assert dropped["note_on"] > 0 and sum(dropped.values()) >= 5000
