"""Control events: what the MIDI callback and the window's event pump hand to the render thread.

An event is stamped with ``time.monotonic()`` where it arrived and names its source (a MIDI port's name,
``"keyboard"`` or ``"pointer"``). The render thread applies events in order; the recorder logs them, so that a
take can be re-rendered from its control stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido


@dataclass(frozen=True, slots=True)
class KeyInput:
    """A computer-keyboard key, by pygame's key name (``"a"``, ``"space"``, ``"left"``)."""

    key: str
    down: bool


@dataclass(frozen=True, slots=True)
class PointerInput:
    """The mouse: position in [0, 1] across and down the picture, and which buttons are held."""

    x: float
    y: float
    buttons: int = 0  # bit 0 left, bit 1 middle, bit 2 right


@dataclass(frozen=True, slots=True)
class ControlEvent:
    time: float  # time.monotonic() at arrival
    source: str  # MIDI port name, "keyboard" or "pointer"
    message: mido.Message | KeyInput | PointerInput
