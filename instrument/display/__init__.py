"""What the performer sees: the control window (picture, HUD, help) and, on a second screen, the output
window (the picture alone). Main thread only.

- ``window.Display``: the control window, and the output window it opens with ``output_display``.
- ``hud``: the heads-up display's lines and panels; ``help``: the F1 overlay; ``output``: the output window;
  ``desktop``: display sizes and a window size that fits the screen.
"""

from instrument.display.desktop import desktop_sizes, fit_window
from instrument.display.help import WINDOW_KEYS
from instrument.display.hud import hud_lines, letterbox
from instrument.display.window import Display

__all__ = ["WINDOW_KEYS", "Display", "desktop_sizes", "fit_window", "hud_lines", "letterbox"]
