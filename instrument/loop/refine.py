"""Progressive refinement: while the controls rest, the full decoder redraws the still frame.

The redraw runs beside the loop, never in its way: on a GPU it is queued on the device behind the fast frames;
on a CPU (where a full decode takes seconds) the full decoder's frame pipeline decodes in its own background
thread, and a redraw the controls have moved away from is cancelled between two of the decoder's layers
(``cancellable``), so that the next fast frame does not share the cores with it for long. Where the pipeline
is not asynchronous (MPS, whose work must stay in the render thread) the redraw is made in the loop.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from instrument.loop.decoding import Decoding
    from instrument.performance import Coords


class Cancelled(Exception):
    """A decode stopped because its result is no longer wanted."""


def cancellable(module: torch.nn.Module, flag: threading.Event) -> list[Any]:
    """Make every submodule of ``module`` raise ``Cancelled`` when it starts while ``flag`` is set.

    Returns the hook handles (``handle.remove()`` undoes it). A check costs a flag read per layer."""

    def check(_module: torch.nn.Module, _inputs: Any) -> None:
        if flag.is_set():
            raise Cancelled

    return [m.register_forward_pre_hook(check) for m in module.modules() if m is not module]


class Refinement:
    """The full decoder's redraw of one still frame at a time, for ``Decoding`` (which owns it).

    ``start(coords)`` launches it (never waits on an asynchronous pipeline); ``landed()`` returns
    ``(coords, frame)`` once it is done (and cached), else None; ``drop()`` gives it up; ``settle()`` waits
    for whatever is in flight, before the full pipeline decodes anything else.
    """

    def __init__(self, decoding: Decoding) -> None:
        self.decoding = decoding
        self.frames = decoding.full_frames
        self._coords: Coords | None = None  # in flight
        self._dropped = False
        self._done: tuple[Coords, np.ndarray] | None = None  # made in the loop (no background pipeline)
        self._cancel = threading.Event()
        self._hooks: list[Any] = []
        if self.frames is not None and self.frames.asynchronous and self.frames.device.type == "cpu":
            self._hooks = cancellable(decoding.full.decoder_module, self._cancel)

    @property
    def busy(self) -> bool:
        return self._coords is not None

    def follow(self, coords: Coords, still: bool) -> np.ndarray | None:
        """After each frame at ``coords``: the redraw of ``coords`` if it just landed; a new redraw started
        when the picture is ``still`` (resting, the device free), the one in flight dropped when not."""
        landed = self.landed()
        if not still:
            self.drop()
        else:
            self.start(coords)
        return landed[1] if landed is not None and landed[0] == coords else None

    def start(self, coords: Coords) -> None:
        decoding = self.decoding
        key = decoding.key(coords, "full")
        if key[1] != "full" or self.busy or key in decoding.cache:
            return
        if self.frames is None or not self.frames.asynchronous:
            self._done = (coords, decoding.image(coords, "full"))
            return
        self.frames.launch(decoding.source(coords))
        self._coords, self._dropped = coords, False

    def landed(self) -> tuple[Coords, np.ndarray] | None:
        """The redraw, once it is done and still wanted; raises what the decode raised (not Cancelled)."""
        if self._done is not None:
            done, self._done = self._done, None
            return done
        if not self.busy or not self.frames.ready():
            return None
        return self._collect()

    def drop(self) -> None:
        """The picture moved on: cancel the redraw (it lands, or stops, in the background)."""
        if self.busy:
            self._dropped = True
            self._cancel.set()

    def settle(self) -> None:
        """Wait for the redraw in flight (kept if still wanted)."""
        if self.busy:
            self._collect()

    def _collect(self) -> tuple[Coords, np.ndarray] | None:
        coords, dropped = self._coords, self._dropped
        self._coords = None
        try:
            image = self.frames.collect()
        except Cancelled:
            return None
        finally:
            self._cancel.clear()
        self.decoding.cache.put(self.decoding.key(coords, "full"), image)
        return None if dropped else (coords, image)

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
