"""Frame sinks: the picture, as it is shown, to other apps (Syphon, Spout, NDI, a virtual camera).

A sink is three calls (``FrameSink``): ``open(width, height, fps)`` returns what it announces or where the
frames go, in words; ``send(image)`` takes one [H, W, 3] uint8 RGB picture; ``close()``. ``SinkFeed`` runs
one on a thread of its own, fed from the mailbox, never from the render thread: a slow sink drops frames
(counted) and never slows the loop.

Each sink is an optional extra (``pip install -e '.[ndi]'``). ``make_sink`` loads one; where its library or
its platform is missing it raises ``SinkUnavailable`` with one line naming what to install, and play goes on
without it.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import Protocol

import numpy as np

from instrument.errors import UserError

DEFAULT_NAME = "Latent Instrument"  # what the other apps list the instrument's frames as


class FrameSink(Protocol):
    """Where frames go besides the window. Called from one thread (its ``SinkFeed``'s) only."""

    name: str  # the --sink name: syphon, spout, ndi, virtualcam

    def open(self, width: int, height: int, fps: float) -> str: ...

    def send(self, image: np.ndarray) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class SinkKind:
    """One kind of sink: its module and class, the extra and library it needs, the platform it runs on."""

    module: str
    cls: str
    extra: str
    library: str
    platform: str | None = None  # sys.platform it needs (None: any)
    platform_name: str = ""


KINDS: dict[str, SinkKind] = {
    "syphon": SinkKind("instrument.sinks.syphon", "SyphonSink", "syphon", "syphon-python", "darwin", "macOS"),
    "spout": SinkKind("instrument.sinks.spout", "SpoutSink", "spout", "SpoutGL", "win32", "Windows"),
    "ndi": SinkKind("instrument.sinks.ndi", "NdiSink", "ndi", "ndi-python"),
    "virtualcam": SinkKind("instrument.sinks.virtualcam", "VirtualCamSink", "virtualcam", "pyvirtualcam"),
}
SINKS = tuple(KINDS)


class SinkUnavailable(UserError):
    """A sink that cannot run here: its platform or its library is missing (the message says which)."""


def make_sink(name: str, *, ndi_name: str = DEFAULT_NAME) -> FrameSink:
    """The sink called ``name`` (one of ``SINKS``), its library loaded, not yet open. SinkUnavailable where
    it cannot run here."""
    kind = KINDS[name]
    if kind.platform is not None and sys.platform != kind.platform:
        raise SinkUnavailable(f"--sink {name} is for {kind.platform_name} only (this is {sys.platform}); "
                              "playing without it")
    cls = getattr(importlib.import_module(kind.module), kind.cls)
    install = f"pip install -e '.[{kind.extra}]' (or pip install {kind.library})"
    try:
        return cls(ndi_name) if name == "ndi" else cls(DEFAULT_NAME)
    except ModuleNotFoundError as exc:
        raise SinkUnavailable(f"--sink {name} needs {kind.library}, which is not installed ({exc.name}): "
                              f"{install}; playing without it") from None
    except (ImportError, OSError) as exc:  # installed, but its native part does not load here
        raise SinkUnavailable(f"--sink {name}: {kind.library} does not load here ({exc}); playing without "
                              "it") from None
