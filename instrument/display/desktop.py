"""The screens the windows go on: their sizes (``doctor`` lists them) and a window size that fits.

SDL numbers the displays from 0 (the main one, with the menu bar or task bar, is usually 0). A window's
default size fits its picture into the desktop of display 0 with room for the title bar, a menu bar and a
dock, so that no part of it is ever off screen.
"""

from __future__ import annotations

import pygame

# Room left around a default window: the title bar, a menu bar and a dock (macOS), a task bar (Windows).
MARGIN = (40, 120)  # pixels across, down


def desktop_sizes() -> list[tuple[int, int]]:
    """(w, h) of each display's desktop, display 0 first (pygame.display must be initialised)."""
    return [tuple(size) for size in pygame.display.get_desktop_sizes()]


def fit_window(picture: tuple[int, int], desktop: tuple[int, int],
               asked: tuple[int, int] | None = None) -> tuple[int, int]:
    """A window size for a ``picture`` (w, h) on a ``desktop`` (w, h): ``asked`` when it fits, else the
    largest of its shape (or, with nothing asked, of the picture's shape) that fits inside the desktop less
    ``MARGIN``."""
    room = (max(64, desktop[0] - MARGIN[0]), max(64, desktop[1] - MARGIN[1]))
    if asked is not None and asked[0] <= room[0] and asked[1] <= room[1]:
        return tuple(asked)
    w, h = asked or picture
    scale = min(room[0] / w, room[1] / h)
    return max(64, int(w * scale)), max(64, int(h * scale))

