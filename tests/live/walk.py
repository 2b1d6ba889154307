"""A VJ's walk through play, for looking at: a virtual nanoKONTROL2 on JACK, the window under Xvfb, a
screenshot of the whole X screen at each step. Not a test: pytest does not collect it.

    Xvfb :93 -screen 0 1280x800x24 &  jackd --no-realtime -d dummy &
    DISPLAY=:93 python tests/live/walk.py OUT_FOLDER [--two-windows]

The preset is chosen by the port's name (no --mapping). Steps: fader 1, an S pad (anchor 2), knob 1 (the
offset channel) with fader 5 down then up, freeze on and off, pacing, help (the M8 button), F12, a broken
then fixed copy of a mapping (with ``MAPPING=file``), Esc. With ``--two-windows`` the X screen should be
2560x800: the control window on its left half, the output window moved to its right half (Xvfb has one
display, so the output window is placed where a second one would be) for README's picture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pygame
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support import Sender  # noqa: E402

from instrument.config import Config  # noqa: E402
from instrument.play import Session  # noqa: E402


class _XImage(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int),
                ("bitmap_pad", ctypes.c_int), ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int)]


def grab(path: Path) -> None:
    """The whole X screen of $DISPLAY as a PNG (libX11 through ctypes: no screenshot tool needed)."""
    x11 = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11"))
    x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype, x11.XDefaultRootWindow.argtypes = ctypes.c_ulong, [ctypes.c_void_p]
    x11.XGetImage.restype = ctypes.POINTER(_XImage)
    x11.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                              ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    for name in ("XDisplayWidth", "XDisplayHeight"):
        getattr(x11, name).argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = x11.XOpenDisplay(None)
    w, h = x11.XDisplayWidth(display, 0), x11.XDisplayHeight(display, 0)
    image = x11.XGetImage(display, x11.XDefaultRootWindow(display), 0, 0, w, h, 0xFFFFFFFF, 2).contents
    raw = ctypes.string_at(image.data, image.bytes_per_line * h)  # ZPixmap, 32 bits: B, G, R, unused
    pixels = np.frombuffer(raw, np.uint8).reshape(h, image.bytes_per_line // 4, 4)
    Image.fromarray(np.ascontiguousarray(pixels[:, :w, 2::-1])).save(path)
    x11.XCloseDisplay(display)


def main(out: Path, two_windows: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)7.0f %(name)s: %(message)s")
    out.mkdir(parents=True, exist_ok=True)
    sender = Sender("nanoKONTROL2")
    images = [str(SHARED / "images" / f"{name}.png") for name in ("dog", "pastry", "panda", "scribe")]
    mapping = os.environ.get("MAPPING", "")
    config = Config(model=str(SHARED / "models" / "taef2_decoder.pth"), family="flux2", full_model="none",
                    offline=True, size=(384, 384), fps=24, midi_api="jack", mapping=mapping,
                    record_root=str(out / "recordings"), output_display=0 if two_windows else None,
                    window=(1240, 680) if two_windows else None)
    if two_windows:  # the control window on the left half (SDL reads this before it places a window)
        os.environ["SDL_VIDEO_WINDOW_POS"] = "20,40"
    session = Session(config, images)
    shots = iter(range(1, 100))

    def cc(number: int, value: int) -> None:
        sender.send([0xB0, number, value])

    def press(number: int) -> None:
        cc(number, 127)
        time.sleep(0.05)
        cc(number, 0)

    def shot(name: str, wait: float = 1.5) -> None:
        time.sleep(wait)
        grab(out / f"{next(shots):02d}-{name}.png")

    def key(name: int) -> None:
        for kind in (pygame.KEYDOWN, pygame.KEYUP):
            pygame.event.post(pygame.event.Event(kind, key=name, mod=0, unicode="", scancode=0))

    def perform() -> None:
        while session.display is None or session.display._frame is None:
            time.sleep(0.05)
        if two_windows:  # where a second display would be: the right half of the wide screen
            window = session.display.output.window
            window.set_windowed()
            window.size, window.position = (1280, 800), (1280, 0)
        shot("start", 3)
        for value in range(0, 90, 6):
            cc(0, value)
            time.sleep(0.03)
        shot("fader-1")
        press(33)
        shot("pad-S2-gliding", 0.3)
        shot("pad-S2-there", 3)
        cc(16, 127)
        shot("knob-1-offset-0")
        for value in range(0, 127, 8):
            cc(4, value)
            time.sleep(0.03)
        shot("fader-5-offset")
        press(49)
        shot("freeze-on")
        press(49)
        shot("freeze-off")
        press(51)
        shot("pacing", 3)
        if mapping:
            good = Path(mapping).read_text()
            Path(mapping).write_text(good + "\ncontrols: [oops\n")
            shot("mapping-broken", 2.5)
            Path(mapping).write_text(good)
            shot("mapping-fixed", 2.5)
        press(55)
        shot("help")
        press(55)
        key(pygame.K_F12)
        shot("f12", 0.6)
        shot("later", 8)
        key(pygame.K_ESCAPE)

    threading.Thread(target=perform, daemon=True).start()
    try:
        session.run()
    finally:
        sender.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("walk"), "--two-windows" in sys.argv)
