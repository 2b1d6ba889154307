"""The window: the newest frame, letterboxed, with a heads-up display and a help overlay (main thread only).

The display never waits for the decoder. Each pass of ``pump`` handles the window's events (keys and mouse go
to the render thread's event queue as ``KeyInput``/``PointerInput``), takes the newest frame from the mailbox
if there is one, and draws at its own rate. A few keys belong to the window itself and are not forwarded:
Esc and Q quit, Tab toggles the HUD, F1 toggles help, F11 toggles full screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pygame

from instrument.events import ControlEvent, KeyInput, PointerInput
from instrument.mailbox import Frame, Mailbox, Status

WINDOW_KEYS = (
    ("Esc / Q", "quit"),
    ("Tab", "heads-up display on/off"),
    ("F1", "this help on/off"),
    ("F11", "full screen on/off"),
    ("F12", "save a screenshot"),
)
_QUIT_KEYS = {pygame.K_ESCAPE, pygame.K_q}
HUD_REFRESH = 0.25  # seconds between redraws when nothing else changes
_HUD_COLOUR = (235, 235, 235)
_WARN_COLOUR = (255, 170, 60)
_REC_COLOUR = (255, 70, 70)
_DIM_COLOUR = (150, 150, 150)


def letterbox(image_size: tuple[int, int], window_size: tuple[int, int]) -> pygame.Rect:
    """The largest rectangle of the image's aspect centred in the window."""
    iw, ih = image_size
    ww, wh = window_size
    scale = min(ww / iw, wh / ih)
    w, h = max(1, round(iw * scale)), max(1, round(ih * scale))
    return pygame.Rect((ww - w) // 2, (wh - h) // 2, w, h)


class Display:
    """A pygame window showing frames from ``mailbox``; input goes to ``queue`` (anything with ``put``).

    ``status`` returns the render thread's latest ``Status``. Call ``open``, then ``pump`` in a loop until it
    returns False, then ``close``; or ``run`` for all three.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        queue,
        status: Callable[[], Status],
        *,
        window_size: tuple[int, int] = (960, 960),
        fullscreen: bool = False,
        title: str = "Latent Instrument",
        max_fps: float = 60.0,
        screenshots: str | Path = ".",
    ) -> None:
        self.mailbox = mailbox
        self.queue = queue
        self.status = status
        self.window_size = window_size
        self.fullscreen = fullscreen
        self.title = title
        self.max_fps = max_fps
        self.hud = True
        self.help = False
        self.quit_requested = False
        self.screenshots = Path(screenshots)  # where F12 saves
        self._shot: Path | None = None  # a screenshot asked for, taken after the next drawing
        self.surface: pygame.Surface | None = None
        self._frame: Frame | None = None
        self._image: pygame.Surface | None = None  # the frame, scaled to the window
        self._ui_version = 0
        # The controls' last hud/help/fullscreen values (the render thread starts from the same ones).
        self._ui: dict[str, bool] = {"hud": True, "help": False, "fullscreen": fullscreen}
        self._clock = pygame.time.Clock()
        self._pointer: PointerInput | None = None
        self._started = time.monotonic()
        self._redraw_at = 0.0
        self.taken: Path | None = None  # the last screenshot saved

    # -- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> None:
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(self.title)
        pygame.key.set_repeat()  # no auto-repeat: a held key is one down and one up event
        self._set_mode()
        self._font = pygame.font.Font(None, 22)
        self._big = pygame.font.Font(None, 44)

    def close(self) -> None:
        pygame.display.quit()
        pygame.font.quit()

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Open, pump until quit or ``should_stop()``, close."""
        self.open()
        try:
            while self.pump() and not should_stop():
                pass
        finally:
            self.close()

    def screenshot(self, path: str | Path) -> None:
        """Save the window (HUD included) as a PNG once the next pass has drawn it; any thread may ask."""
        self._shot = Path(path)

    # -- one pass ----------------------------------------------------------------------------------------

    def pump(self) -> bool:
        """Handle events, draw, wait for the next display tick. False once the user asked to quit."""
        events = pygame.event.get()
        for event in events:
            self._handle(event)
        if self._pointer is not None:  # one pointer event per display frame is plenty
            self.queue.put(ControlEvent(time.monotonic(), "pointer", self._pointer))
            self._pointer = None
        status = self.status()
        self._follow_controls(status)
        frame = self.mailbox.latest()
        if frame is not None:
            self._frame, self._image = frame, None
        # Redraw only for a new frame, input, or the HUD's few refreshes a second: on a small CPU the
        # window must not take the time the decoder needs.
        now = time.monotonic()
        if frame is not None or events or self._shot is not None or now >= self._redraw_at:
            self._redraw_at = now + HUD_REFRESH
            self._draw(status)
            if self._shot is not None:
                path, self._shot = self._shot, None
                path.parent.mkdir(parents=True, exist_ok=True)
                pygame.image.save(self.surface, str(path))
                self.taken = path
            pygame.display.flip()
        self._clock.tick(self.max_fps)
        return not (self.quit_requested or status.quit)

    def _handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.quit_requested = True
        elif event.type in (pygame.KEYDOWN, pygame.KEYUP):
            down = event.type == pygame.KEYDOWN
            if event.key in _QUIT_KEYS:
                self.quit_requested |= down
            elif event.key == pygame.K_TAB:
                self.hud ^= down
            elif event.key == pygame.K_F1:
                self.help ^= down
            elif event.key == pygame.K_F11:
                if down:
                    self.toggle_fullscreen()
            elif event.key == pygame.K_F12:
                if down:
                    self.screenshot(self.screenshots / time.strftime("screenshot-%Y%m%d-%H%M%S.png"))
            else:
                key = pygame.key.name(event.key).lower()
                self.queue.put(ControlEvent(time.monotonic(), "keyboard", KeyInput(key, down)))
        elif event.type in (pygame.MOUSEMOTION, pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            if event.type == pygame.MOUSEBUTTONDOWN and event.button > 3:
                return  # wheel "buttons"
            rect = self._picture_rect()
            x = min(1.0, max(0.0, (event.pos[0] - rect.x) / max(1, rect.w)))
            y = min(1.0, max(0.0, (event.pos[1] - rect.y) / max(1, rect.h)))
            left, middle, right = pygame.mouse.get_pressed()[:3]
            self._pointer = PointerInput(x, y, int(left) | int(middle) << 1 | int(right) << 2)
        elif event.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED):
            self._image = None

    def _follow_controls(self, status: Status) -> None:
        # The mapping may drive hud/help/fullscreen too; follow it when it changes, keep local keys otherwise.
        if status.ui_version == self._ui_version:
            return
        self._ui_version = status.ui_version
        ui, before = dict(status.ui), self._ui
        self._ui = ui
        changed = {name: on for name, on in ui.items() if before.get(name) != on}
        self.hud = changed.get("hud", self.hud)
        self.help = changed.get("help", self.help)
        if changed.get("fullscreen", self.fullscreen) != self.fullscreen:
            self.toggle_fullscreen()

    def toggle_fullscreen(self) -> None:
        self.fullscreen = not self.fullscreen
        self._set_mode()

    def _set_mode(self) -> None:
        if self.fullscreen:
            self.surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
        else:
            self.surface = pygame.display.set_mode(self.window_size, pygame.RESIZABLE)
        self._image = None

    # -- drawing -----------------------------------------------------------------------------------------

    def _picture_rect(self) -> pygame.Rect:
        size = self.surface.get_size()
        if self._frame is None:
            return pygame.Rect(0, 0, *size)
        h, w = self._frame.image.shape[:2]
        return letterbox((w, h), size)

    def _draw(self, status: Status) -> None:
        surface = self.surface
        surface.fill((0, 0, 0))
        if self._frame is None:
            self._draw_loading(status)
        else:
            rect = self._picture_rect()
            if self._image is None or self._image.get_size() != rect.size:
                image = np.ascontiguousarray(self._frame.image)
                raw = pygame.image.frombuffer(image.tobytes(), (image.shape[1], image.shape[0]), "RGB")
                self._image = pygame.transform.smoothscale(raw, rect.size)
            surface.blit(self._image, rect)
        if self.hud:
            self._draw_hud(status)
        if self.help:
            self._draw_help(status)

    def _draw_loading(self, status: Status) -> None:
        w, h = self.surface.get_size()
        dots = "." * (1 + int(time.monotonic() - self._started) % 3)
        title = self._big.render("Latent Instrument", True, _HUD_COLOUR)
        self.surface.blit(title, title.get_rect(center=(w // 2, h // 2 - 30)))
        text = status.message or status.phase
        line = self._font.render(f"{text}{dots}" if status.phase in ("starting", "loading") else text, True,
                                 _WARN_COLOUR if status.phase == "failed" else _DIM_COLOUR)
        self.surface.blit(line, line.get_rect(center=(w // 2, h // 2 + 15)))

    def _hud_lines(self, status: Status) -> list[tuple[str, tuple[int, int, int]]]:
        latency = "-" if status.latency is None else f"{status.latency * 1000:.0f} ms"
        exact = "" if status.exact_fps is None else f" (exact {status.exact_fps:.1f})"
        lines = [
            (f"render {status.render_fps:4.1f} fps{exact}   display {self._clock.get_fps():4.1f} fps   "
             f"latency {latency}   frame {status.frames}", _HUD_COLOUR),
            (f"decoder: {status.decoder or '-'}" + (f"   full: {status.full_decoder}" if status.full_decoder
                                                     else ""), _HUD_COLOUR),
            (f"mapping: {status.mapping or '-'}   anchors: {', '.join(status.anchors) or '-'}", _HUD_COLOUR),
        ]
        if status.where:
            lines.append((status.where, _DIM_COLOUR))
        if status.message and status.phase == "playing":
            lines.append((status.message, _WARN_COLOUR))
        lines.extend((line, _HUD_COLOUR) for line in status.lab)
        if status.recording:
            lines.append(("REC  " + status.recording, _REC_COLOUR))
        if status.midi:
            midi = "; ".join(state if port == "midi" else f"{port}: {state}" for port, state in status.midi)
            lines.append(("MIDI: " + midi, _DIM_COLOUR))
        lines.extend((error, _WARN_COLOUR) for error in status.errors[-3:])
        lines.append(("F1 help   Tab HUD   F11 full screen   Esc quit", _DIM_COLOUR))
        return lines

    def _draw_hud(self, status: Status) -> None:
        self._draw_panel(self._hud_lines(status), (10, 10))
        self._draw_steps(status)
        if status.minimap is not None:  # the atlas and its cursor, top right
            image = np.ascontiguousarray(status.minimap)
            surface = pygame.image.frombuffer(image.tobytes(), (image.shape[1], image.shape[0]), "RGB")
            self.surface.blit(surface, (self.surface.get_width() - image.shape[1] - 10, 10))

    def _draw_steps(self, status: Status) -> None:
        """The sculpt stage along the bottom: what the screen shows, over a strip of every step's picture
        (the one on screen framed)."""
        if not status.sculpt:
            return
        w, h = self.surface.get_size()
        pad = 6
        thumbs = [pygame.image.frombuffer(np.ascontiguousarray(t).tobytes(), (t.shape[1], t.shape[0]), "RGB")
                  for t in status.steps]
        caption = self._font.render(status.sculpt, True, _HUD_COLOUR)
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
                pygame.draw.rect(panel, _WARN_COLOUR, (x - 2, y - 2, thumb.get_width() + 4, strip_h + 4), 2)
            x += thumb.get_width() + pad
        self.surface.blit(panel, (10, h - height - 10))

    def _draw_help(self, status: Status) -> None:
        """Two columns, key and what it does: the window's own keys, then the mapping's."""
        rows = [(self._font.render(key, True, _WARN_COLOUR), self._font.render(what, True, _HUD_COLOUR))
                for key, what in (*WINDOW_KEYS, *status.keys)]
        title = self._big.render("Keys", True, _HUD_COLOUR)
        key_width = max(k.get_width() for k, _ in rows) + 16
        column = key_width + max(w.get_width() for _, w in rows) + 32
        line = max(k.get_height() for k, _ in rows) + 3
        w, h = self.surface.get_size()
        # As many columns as it takes to fit the window's height.
        per_column = max(1, (h - title.get_height() - 60) // line)
        columns = -(-len(rows) // per_column)
        per_column = -(-len(rows) // columns)
        width = max(title.get_width(), column * columns) + 16
        height = title.get_height() + 24 + line * per_column + 12
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 200))
        panel.blit(title, (16, 12))
        top = title.get_height() + 24
        for i, (key, what) in enumerate(rows):
            x, y = 16 + column * (i // per_column), top + line * (i % per_column)
            panel.blit(key, (x, y))
            panel.blit(what, (x + key_width, y))
        self.surface.blit(panel, panel.get_rect(center=(w // 2, h // 2)))

    def _wrap(self, text: str, width: int) -> list[str]:
        """``text`` broken at spaces into lines no wider than ``width`` pixels (a long word stays whole)."""
        lines: list[str] = []
        for word in text.split(" "):
            if lines and self._font.size(lines[-1] + " " + word)[0] <= width:
                lines[-1] += " " + word
            else:
                lines.append(word)
        return lines or [""]

    def _panel(self, lines: list[tuple[str, tuple[int, int, int]]]) -> pygame.Surface:
        width = max(200, self.surface.get_width() - 40)
        rendered = [self._font.render(part, True, colour)
                    for text, colour in lines for part in self._wrap(text, width)]
        width = max(r.get_width() for r in rendered) + 16
        height = sum(r.get_height() + 2 for r in rendered) + 12
        panel = pygame.Surface((width, height), pygame.SRCALPHA)
        panel.fill((0, 0, 0, 170))
        y = 6
        for r in rendered:
            panel.blit(r, (8, y))
            y += r.get_height() + 2
        return panel

    def _draw_panel(self, lines: list[tuple[str, tuple[int, int, int]]], at: tuple[int, int]) -> None:
        self.surface.blit(self._panel(lines), at)
