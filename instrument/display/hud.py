"""The heads-up display: what the control window says over the picture, and how it draws text panels.

Everything on it is current: rates and the control -> screen latency the window itself measured, the mapping
and why it plays, the anchors (counted from 1), where the picture is in words, the last control moved and
the value it set, a FROZEN badge, the lab's readouts, the scenes and gesture loops, recording, MIDI and
audio state, and messages that leave on their own (``loop.status``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pygame

from instrument.mailbox import Status

TEXT = (235, 235, 235)
WARN = (255, 170, 60)
REC = (255, 70, 70)
DIM = (150, 150, 150)
GOOD = (120, 230, 140)
MOVED = (140, 210, 255)
FROZEN = (90, 200, 255)
Line = tuple[str, tuple[int, int, int]]


def letterbox(image_size: tuple[int, int], window_size: tuple[int, int]) -> pygame.Rect:
    """The largest rectangle of the image's aspect centred in the window."""
    iw, ih = image_size
    ww, wh = window_size
    scale = min(ww / iw, wh / ih)
    w, h = max(1, round(iw * scale)), max(1, round(ih * scale))
    return pygame.Rect((ww - w) // 2, (wh - h) // 2, w, h)


@dataclasses.dataclass
class Measured:
    """What the window measured itself: control -> screen latency of the last control shown (seconds), its
    own frame rate, and whether the frame on screen is a blend while the exact one decodes."""

    latency: float | None = None
    fps: float = 0.0
    catching_up: bool = False


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def hud_lines(status: Status, measured: Measured) -> list[Line]:
    """The HUD's lines, top to bottom, each with its colour."""
    exact = "" if status.exact_fps is None else f" (exact {status.exact_fps:.1f})"
    full = f"   full: {status.full_decoder}" if status.full_decoder else ""
    anchors = "  ".join(f"{i + 1} {name}" for i, name in enumerate(status.anchors)) or "-"
    lines: list[Line] = [
        (f"render {status.render_fps:4.1f} fps{exact}   display {measured.fps:4.1f} fps   "
         f"control to screen {_ms(measured.latency)}   frame {status.frames}", TEXT),
        (f"decoder: {status.decoder or '-'}{full}", TEXT),
        (f"mapping: {status.mapping or '-'}", TEXT),
        (f"anchors: {anchors}", TEXT),
    ]
    if status.where:
        lag = "  (the picture catches up: blends until its exact frame lands)" if measured.catching_up else ""
        lines.append((status.where + lag, DIM))
    if status.moved:
        lines.append((status.moved, MOVED))
    if status.message and status.phase == "playing":
        lines.append((status.message, WARN))
    lines.extend((line, TEXT) for line in status.lab)
    if status.scenes:
        lines.append((status.scenes, TEXT))
    if status.recording:
        lines.append(("REC  " + status.recording, REC))
    if status.midi:
        midi = "; ".join(state if port == "midi" else f"{port}: {state}" for port, state in status.midi)
        lines.append(("MIDI: " + midi, DIM))
    lines.extend((notice, GOOD) for notice in status.notices)
    lines.extend((error, WARN) for error in status.errors[-3:])
    lines.append(("F1 help   Tab HUD   F11 full screen   F12 screenshot   Esc quit", DIM))
    return lines


class Painter:
    """Fonts, and text panels drawn on a surface (after ``pygame.font.init``)."""

    def __init__(self) -> None:
        self.font = pygame.font.Font(None, 22)
        self.big = pygame.font.Font(None, 44)

    def wrap(self, text: str, width: int, font: pygame.font.Font | None = None) -> list[str]:
        """``text`` broken at spaces into lines no wider than ``width`` pixels (a long word stays whole)."""
        font = font or self.font
        lines: list[str] = []
        for word in text.split(" "):
            if lines and font.size(lines[-1] + " " + word)[0] <= width:
                lines[-1] += " " + word
            else:
                lines.append(word)
        return lines or [""]

    def panel(self, lines: list[Line], width: int, alpha: int = 170) -> pygame.Surface:
        """A translucent panel with ``lines``, wrapped to ``width`` pixels."""
        rendered = [self.font.render(part, True, colour)
                    for text, colour in lines for part in self.wrap(text, max(200, width - 16))]
        panel = pygame.Surface((max(r.get_width() for r in rendered) + 16,
                                sum(r.get_height() + 2 for r in rendered) + 12), pygame.SRCALPHA)
        panel.fill((0, 0, 0, alpha))
        y = 6
        for r in rendered:
            panel.blit(r, (8, y))
            y += r.get_height() + 2
        return panel

    def hud(self, surface: pygame.Surface, status: Status, measured: Measured) -> None:
        """The HUD over ``surface``: the panel top left with the FROZEN badge under it, the atlas minimap top
        right, the sculpt steps bottom left."""
        w = surface.get_width()
        panel = self.panel(hud_lines(status, measured), w - 40)
        surface.blit(panel, (10, 10))
        self.steps(surface, status)
        if status.minimap is not None:
            image = np.ascontiguousarray(status.minimap)
            minimap = pygame.image.frombuffer(image.tobytes(), (image.shape[1], image.shape[0]), "RGB")
            surface.blit(minimap, (w - 10 - minimap.get_width(), 10))
        if status.frozen:
            badge = self.big.render("FROZEN", True, (0, 0, 0))
            box = badge.get_rect().inflate(20, 10)
            box.topleft = (10, panel.get_height() + 18)
            pygame.draw.rect(surface, FROZEN, box, border_radius=6)
            surface.blit(badge, badge.get_rect(center=box.center))

    def steps(self, surface: pygame.Surface, status: Status) -> None:
        """The sculpt stage along the bottom: what the screen shows, over a strip of every step's picture
        (the one on screen framed)."""
        if not status.sculpt:
            return
        pad = 6
        thumbs = [pygame.image.frombuffer(np.ascontiguousarray(t).tobytes(), (t.shape[1], t.shape[0]), "RGB")
                  for t in status.steps]
        caption = self.font.render(status.sculpt, True, TEXT)
        strip_h = max((t.get_height() for t in thumbs), default=0)
        width = max(caption.get_width(), sum(t.get_width() + pad for t in thumbs)) + 2 * pad
        height = caption.get_height() + strip_h + 3 * pad
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        panel.blit(caption, (pad, pad))
        x, y = pad, caption.get_height() + 2 * pad
        for k, thumb in enumerate(thumbs, 1):
            panel.blit(thumb, (x, y))
            if k == status.step_shown:
                pygame.draw.rect(panel, WARN, (x - 2, y - 2, thumb.get_width() + 4, strip_h + 4), 2)
            x += thumb.get_width() + pad
        surface.blit(panel, (10, surface.get_height() - height - 10))

    def loading(self, surface: pygame.Surface, status: Status, seconds: float) -> None:
        """The loading screen, ``seconds`` after the window opened: the title and what is happening."""
        w, h = surface.get_size()
        title = self.big.render("Latent Instrument", True, TEXT)
        surface.blit(title, title.get_rect(center=(w // 2, h // 2 - 30)))
        text = status.message or status.phase
        dots = "." * (1 + int(seconds) % 3) if status.phase in ("starting", "loading") else ""
        line = self.font.render(text + dots, True, WARN if status.phase == "failed" else DIM)
        surface.blit(line, line.get_rect(center=(w // 2, h // 2 + 15)))

    def toast(self, surface: pygame.Surface, text: str, colour: tuple[int, int, int] = GOOD) -> None:
        """A one-off message at the bottom left (a saved screenshot), shown with or without the HUD."""
        panel = self.panel([(text, colour)], surface.get_width() - 40, alpha=200)
        surface.blit(panel, (10, surface.get_height() - panel.get_height() - 10))
