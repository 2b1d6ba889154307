"""The output window: the picture alone, full screen on a display of its own (a projector, an LED wall).

A second SDL window (``pygame._sdl2.video``) beside the control window that ``pygame.display`` owns; both
live on the main thread (SDL on macOS wants it). It has no vsync, so presenting it never waits for a screen
refresh: the display loop shows each new frame here first, then draws the control window.
"""

from __future__ import annotations

import os

import numpy as np
import pygame
from pygame._sdl2.video import Renderer, Texture, Window

from instrument.display.desktop import desktop_sizes
from instrument.display.hud import letterbox

CENTRED_ON_DISPLAY = 0x2FFF0000  # SDL_WINDOWPOS_CENTERED_DISPLAY(n) is this | n


class OutputWindow:
    """A full-screen window on display ``display`` (0 is the main one) showing frames, letterboxed.

    Raises ValueError, saying which displays there are, when there is no display ``display``."""

    def __init__(self, display: int, title: str = "Latent Instrument output") -> None:
        sizes = desktop_sizes()
        if not 0 <= display < len(sizes):
            found = ", ".join(f"{i}: {w}x{h}" for i, (w, h) in enumerate(sizes))
            raise ValueError(f"there is no display {display} for the output window (found {found}; "
                             "`latent-instrument doctor` lists them)")
        os.environ.setdefault("SDL_RENDER_SCALE_QUALITY", "linear")  # (smooth scaling of the texture)
        where = CENTRED_ON_DISPLAY | display
        self.display = display
        self.window = Window(title, size=sizes[display], position=(where, where))
        self.window.set_fullscreen(desktop=True)
        self.renderer = Renderer(self.window, vsync=False)
        self._texture: Texture | None = None

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.window.size)

    def owns(self, event: pygame.event.Event) -> bool:
        """Did ``event`` happen in this window?"""
        return getattr(event, "window", None) is self.window

    def show(self, image: np.ndarray) -> None:
        """Show ``image`` [H, W, 3] uint8 RGB, letterboxed."""
        image = np.ascontiguousarray(image)
        surface = pygame.image.frombuffer(image.tobytes(), (image.shape[1], image.shape[0]), "RGB")
        self._texture = Texture.from_surface(self.renderer, surface)
        self.present()

    def present(self) -> None:
        """Draw the last image again (after a resize, or to keep the window alive)."""
        self.renderer.draw_color = (0, 0, 0, 255)
        self.renderer.clear()
        if self._texture is not None:
            self._texture.draw(dstrect=letterbox((self._texture.width, self._texture.height), self.size))
        self.renderer.present()

    def close(self) -> None:
        self.window.destroy()
