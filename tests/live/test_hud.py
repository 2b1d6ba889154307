"""What the HUD says is true: messages leave when they are stale or fixed, control -> screen is timed on
screen, freeze, the picture's place, the last control moved and the model's channel range are shown."""

from __future__ import annotations

import time

import mido
import numpy as np
import pytest

from instrument.config import Config
from instrument.events import ControlEvent, EventQueue, KeyInput
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.loop.status import (
    ERROR_SECONDS,
    HINT_SECONDS,
    NOTICE_SECONDS,
    ControlTimes,
    StatusBoard,
    describe,
)
from instrument.mailbox import Frame, Mailbox
from instrument.mapping import parse_mapping
from instrument.params import model_ranges
from instrument.performance import Coords, Performance
from instrument.render import Renderer

from .conftest import SIZE

MAPPING = """
version: 1
name: hud test
controls:
  - {cc: 0, param: position, takeover: pickup, label: fader 1}
  - {cc: 2, param: noise, smoothing: 0, label: fader 3}
  - {cc: 16, param: offset_channel, label: knob 1}
  - {cc: 4, param: offset, label: fader 5}
  - {cc: 32, param: anchor, action: set, value: 1, label: S2}
  - {cc: 74, param: walk_speed}
keys:
  - {key: space, param: freeze}
"""


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def cc(control: int, value: int, at: float) -> ControlEvent:
    return ControlEvent(at, "nanoKONTROL2:out", mido.Message("control_change", control=control, value=value))


def every_frame_decoded(*args, **kwargs):
    return Decoding(*args, **{**kwargs, "progressive": False})


def stepped(load, tmp_path, text=MAPPING, *, clock=None, watch=None):
    mapping, errors = parse_mapping(text, "hud.yaml")
    assert not errors
    queue, mailbox = EventQueue(), Mailbox()
    config = Config(size=(SIZE, SIZE), fps=20.0, record_root=str(tmp_path), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=load, clock=clock or SteppedClock(1000.0),
                        controls=lambda: Controls(mapping, queue=queue, watch_path=watch),
                        decoding=every_frame_decoded)
    return renderer, queue, mailbox


# -- messages leave the HUD -------------------------------------------------------------------------------


def test_an_error_leaves_the_hud_once_it_stops_happening():
    clock = FakeClock()
    board = StatusBoard(clock=clock)
    board.error("frame failed: boom")
    clock.t += ERROR_SECONDS - 1
    board.error("frame failed: boom")  # again: counted, and it stays longer
    assert board.errors == ("frame failed: boom (x2)",)
    clock.t += ERROR_SECONDS - 1
    assert board.errors == ("frame failed: boom (x2)",)
    clock.t += 2
    assert board.errors == ()  # fixed: it no longer happens, and it is gone


def test_a_fixed_mapping_clears_its_error_and_the_hud_confirms_the_reload():
    clock = FakeClock()
    board = StatusBoard(clock=clock)
    board.error("hud.yaml:3: controls[1].cc: 300 is outside 0..127", key="mapping")
    hint = "nanoKONTROL2: CC 0 does nothing in hud test"
    board.error(hint, key="unmapped nanoKONTROL2", seconds=HINT_SECONDS)
    board.mapping_changed("hud.yaml")
    assert board.errors == ("nanoKONTROL2: CC 0 does nothing in hud test",)
    assert board.notices == ("mapping reloaded: hud.yaml",)
    clock.t += max(NOTICE_SECONDS, HINT_SECONDS) + 0.1
    assert board.errors == () and board.notices == ()  # the hint and the confirmation go too


def test_a_broken_edit_then_a_fix_while_playing(session_loader, tmp_path):
    path = tmp_path / "hud.yaml"
    path.write_text(MAPPING)
    renderer, queue, mailbox = stepped(session_loader, tmp_path, clock=SteppedClock(), watch=path)
    renderer.prepare()

    def step_until(condition) -> bool:
        deadline = time.monotonic() + 20
        while not condition():
            if time.monotonic() > deadline:
                return False
            renderer.step()
            time.sleep(0.02)
        return True

    try:
        renderer.run_frames(2)
        path.write_text(MAPPING.replace("cc: 74", "cc: 740"))
        assert step_until(lambda: any("740" in e for e in renderer.status.errors))
        assert "the file has an error" in renderer.status.mapping
        path.write_text(MAPPING)
        assert step_until(lambda: renderer.status.notices == ("mapping reloaded: hud.yaml",))
        assert not any("740" in e for e in renderer.status.errors)
        assert renderer.status.mapping == "hud test"
    finally:
        renderer.close()


def test_a_broken_mapping_at_the_start_says_what_plays_instead(session_loader, tmp_path):
    from instrument.play import Session

    bad = tmp_path / "mine.yaml"
    bad.write_text(MAPPING.replace("cc: 74", "cc: 740"))
    config = Config(size=(SIZE, SIZE), fps=20, midi_ports="none", headless=True, frames=3, mapping=str(bad),
                    full_model="none")
    session = Session(config, load=session_loader)
    assert session.run() == 0
    status = session.renderer.status
    assert status.mapping.startswith("Computer keyboard and mouse (instead of mine.yaml) - the file has an")
    assert any("740" in e and "playing on keyboard.yaml until the file is fixed" in e for e in status.errors)


# -- control -> screen -------------------------------------------------------------------------------------


def test_control_times_follow_events_to_the_first_frame_that_moves_for_them():
    times = ControlTimes(start=10.0)
    still, moved, further = Coords("slerp", 0.0), Coords("slerp", 0.1), Coords("slerp", 0.2)
    early = ControlEvent(5.0, "port", mido.Message("control_change", control=1, value=3))  # while loading
    assert times.frame([early], still, True, 11.0)["controls_time"] is None  # waited for the model
    event = ControlEvent(12.0, "port", mido.Message("control_change", control=1, value=9))
    # A smoothed control: the frame read with it has not moved yet, the next one has.
    assert times.frame([event], still, True, 12.05)["controls_time"] is None
    blend = times.frame([], moved, False, 12.1)
    assert (blend["controls_time"], blend["exact"]) == (12.0, False)
    assert times.frame([], further, True, 12.9)["controls_time"] is None  # said once
    hud = ControlEvent(13.0, "keyboard", KeyInput("h", True))  # a control that moves no picture
    assert times.frame([hud], further, True, 13.05)["controls_time"] is None
    assert times.frame([], further, True, 14.5)["controls_time"] is None
    assert times.frame([], moved, True, 14.6)["controls_time"] is None  # forgotten: not timed seconds late


def test_a_frame_replaced_unseen_hands_its_control_time_on():
    mailbox = Mailbox()
    image = np.zeros((8, 8, 3), np.uint8)
    mailbox.put(Frame(0, 0.0, image, controls_time=5.0))
    mailbox.put(Frame(1, 0.1, image, controls_time=None, exact=False))
    shown = mailbox.latest()
    assert shown.index == 1 and shown.controls_time == 5.0 and not shown.exact


def test_the_window_times_control_to_the_first_exact_frame_on_screen(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from instrument.display import Display
    from instrument.mailbox import Status

    mailbox = Mailbox()
    display = Display(mailbox, EventQueue(), lambda: Status(phase="playing"), window_size=(200, 200))
    display.open()
    image = np.zeros((16, 16, 3), np.uint8)
    try:
        display.pump()
        assert display.measured.latency is None  # nothing timed before a control: "-", never a stale value
        arrived = time.monotonic() - 0.25
        mailbox.put(Frame(0, 0.0, image, controls_time=arrived, exact=False))  # a blend of the old frames
        display.pump()
        assert display.measured.latency is None and display.measured.catching_up
        time.sleep(0.1)
        mailbox.put(Frame(1, 0.05, image))  # the exact frame lands
        display.pump()
        assert 0.35 <= display.measured.latency < 5 and not display.measured.catching_up
    finally:
        display.close()


# -- the state shown ---------------------------------------------------------------------------------------


def test_where_says_what_the_picture_shows():
    names = ["dog", "pastry", "panda"]
    assert describe(Coords("slerp", 0.5, home=0), names) == "slerp: at pastry, picked dog (position relative)"
    assert describe(Coords("slerp", 0.5, home=1), names) == "slerp: at pastry"
    gliding = Coords("slerp", 1.0, glide_from=0.5, glide=0.4, home=2)
    assert describe(gliding, names) == "slerp: gliding to panda (40%)"
    between = describe(Coords("slerp", 0.2, home=0), names)
    assert between.startswith("slerp: between dog and pastry (40%)")
    held = describe(Coords("slerp", 0.5, home=1), names, held=True, mode="absolute")
    assert held == "slerp: at pastry, held until the position control moves (absolute)"
    offset = describe(Coords("slerp", 0.0, offset_channel=5, offset=1.5), names, channels=32)
    assert "offset ch 5/32 +1.50" in offset


def test_offset_channel_spans_the_models_channels():
    mapping, errors = parse_mapping(MAPPING + "  - {key: x, param: offset_channel, value: 40}\n", "hud.yaml")
    assert not errors
    controls = Controls(mapping)
    controls.fit(model_ranges(32))
    controls.apply(cc(16, 127, 1.0))
    controls.advance(1.0)
    assert controls.values(1.0)["offset_channel"] == 31  # the knob's top is the last channel, not 63 mod 32
    controls.apply(cc(16, 64, 1.1))
    controls.advance(1.1)
    assert controls.values(1.1)["offset_channel"] == 16
    controls.apply(ControlEvent(1.2, "keyboard", KeyInput("x", True)))
    controls.advance(1.2)
    assert controls.values(1.2)["offset_channel"] == 31  # a set beyond the model's channels is held inside
    assert ("CC 16 (knob 1)", "offset_channel 0..31") in controls.midi_help()


def test_the_hud_names_the_last_control_moved_and_its_value(session_loader, tmp_path):
    clock = SteppedClock(1000.0)
    renderer, queue, mailbox = stepped(session_loader, tmp_path, clock=clock)
    renderer.prepare()
    try:
        renderer.run_frames(2)
        queue.put(cc(2, 54, clock.now()))
        renderer.run_frames(2)
        assert renderer.status.moved == "noise 0.43 <- fader 3 (CC 2)"
        queue.put(cc(74, 100, clock.now()))  # no label in the mapping: the CC alone
        queue.put(cc(16, 127, clock.now()))  # offset_channel, while offset is 0: it seemed dead
        renderer.run_frames(2)
        moved = "offset_channel 31 <- knob 1 (CC 16) (nothing to see while offset is 0)"
        assert renderer.status.moved == moved
        queue.put(cc(0, 127, clock.now()))  # a pickup fader far from its parameter's value waits
        renderer.run_frames(2)
        assert renderer.status.moved == "fader 1 (CC 0) picks up position when it meets its value"
        queue.put(cc(32, 127, clock.now()))
        renderer.run_frames(2)
        assert renderer.status.moved == "anchor 2 (pastry) <- S2 (CC 32)"  # counted from 1, named
        clock.advance(6.0)
        renderer.run_frames(1)
        assert renderer.status.moved == ""  # a few seconds later it goes
    finally:
        renderer.close()


def space(queue: EventQueue, at: float) -> None:
    for down in (True, False):
        queue.put(ControlEvent(at, "keyboard", KeyInput("space", down)))


def test_freeze_shows_on_the_hud(session_loader, tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    import pygame

    from instrument.display.hud import FROZEN, Measured, Painter

    clock = SteppedClock(1000.0)
    renderer, queue, mailbox = stepped(session_loader, tmp_path, clock=clock)
    renderer.prepare()
    try:
        pygame.font.init()
        painter = Painter()

        def badge() -> int:
            surface = pygame.Surface((480, 400))
            painter.hud(surface, renderer.status, Measured())
            return (pygame.surfarray.array3d(surface) == FROZEN).all(axis=-1).sum()

        renderer.run_frames(1)
        assert renderer.status.frozen is False and badge() == 0
        space(queue, clock.now())
        renderer.run_frames(2)
        assert renderer.status.frozen is True and badge() > 500  # the FROZEN badge, under the HUD
        space(queue, clock.now())
        renderer.run_frames(2)
        assert renderer.status.frozen is False
    finally:
        renderer.close()


def test_pacing_and_bank_lines_count_what_a_performer_counts():
    from instrument.lab.live import pacing_line

    assert pacing_line({}) == "pacing on: nothing measured yet"
    assert pacing_line({"path slerp": 1}) == "pacing on: 1 path and 0 glides measured"
    assert pacing_line({"path slerp": 1, "glide slerp 0.0 1.0": 2, "glide slerp 1.0 0.0": 3}) == (
        "pacing on: 1 path and 2 glides measured")


# -- fader 1 after an anchor pad: relative or absolute -----------------------------------------------------


def values(**changes):
    from instrument.params import PARAMS

    return {name: p.default for name, p in PARAMS.items()} | {"tempo": 120.0, "beat": 0.0} | changes


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_position_after_an_anchor_pad(mode):
    performance = Performance(n_anchors=3)
    assert performance.step(values(position_mode=mode, position=0.25), 0.0).s == 0.25
    performance.step(values(position_mode=mode, position=0.25, transition=0.0), 0.1, pick=2)
    at_pad = performance.step(values(position_mode=mode, position=0.25, transition=0.0), 0.2)
    assert at_pad.s == 1.0 and at_pad.home == 2  # both: the pad's anchor shows
    moved = performance.step(values(position_mode=mode, position=0.125, transition=1.0), 0.3)
    if mode == "relative":  # the fader moves on from the picked anchor
        assert moved.s == 0.875 and moved.glide == 1.0
    else:  # the fader names its place on the path again: the picture glides there from the anchor
        assert moved.s == 0.125 and moved.glide < 1.0 and moved.glide_from == 1.0
        assert performance.step(values(position_mode=mode, position=0.125, transition=1.0), 1.4).glide == 1.0


# -- the preset made for a connected controller ----------------------------------------------------------


@pytest.mark.jack
def test_play_picks_the_preset_made_for_a_connected_port_and_says_so(jack_server, session_loader):
    from support import Sender

    from instrument.play import Session

    sender = Sender("nanoKONTROL2")  # a port called "nanoKONTROL2:out", as the controller's would be
    try:
        config = Config(size=(SIZE, SIZE), fps=20, midi_api="jack", midi_virtual=False, headless=True,
                        frames=3, full_model="none")
        session = Session(config, load=session_loader)
        assert session.run() == 0
    finally:
        sender.close()
    status = session.renderer.status
    assert status.mapping == "Korg nanoKONTROL2 (the preset for port nanoKONTROL2:out)"
    assert any(control.startswith("CC 16 (knob 1)") and what.startswith("offset_channel 0..31")
               for control, what in status.midi_help)  # its MIDI controls for help, fitted to the model


def test_play_ends_its_process_with_the_take_written_and_the_log_flushed(shared, tmp_path):
    """play leaves without the interpreter's teardown (seconds with torch loaded): nothing may be lost."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "SDL_VIDEODRIVER": "dummy"}
    done = subprocess.run(
        [sys.executable, "-m", "instrument", "play", "--headless", "--midi-ports", "none", "--frames", "4",
         "--record", "take", "--model", str(shared / "models" / "taef2_decoder.pth"), "--family", "flux2",
         "--full-model", "none", "--size", "64", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "take written" in done.stderr.splitlines()[-1]  # the last log line reached the terminal
    sidecar = json.loads((tmp_path / "take" / "recording.json").read_text())
    assert sidecar["status"] == "finished" and sidecar["frames_written"] >= 1


def test_render_help_says_a_smaller_size_is_not_faster():
    import argparse

    from instrument.replay import configure_render

    parser = argparse.ArgumentParser(prog="render", formatter_class=lambda prog: argparse.HelpFormatter(
        prog, width=1000))
    configure_render(parser)
    size = next(line for line in parser.format_help().splitlines() if "--size" in line and "take" in line)
    assert "decode at the take's size" in size and "not a faster render" in size
