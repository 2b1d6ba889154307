"""The window, with SDL's dummy video driver: it opens, shows frames, the HUD toggles, Esc quits cleanly."""

from __future__ import annotations

import threading
import time

import pygame
import pytest

from instrument.config import Config
from instrument.display import letterbox
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
