"""The windows, with SDL's dummy video driver: the control window opens at a size that fits the screen, shows
frames, the HUD toggles, help lists the mapping's MIDI controls, F12 says where it saved, Esc quits cleanly;
an output window on a display of its own shows the picture alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pygame
import pytest

from instrument.config import Config
from instrument.display import Display, fit_window, letterbox
from instrument.events import EventQueue
from instrument.mailbox import Frame, Mailbox, Status
from instrument.play import Session

from .conftest import SIZE, wait_for

OUR_THREADS = ("render", "recorder", "midi-reconnect")


def post_key(key: int) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
    pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=0, unicode="", scancode=0))



def test_letterbox_keeps_the_aspect():
    assert letterbox((512, 256), (800, 800)) == pygame.Rect(0, 200, 800, 400)
    assert letterbox((256, 512), (800, 400)) == pygame.Rect(300, 0, 200, 400)


def test_window_hud_toggle_and_esc_quit(session_loader, tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    config = Config(size=(SIZE, SIZE), fps=20, window=(320, 240), midi_ports="none",
                    record=str(tmp_path / "take"))
    session = Session(config, load=session_loader)
    seen: dict = {}

    def performer() -> None:
        try:
            assert wait_for(lambda: session.display is not None and session.display._frame is not None)
            seen["size"] = session.display.surface.get_size()
            seen["hud_before"] = session.display.hud
            post_key(pygame.K_TAB)
            assert wait_for(lambda: not session.display.hud, 5)
            post_key(pygame.K_F1)
            assert wait_for(lambda: session.display.help, 5)
            seen["hud_after"] = session.display.hud
            seen["esc"] = time.monotonic()
            post_key(pygame.K_ESCAPE)
        except AssertionError as exc:
            seen["error"] = exc
            session.renderer.stop()

    thread = threading.Thread(target=performer)
    thread.start()
    status = session.run()
    finished = time.monotonic()
    thread.join()
    assert "error" not in seen, seen.get("error")
    assert status == 0
    assert seen["size"] == (320, 240)
    assert seen["hud_before"] is True and seen["hud_after"] is False
    assert finished - seen["esc"] < 1.0  # quit, threads joined, take finished: within a second
    alive = [t.name for t in threading.enumerate() if t.name in OUR_THREADS]
    assert alive == []
    assert (tmp_path / "take" / "recording.json").exists()
    assert '"status": "finished"' in (tmp_path / "take" / "recording.json").read_text()


def test_loading_screen_then_failure_message(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")

    def broken(say):
        say("loading the decoder")
        time.sleep(0.3)
        raise RuntimeError("no such model")

    session = Session(Config(size=(64, 64), window=(200, 200), midi_ports="none"), load=broken)
    shots = []

    def watcher():
        assert wait_for(lambda: session.display is not None and session.renderer.status.phase == "loading")
        shots.append(session.renderer.status.message)
        assert wait_for(lambda: session.renderer.status.phase == "failed")
        shots.append(session.renderer.status.message)
        post_key(pygame.K_q)

    thread = threading.Thread(target=watcher)
    thread.start()
    status = session.run()
    thread.join()
    assert status == 1  # the render thread failed; the window said why until the performer quit
    assert shots[0] == "loading the decoder" and "no such model" in shots[1]


@pytest.fixture(autouse=True)
def _no_leftover_display():
    yield
    pygame.display.quit()


def test_a_window_fits_the_screen():
    room = (1280 - 40, 800 - 120)  # a 1280x800 screen less the title bar, menu bar and dock
    assert fit_window((512, 512), (1280, 800)) == (680, 680)  # as large as fits, the picture's shape
    assert fit_window((768, 512), (1280, 800)) == (1020, 680)
    assert fit_window((512, 512), (1280, 800), (960, 960)) == (680, 680)  # asked too large: made smaller
    assert fit_window((512, 512), (1280, 800), (640, 480)) == (640, 480)  # asked and fits: as asked
    w, h = fit_window((512, 4096), (1280, 800))
    assert w <= room[0] and h <= room[1]


def test_the_default_window_is_sized_to_the_display(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # a 1024x768 desktop
    display = Display(Mailbox(), EventQueue(), lambda: Status(), picture_size=(768, 512))
    display.open()
    try:
        assert display.surface.get_size() == fit_window((768, 512), (1024, 768)) == (972, 648)
    finally:
        display.close()


def frame_of(colour, size=(64, 64)) -> Frame:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = colour
    return Frame(0, 0.0, image)


def test_the_output_window_shows_the_picture_alone_and_the_control_window_keeps_the_hud(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    mailbox = Mailbox()
    status = Status(phase="playing", mapping="test", anchors=("dog", "pastry"), where="slerp: at dog")
    display = Display(mailbox, EventQueue(), lambda: status, window_size=(400, 300), output_display=0)
    display.open()
    try:
        assert display.output is not None and display.output.size == (1024, 768)  # full screen on display 0
        mailbox.put(frame_of((200, 40, 40)))
        display.pump()
        shown = pygame.surfarray.array3d(display.output.renderer.to_surface())
        picture = letterbox((64, 64), (1024, 768))
        inside = shown[picture.x:picture.right, picture.y:picture.bottom]
        assert (inside == (200, 40, 40)).all()  # the whole picture, no HUD over it
        assert (shown[:picture.x] == 0).all()  # letterboxed
        control = pygame.surfarray.array3d(display.surface)
        hud = control[15:300, 15:60]  # the HUD's panel over the control window's picture
        assert not (hud == (200, 40, 40)).all(axis=-1).all()
    finally:
        display.close()
    assert display.output is None


def test_an_output_display_that_is_not_there_is_said_and_play_goes_on(monkeypatch, caplog):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    mailbox = Mailbox()
    display = Display(mailbox, EventQueue(), lambda: Status(phase="playing"), window_size=(300, 200),
                      output_display=3)
    display.open()
    try:
        assert display.output is None
        assert "there is no display 3 for the output window (found 0: 1024x768" in display._toast[0]
        mailbox.put(frame_of((10, 200, 10)))
        assert display.pump()
        assert display._frame is not None
    finally:
        display.close()
    assert "no output window" in caplog.text


def test_f12_saves_where_it_says(monkeypatch, tmp_path):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    display = Display(Mailbox(), EventQueue(), lambda: Status(phase="playing"), window_size=(300, 200),
                      screenshots=tmp_path / "recordings")
    display.open()
    try:
        display.pump()
        post_key(pygame.K_F12)
        display.pump()
        saved = list((tmp_path / "recordings").glob("screenshot-*.png"))
        assert len(saved) == 1 and display.taken == saved[0]
        assert display._toast[0] == f"screenshot saved: {saved[0].resolve()}"
        display.screenshots = tmp_path / "recordings" / saved[0].name / "below a file"
        post_key(pygame.K_F12)
        assert display.pump()  # a screenshot that cannot be written is said, and play goes on
        assert display._toast[0].startswith("screenshot not saved:")
    finally:
        display.close()


def test_help_lists_the_mappings_midi_controls_with_their_labels(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from instrument.display.help import draw_help, help_rows
    from instrument.loop.controls import Controls
    from instrument.mapping import PRESETS, load_mapping
    from instrument.params import model_ranges

    controls = Controls(load_mapping(PRESETS / "korg-nanokontrol2.yaml"))
    controls.fit(model_ranges(32))
    status = Status(mapping="Korg nanoKONTROL2 (the preset for port nanoKONTROL2)", keys=controls.keys(),
                    midi_help=controls.midi_help())
    rows = help_rows(status)
    assert ("", "MIDI controls of Korg nanoKONTROL2") in rows
    assert ("CC 16 (knob 1)", "offset_channel 0..31") in rows
    assert len([r for r in rows if r[0].startswith("CC ")]) == len(controls.mapping.controls)
    # The second S button: anchors counted from 1, as on the HUD.
    assert any(key.startswith("CC 33") and what == "anchor 2" for key, what in rows)
    pygame.font.init()
    surface = pygame.Surface((680, 680))
    draw_help(surface, status)  # every row in columns that fit the window
    assert pygame.surfarray.array3d(surface).any()
