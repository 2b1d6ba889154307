"""Make docs/screenshot.png: the instrument's window with its HUD, played for a few seconds.

Needs an X display (e.g. ``Xvfb :99 -screen 0 1280x800x24 & DISPLAY=:99 python tests/live/screenshot.py``)
and the shared taef2 pair and images. Not a test: pytest does not collect it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pygame

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from instrument.config import Config  # noqa: E402
from instrument.play import Session  # noqa: E402


def key(name: int, down: bool) -> None:
    kind = pygame.KEYDOWN if down else pygame.KEYUP
    pygame.event.post(pygame.event.Event(kind, key=name, mod=0, unicode="", scancode=0))


def main(out: Path, with_help: bool = False) -> None:
    images = [str(SHARED / "images" / f"{name}.png") for name in ("dog", "pastry", "panda", "scribe")]
    config = Config(model=str(SHARED / "models" / "taef2_decoder.pth"), family="flux2", full_model="none",
                    offline=True, size=(384, 384), fps=24, window=(960, 640), fullscreen=True,
                    midi_ports="none", record_root="/tmp/latent-screenshot")
    session = Session(config, images)

    def perform() -> None:
        while session.display is None or session.display._frame is None:
            time.sleep(0.05)
        key(pygame.K_r, True)  # record, so that the HUD shows it
        key(pygame.K_r, False)
        key(pygame.K_n, True)  # a little wandering
        key(pygame.K_n, False)
        key(pygame.K_RIGHT, True)  # travel along the path for a while
        time.sleep(1.6)
        key(pygame.K_RIGHT, False)
        time.sleep(1.0)
        if with_help:
            key(pygame.K_F1, True)
            key(pygame.K_F1, False)
            time.sleep(0.5)
        session.display.screenshot(out)
        while session.display.taken is None:
            time.sleep(0.05)
        key(pygame.K_ESCAPE, True)

    threading.Thread(target=perform, daemon=True).start()
    session.run()
    print(f"saved {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshot.png", "--help" in sys.argv)
