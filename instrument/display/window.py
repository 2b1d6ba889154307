"""The control window (and, with ``output_display``, the output window): frames from the mailbox, the HUD,
help, input (main thread only).

The display never waits for the decoder. Each pass of ``pump`` handles the windows' events (keys and mouse
go to the render thread's event queue as ``KeyInput``/``PointerInput``), takes the newest frame from the
mailbox if there is one, shows it in the output window first (when there is one), then draws the control
window: the picture, the HUD and help. A few keys belong to the window itself and are not forwarded: Esc and
Q quit, Tab toggles the HUD, F1 help, F11 full screen, F12 saves a screenshot.

It times control -> screen itself: a frame carries when the oldest control event it is the first to move for
arrived (``mailbox.Frame.controls_time``), and the window takes the time once an exact frame from then on is
on screen (on a CPU, blends of the frames decoded before come first: they show the old picture).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pygame

from instrument.display.desktop import desktop_sizes, fit_window
from instrument.display.help import draw_help
from instrument.display.hud import TEXT, WARN, Measured, Painter, letterbox
from instrument.events import ControlEvent, KeyInput, PointerInput
from instrument.mailbox import Frame, Mailbox, Status

log = logging.getLogger(__name__)

_QUIT_KEYS = {pygame.K_ESCAPE, pygame.K_q}
HUD_REFRESH = 0.25  # seconds between redraws when nothing else changes
CONTROL_FPS = 30.0  # with an output window, the control window's picture is redrawn at most this often
TOAST_SECONDS = 4.0


class Display:
    """A pygame window showing frames from ``mailbox``; input goes to ``queue`` (anything with ``put``).

    ``status`` returns the render thread's latest ``Status``. ``picture_size`` (w, h) sizes the default
    window to fit the screen; ``window_size`` asks for a size (made smaller if it does not fit).
    ``output_display``: also a full-screen output window on that display, showing only the picture.
    Call ``open``, then ``pump`` in a loop until it returns False, then ``close``; or ``run`` for all three.
    """

    def __init__(self, mailbox: Mailbox, queue, status: Callable[[], Status], *,
                 window_size: tuple[int, int] | None = None, picture_size: tuple[int, int] = (512, 512),
                 fullscreen: bool = False, title: str = "Latent Instrument", max_fps: float = 60.0,
                 screenshots: str | Path = ".", output_display: int | None = None) -> None:
        self.mailbox = mailbox
        self.queue = queue
        self.status = status
        self.asked_size = window_size
        self.window_size = window_size or picture_size
        self.picture_size = picture_size
        self.fullscreen = fullscreen
        self.title = title
        self.max_fps = max_fps
        self.hud = True
        self.help = False
        self.quit_requested = False
        self.screenshots = Path(screenshots)  # where F12 saves
        self.output_display = output_display
        self.output = None  # output.OutputWindow once open
        self.measured = Measured()
        self._control: float | None = None  # arrival of a control whose exact picture is not shown yet
        self.surface: pygame.Surface | None = None
        self.taken: Path | None = None  # the last screenshot saved
        self._shot: Path | None = None  # a screenshot asked for, taken after the next drawing
        self._toast = ("", 0.0, TEXT)  # a message of the window's own, until a time
        self._frame: Frame | None = None
        self._image: pygame.Surface | None = None  # the frame, scaled to the window
        self._ui_version = 0
        # The controls' last hud/help/fullscreen values (the render thread starts from the same ones).
        self._ui: dict[str, bool] = {"hud": True, "help": False, "fullscreen": fullscreen}
        self._clock = pygame.time.Clock()
        self._pointer: PointerInput | None = None
        self._started = time.monotonic()
        self._redraw_at = 0.0
        self._drawn_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------------

    def open(self) -> None:
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(self.title)
        pygame.key.set_repeat()  # no auto-repeat: a held key is one down and one up event
        desktop = desktop_sizes()[0]
        self.window_size = fit_window(self.picture_size, desktop, self.asked_size)
        if self.asked_size and self.window_size != tuple(self.asked_size):
            log.info("a %dx%d window does not fit the %dx%d screen: %dx%d", *self.asked_size, *desktop,
                     *self.window_size)
        self._set_mode()
        self.painter = Painter()
        if self.output_display is not None:
            self._open_output(self.output_display)

    def _open_output(self, display: int) -> None:
        from instrument.display.output import OutputWindow

        try:
            self.output = OutputWindow(display, f"{self.title} output")
        except (ValueError, pygame.error) as exc:  # play goes on in one window
            log.error("no output window: %s", exc)
            self._say(f"no output window: {exc}", WARN, 30.0)
            return
        if display == 0:
            log.warning("the output window covers display 0, where the control window is")

    def close(self) -> None:
        if self.output is not None:
            self.output.close()
            self.output = None
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
        """Save the control window (HUD included) as a PNG once the next pass has drawn it; any thread may
        ask."""
        self._shot = Path(path)

    # -- one pass ----------------------------------------------------------------------------------------

    def pump(self) -> bool:
        """Handle events, show, wait for the next display tick. False once the user asked to quit."""
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
            if self.output is not None:
                self.output.show(frame.image)
        # Redraw only for a new frame, input, or the HUD's few refreshes a second: on a small CPU the
        # window must not take the time the decoder needs (nor, with an output window, the output's).
        now = time.monotonic()
        due = frame is not None and (self.output is None or now - self._drawn_at >= 1 / CONTROL_FPS)
        if due or events or self._shot is not None or now >= self._redraw_at:
            self._redraw_at, self._drawn_at = now + HUD_REFRESH, now
            self._draw(status)
            self._save_screenshot()
            pygame.display.flip()
        if frame is not None:
            self._measure(frame)
        self._clock.tick(self.max_fps)
        self.measured.fps = self._clock.get_fps()
        return not (self.quit_requested or status.quit)

    def _measure(self, frame: Frame) -> None:
        """Control -> screen, now that ``frame`` is on screen: to the first exact frame shown after the
        frame that first moved for a control (blends in between show the old frames, mixed)."""
        if frame.controls_time is not None and self._control is None:
            self._control = frame.controls_time
        self.measured.catching_up = not frame.exact
        if frame.exact and self._control is not None:
            self.measured.latency = time.monotonic() - self._control
            self._control = None

    def _handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.QUIT:
            self.quit_requested = True
        elif event.type == pygame.WINDOWCLOSE and self.output is not None and self.output.owns(event):
            self.output.close()
            self.output = None
        elif event.type in (pygame.KEYDOWN, pygame.KEYUP):
            self._key(event.key, event.type == pygame.KEYDOWN)
        elif event.type in (pygame.MOUSEMOTION, pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            if event.type == pygame.MOUSEBUTTONDOWN and event.button > 3:
                return  # wheel "buttons"
            in_output = self.output is not None and self.output.owns(event)
            rect = self._picture_rect(self.output.size if in_output else self.surface.get_size())
            x = min(1.0, max(0.0, (event.pos[0] - rect.x) / max(1, rect.w)))
            y = min(1.0, max(0.0, (event.pos[1] - rect.y) / max(1, rect.h)))
            left, middle, right = pygame.mouse.get_pressed()[:3]
            self._pointer = PointerInput(x, y, int(left) | int(middle) << 1 | int(right) << 2)
        elif event.type in (pygame.VIDEORESIZE, pygame.WINDOWSIZECHANGED):
            self._image = None
            if self.output is not None and self.output.owns(event):
                self.output.present()

    def _key(self, key: int, down: bool) -> None:
        if key in _QUIT_KEYS:
            self.quit_requested |= down
        elif key == pygame.K_TAB:
            self.hud ^= down
        elif key == pygame.K_F1:
            self.help ^= down
        elif key == pygame.K_F11:
            if down:
                self.toggle_fullscreen()
        elif key == pygame.K_F12:
            if down:
                self.screenshot(self.screenshots / time.strftime("screenshot-%Y%m%d-%H%M%S.png"))
        else:
            name = pygame.key.name(key).lower()
            self.queue.put(ControlEvent(time.monotonic(), "keyboard", KeyInput(name, down)))

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
            os.environ.setdefault("SDL_VIDEO_CENTERED", "1")  # (whole on the screen)
            self.surface = pygame.display.set_mode(self.window_size, pygame.RESIZABLE)
        self._image = None

    def _save_screenshot(self) -> None:
        if self._shot is None:
            return
        path, self._shot = self._shot, None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(self.surface, str(path))
        except (OSError, pygame.error) as exc:
            log.error("screenshot not saved: %s", exc)
            self._say(f"screenshot not saved: {exc}", WARN)
            return
        self.taken = path
        log.info("screenshot saved: %s", path)
        self._say(f"screenshot saved: {path.resolve()}", TEXT)

    def _say(self, text: str, colour: tuple[int, int, int], seconds: float = TOAST_SECONDS) -> None:
        self._toast = (text, time.monotonic() + seconds, colour)
        self._redraw_at = 0.0

    # -- drawing -----------------------------------------------------------------------------------------

    def _picture_rect(self, size: tuple[int, int]) -> pygame.Rect:
        if self._frame is None:
            return pygame.Rect(0, 0, *size)
        h, w = self._frame.image.shape[:2]
        return letterbox((w, h), size)

    def _draw(self, status: Status) -> None:
        surface = self.surface
        surface.fill((0, 0, 0))
        if self._frame is None:
            self.painter.loading(surface, status, time.monotonic() - self._started)
        else:
            rect = self._picture_rect(surface.get_size())
            if self._image is None or self._image.get_size() != rect.size:
                image = np.ascontiguousarray(self._frame.image)
                raw = pygame.image.frombuffer(image.tobytes(), (image.shape[1], image.shape[0]), "RGB")
                self._image = pygame.transform.smoothscale(raw, rect.size)
            surface.blit(self._image, rect)
        if self.help:  # (over the picture alone: the HUD's text would show through)
            draw_help(surface, status)
        elif self.hud:
            self.painter.hud(surface, status, self.measured)
        text, until, colour = self._toast
        if time.monotonic() < until:
            self.painter.toast(surface, text, colour)
