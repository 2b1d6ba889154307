"""The render thread with the real taef2 decoder: faults keep it playing, the cache makes laps free."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import support
import torch

from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.framecache import FrameCache
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping
from instrument.params import PARAMS
from instrument.performance import Performance
from instrument.recorder import Recorder, atomic_write

from .conftest import SIZE, wait_for

MAPPING = """
version: 1
name: test
controls:
  - {cc: 1, param: position}
  - {cc: 2, param: record, action: toggle}
notes:
  - {notes: 60-61, anchor: 0, behaviour: jump}
"""



def make_renderer(load, tmp_path, **kwargs):
    from instrument.render import Renderer

    mapping, errors = parse_mapping(MAPPING, "test.yaml")
    assert not errors
    queue, mailbox = EventQueue(), Mailbox()
    config = Config(size=(SIZE, SIZE), fps=20, record_root=str(tmp_path / "takes"), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=load,
                        controls=lambda: Controls(mapping, queue=queue), **kwargs)
    return renderer, queue, mailbox


def cc(control, value):
    message = mido.Message("control_change", control=control, value=value)
    return ControlEvent(time.monotonic(), "test", message)


def test_a_nan_frame_never_reaches_the_mailbox(session_loader, taef2, tmp_path, monkeypatch):
    renderer, queue, mailbox = make_renderer(session_loader, tmp_path)
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        good = mailbox.peek()
        # The network itself gives NaN: the plain decode and the accelerated frame pipeline both run it.
        nan = lambda z: torch.full((1, 3, SIZE, SIZE), float("nan"))  # noqa: E731
        monkeypatch.setattr(taef2.decoder_module, "forward", nan)
        queue.put(cc(1, 127))  # a new point, so the frame cache cannot answer
        assert wait_for(lambda: any("NonFiniteDecode" in e for e in renderer.status.errors))
        count, last = mailbox.count, mailbox.peek()
        time.sleep(0.3)
        assert mailbox.count == count  # nothing published while the decoder gives NaN
        # The last good frame stays: the one before the NaN, or (CPU) a blend of good frames shown meanwhile.
        assert mailbox.peek() is last and (last is good or last.image.std() > 0)
        assert renderer.is_alive()
        monkeypatch.undo()
        queue.put(cc(1, 64))
        assert wait_for(lambda: mailbox.count > count)  # and it plays on once decoding works again
    finally:
        renderer.stop()
        renderer.join(5)
    assert not renderer.is_alive() and renderer.failure is None


def test_a_full_disk_stops_recording_while_play_goes_on(session_loader, tmp_path):
    def full_disk(path: Path, data: bytes) -> None:
        if path.suffix == ".png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        atomic_write(path, data)

    def recorder(folder, sidecar, **kwargs):
        return Recorder(folder, sidecar, write_file=full_disk, **kwargs)

    renderer, queue, mailbox = make_renderer(session_loader, tmp_path, recorder=recorder,
                                             record=str(tmp_path / "take"))
    renderer.start()
    try:
        assert wait_for(lambda: any("No space left" in e for e in renderer.status.errors))
        assert wait_for(lambda: renderer.recorder is None)  # the take is closed
        count = mailbox.count
        assert wait_for(lambda: mailbox.count > count + 3)  # frames keep coming
        queue.put(cc(2, 127))  # the record control starts a new take, which fails the same way
        assert wait_for(lambda: len(renderer.takes) == 2)
    finally:
        renderer.stop()
        renderer.join(5)
    assert renderer.failure is None


def test_an_unwritable_record_folder_is_reported(session_loader, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    renderer, _, mailbox = make_renderer(session_loader, tmp_path, record=str(blocker / "take"))
    renderer.start()
    try:
        assert wait_for(lambda: any("recording stopped" in e for e in renderer.status.errors))
        count = mailbox.count
        assert wait_for(lambda: mailbox.count > count + 3)
    finally:
        renderer.stop()
        renderer.join(5)


@pytest.mark.parametrize("lead_ms", [10_000.0, 1.0])
def test_reading_ahead_keeps_frames_in_order_and_takes_exact(session_loader, taef2, tmp_path, monkeypatch,
                                                             lead_ms):
    """Behind the clock, the loop reads frame n+1's controls while frame n decodes (on a GPU; here the CPU
    decode thread with blends off): at once (a lead longer than the decode) or ``read_ahead_ms`` before
    the decode is expected done. Frames still come in order, a take started and stopped mid-session holds
    whole frames and re-renders exactly, ``frames`` is exact."""
    from instrument import render
    from instrument.recorder import FRAMES, read_jsonl
    from instrument.replay import rerender

    def every_frame_decoded(*args, **kwargs):  # as on a GPU (no blends)
        return Decoding(*args, **{**kwargs, "progressive": False})

    small = lambda say: (taef2, None, torch.nn.functional.interpolate(  # noqa: E731
        session_loader(say)[2], size=(4, 4)), ["dog", "pastry"], [])
    # The random walk's wander: a new point every frame, so that the frame cache does not answer.
    mapping, errors = parse_mapping(MAPPING + "initial: {noise: 0.3}\n", "wander.yaml")
    assert not errors
    queue, mailbox = EventQueue(), Mailbox()
    config = Config(size=(32, 32), fps=2000.0, frames=400, record_root=str(tmp_path / "takes"),
                    full_model="none", read_ahead_ms=lead_ms)
    renderer = render.Renderer(config, queue=queue, mailbox=mailbox, load=small, decoding=every_frame_decoded,
                               controls=lambda: Controls(mapping, queue=queue))
    seen: list[int] = []
    put = mailbox.put
    monkeypatch.setattr(mailbox, "put", lambda frame: (seen.append(frame.index), put(frame)))
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 5)
        for value in (20, 40):
            queue.put(cc(1, value))
            time.sleep(0.05)
        queue.put(cc(2, 127))  # record on, mid-session, behind the clock
        assert wait_for(lambda: renderer.recorder is not None)
        for value in (60, 80, 100, 120):
            queue.put(cc(1, value))
            time.sleep(0.05)
        queue.put(cc(2, 0))  # record off
        assert wait_for(lambda: renderer.recorder is None)
        assert wait_for(lambda: renderer.finished)
    finally:
        renderer.stop()
        renderer.join(5)
    assert renderer.failure is None
    assert renderer.frames == len(seen) == 400  # config.frames, with a frame read ahead at the end
    assert renderer.read_ahead > 100
    assert seen == sorted(set(seen))
    live = read_jsonl(renderer.takes[0] / FRAMES)
    assert len(live) >= 5 and len({f["coords"]["s"] for f in live}) >= 3
    result = rerender(renderer.takes[0], load=lambda config: (taef2, None), progress=False)
    support.assert_as_played(result, read_jsonl(result.folder / FRAMES), live)


def test_a_control_the_mapping_does_not_use_is_named_once_per_port(session_loader, tmp_path):
    """A controller plugged in after a start on the keyboard mapping, or a knob the mapping does not know:
    the HUD says which control does nothing and what to do, once per port (not per message)."""
    renderer, queue, mailbox = make_renderer(session_loader, tmp_path)
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        queue.put(cc(1, 64))  # mapped: nothing to say
        for value in range(0, 30, 3):
            queue.put(cc(74, value))
            queue.put(cc(75, value))
        assert wait_for(lambda: any("does nothing" in e for e in renderer.status.errors))
        other = ControlEvent(time.monotonic(), "second port", mido.Message("note_on", note=70, velocity=90))
        queue.put(other)
        assert wait_for(lambda: sum("does nothing" in e for e in renderer.status.errors) == 2)
        time.sleep(0.2)
    finally:
        renderer.stop()
        renderer.join(5)
    told = [e for e in renderer.status.errors if "does nothing" in e]
    assert len(told) == 2 and "CC 74 (channel 1) does nothing in test" in told[0] and "--mapping" in told[0]
    assert told[1].startswith("second port: note 70")


def test_on_the_default_mapping_the_hint_does_not_suggest_it(session_loader, tmp_path):
    from instrument.mapping import DEFAULT_MAPPING, load_mapping
    from instrument.render import Renderer

    queue, mailbox = EventQueue(), Mailbox()
    mapping = load_mapping(DEFAULT_MAPPING)
    config = Config(size=(SIZE, SIZE), fps=20, record_root=str(tmp_path / "takes"), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=session_loader,
                        controls=lambda: Controls(mapping, queue=queue))
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        queue.put(cc(119, 5))
        assert wait_for(lambda: any("does nothing" in e for e in renderer.status.errors))
    finally:
        renderer.stop()
        renderer.join(5)
    (told,) = [e for e in renderer.status.errors if "does nothing" in e]
    assert "CC 119" in told and "learn" in told and "default.yaml" not in told


def test_a_loops_second_lap_decodes_nothing(taef2, anchor_latents):
    decoding = Decoding(anchor_latents, taef2, None, out_size=(SIZE, SIZE), seed=0, cache=FrameCache())
    performance = Performance(n_anchors=2)
    values = {name: p.default for name, p in PARAMS.items()} | {"tempo": 240.0, "beat": 0.0,
                                                                 "speed": 1.0, "path": "loop"}
    # 240 bpm: one bar (one lap at speed 1) per second; 12 frames per lap.
    first = [decoding.image(performance.step(values, n / 12)) for n in range(12)]
    misses = decoding.cache.misses
    second = [decoding.image(performance.step(values, n / 12)) for n in range(12, 24)]
    assert decoding.cache.misses == misses == 12
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert second[0].shape == (SIZE, SIZE, 3) and second[0].dtype == np.uint8


def test_frames_are_resized_on_the_device(taef2, anchor_latents):
    decoding = Decoding(anchor_latents, taef2, None, out_size=(200, 100), seed=0)
    performance = Performance(n_anchors=2)
    values = {name: p.default for name, p in PARAMS.items()} | {"tempo": 120.0, "beat": 0.0}
    assert decoding.image(performance.step(values, 0.0)).shape == (100, 200, 3)


def test_the_full_decoder_plays_through_its_own_frame_pipeline(taef2, anchor_latents):
    """``decoder: full`` live (and in ``render``) goes through the full decoder's FastDecoder where there is
    one: the same picture as its plain decode, and the fast pipeline untouched."""
    from instrument.accel import AccelOptions, FastDecoder
    from instrument.decoders import load_autoencoder

    full = load_autoencoder(str(Path(taef2.source)), family="flux2", device="cpu", dtype="fp32")
    fast_frames = FastDecoder(taef2, (SIZE, SIZE), AccelOptions())
    full_frames = FastDecoder(full, (SIZE, SIZE), AccelOptions(subpixel=True))
    decoding = Decoding(anchor_latents, taef2, full, out_size=(SIZE, SIZE), seed=0, fast_frames=fast_frames,
                        full_frames=full_frames)
    plain = Decoding(anchor_latents, taef2, full, out_size=(SIZE, SIZE), seed=0)
    values = {name: p.default for name, p in PARAMS.items()} | {"tempo": 120.0, "beat": 0.0, "position": 0.4}
    coords = Performance(n_anchors=2).step(values, 0.0)
    try:
        image, exact = decoding.frame(coords, "full")
        assert exact and full_frames.frames == 1 and fast_frames.frames == 0
        assert int(np.abs(image.astype(int) - plain.render(coords, "full")).max()) <= 1
        decoding.frame(coords, "fast")
        assert fast_frames.frames == 1 and full_frames.frames == 1
    finally:
        fast_frames.close()
        full_frames.close()


def test_resting_controls_get_the_full_decoder_and_recording_keeps_the_fast_frames(taef2, anchor_latents,
                                                                                     tmp_path):
    from instrument.decoders import load_autoencoder

    full = load_autoencoder(str(Path(taef2.source)), family="flux2", device="cpu", dtype="fp32")
    full.label = "second decoder"

    def load(say):
        return taef2, full, anchor_latents.clone(), ["dog", "pastry"], []

    renderer, queue, mailbox = make_renderer(load, tmp_path, record=str(tmp_path / "take"))
    renderer.start()
    try:
        assert wait_for(lambda: (mailbox.peek() is not None and mailbox.peek().decoder == "full"))
        assert renderer.status.full_decoder == "second decoder"
        queue.put(cc(1, 100))  # moving again: fast frames until the controls rest
        assert wait_for(lambda: mailbox.peek().decoder == "fast" and mailbox.peek().coords.s > 0.5)
        assert wait_for(lambda: mailbox.peek().decoder == "full" and mailbox.peek().coords.s > 0.5)
    finally:
        renderer.stop()
        renderer.join(5)
    from instrument.recorder import FRAMES, read_jsonl

    assert len(read_jsonl(tmp_path / "take" / FRAMES)) > 5


def press(queue, control):
    """A button CC: pressed, then released once the render thread has seen the press."""
    queue.put(cc(control, 127))
    time.sleep(0.2)
    queue.put(cc(control, 0))


def test_a_take_started_mid_session_re_renders_exactly(session_loader, taef2, tmp_path):
    """The record control starts a take after the performer has already moved: the re-render replays the
    pre-roll (events and frame times before the take) and lands on the same coordinates."""
    from instrument.recorder import FRAMES, read_jsonl
    from instrument.replay import rerender

    renderer, queue, mailbox = make_renderer(session_loader, tmp_path)
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        for value in (20, 60, 90):  # moves before the take
            queue.put(cc(1, value))
            time.sleep(0.15)
        press(queue, 2)  # record on
        assert wait_for(lambda: renderer.recorder is not None)
        for value in (40, 10, 127):
            queue.put(cc(1, value))
            time.sleep(0.15)
        queue.put(ControlEvent(time.monotonic(), "test", mido.Message("note_on", note=61, velocity=90)))
        time.sleep(0.3)
        press(queue, 2)  # record off
        assert wait_for(lambda: renderer.recorder is None)
    finally:
        renderer.stop()
        renderer.join(5)
    take = renderer.takes[0]
    live = read_jsonl(take / FRAMES)
    assert len(live) > 5 and live[0]["n"] > 0
    result = rerender(take, load=lambda config: (taef2, None), progress=False)
    again = read_jsonl(result.folder / FRAMES)
    support.assert_as_played(result, again, live)
    assert len({f["coords"]["s"] for f in live}) > 2 and live[-1]["coords"]["home"] == 1


def test_a_mapping_initial_section_sets_where_a_session_starts():
    """keyboard.yaml starts the picture moving round a loop: something alive before any key is pressed."""
    from instrument.loop.controls import Controls
    from instrument.mapping import KEYBOARD_MAPPING, load_mapping

    controls = Controls(load_mapping(KEYBOARD_MAPPING))
    controls.state.advance(1.0)
    assert controls.state.value("path") == "loop"
    assert controls.state.value("speed") == dict(controls.mapping.initial)["speed"] > 0


def test_cpu_play_reports_the_exact_rate_apart(session_loader, tmp_path):
    renderer, queue, mailbox = make_renderer(session_loader, tmp_path)
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        for value in range(0, 120, 10):  # one event a frame or so
            queue.put(cc(1, value))
            time.sleep(0.06)
        # On the CPU blends fill in between exact frames; the HUD gets the exact-frame rate apart.
        assert renderer.decoding.progressive is not None
        assert wait_for(lambda: renderer.status.exact_fps is not None)
    finally:
        renderer.stop()
        renderer.join(10)
    assert renderer.failure is None
