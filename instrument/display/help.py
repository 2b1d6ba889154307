"""The help overlay (F1): the window's own keys, then the mapping's keys and its MIDI controls with their
labels ("CC 16 (knob 1)  offset_channel 0..31"), in as many columns as the window needs, the font made
smaller until they fit.
"""

from __future__ import annotations

import pygame

from instrument.display.hud import DIM, TEXT, WARN
from instrument.mailbox import Status

WINDOW_KEYS = (
    ("Esc / Q", "quit"),
    ("Tab", "heads-up display on/off"),
    ("F1", "this help on/off"),
    ("F11", "full screen on/off"),
    ("F12", "save a screenshot"),
)
FONT_SIZES = (22, 19, 16, 14)  # tried in turn until the rows fit the window
KEY_WIDTH, WHAT_WIDTH = 220, 260  # widest key and "what it does" at the largest font (longer text is cut)
GAP = 20  # pixels between columns


def help_rows(status: Status) -> list[tuple[str, str]]:
    """(key or control, what it does) by section; a section starts with a row ("", its title)."""
    rows = [("", "Window"), *WINDOW_KEYS]
    name = status.mapping.split(" (")[0] or "the mapping"
    if status.keys:
        rows += [("", f"Keys of {name}"), *status.keys]
    if status.midi_help:
        rows += [("", f"MIDI controls of {name}"), *status.midi_help]
    return rows


def _cut(font: pygame.font.Font, text: str, width: int) -> str:
    if font.size(text)[0] <= width:
        return text
    while text and font.size(text + "...")[0] > width:
        text = text[:-1]
    return text + "..."


def _layout(rows: list[tuple[str, str]], size: int, height: int):
    """(font, line height, rows per column, [(key width, what width) per column]) at font ``size`` for a
    window ``height`` pixels high."""
    font = pygame.font.Font(None, size)
    line = font.get_linesize() + 2
    per_column = max(1, (height - 40) // line)
    key_cap, what_cap = KEY_WIDTH * size // FONT_SIZES[0], WHAT_WIDTH * size // FONT_SIZES[0]
    widths = []
    for first in range(0, len(rows), per_column):
        column = rows[first:first + per_column]
        key = min(key_cap, max(font.size(k)[0] for k, _ in column)) + 10
        what = min(what_cap, max((font.size(w)[0] for k, w in column), default=0))
        widths.append((key, what))
    return font, line, per_column, widths


def draw_help(surface: pygame.Surface, status: Status) -> None:
    """The help panel, centred over ``surface``: the largest font whose columns fit its width."""
    rows = help_rows(status)
    w, h = surface.get_size()
    for size in FONT_SIZES:
        font, line, per_column, widths = _layout(rows, size, h)
        if sum(k + v + GAP for k, v in widths) + 4 <= w:
            break
    panel = pygame.Surface((min(w, sum(k + v + GAP for k, v in widths) + 4), min(h, line * per_column + 20)),
                           pygame.SRCALPHA)
    panel.fill((0, 0, 0, 225))
    x = 12
    for c, (key_width, what_width) in enumerate(widths):
        for i, (key, what) in enumerate(rows[c * per_column:(c + 1) * per_column]):
            y = 10 + line * i
            if not key:  # a section title
                panel.blit(font.render(_cut(font, what, key_width + what_width), True, DIM), (x, y))
                continue
            panel.blit(font.render(_cut(font, key, key_width - 10), True, WARN), (x, y))
            panel.blit(font.render(_cut(font, what, what_width), True, TEXT), (x + key_width, y))
        x += key_width + what_width + GAP
    surface.blit(panel, panel.get_rect(center=(w // 2, h // 2)))
