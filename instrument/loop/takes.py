"""Takes: recording what is played, from the render thread, without ever waiting for the disk.

``Takes`` names each take's folder, writes its sidecar, hands frames and the control stream to a
``recorder.Recorder`` and closes it in the background (the writer thread finishes on its own; ``finish``
waits for every take at the end of the session). A take starts from a snapshot of the control state and the
performance at its first frame (``start`` in the sidecar), so that it re-renders exactly however late in a
session it began, and events dropped in a flood while it ran are counted in its sidecar.

On a CPU, frames shown as blends are recorded with their exact picture once it lands (``hold``), in order.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instrument.config import Config
from instrument.events import ControlEvent
from instrument.recorder import SIDECAR, Recorder

log = logging.getLogger("instrument.render")


class Takes:
    """The session's recording side. ``decoding`` gives the anchors, decoders and cache; ``controls`` the
    mapping, its state and the queue's drop counts; ``performance`` the path's state; ``on_take(folder or
    None)`` is told when a take starts and ends (the lab saves what a take needs beside it);
    ``start``/``interval`` are the frame grid."""

    def __init__(self, config: Config, *, decoding: Any, controls: Any, performance: Any,
                 names: Sequence[str], start: float, interval: float, error: Callable[[str], None],
                 on_take: Callable[[Path | None], None] = lambda folder: None,
                 recorder_factory: Callable[..., Recorder] = Recorder,
                 record_first: str | None = None) -> None:
        self.config = config
        self.decoding = decoding
        self.controls = controls
        self.performance = performance
        self.on_take = on_take
        self.names = list(names)
        self.start, self.interval = start, interval
        self.error = error
        self.recorder_factory = recorder_factory
        self.record_first = record_first
        self.recorder: Recorder | None = None  # the take being recorded
        self.takes: list[Path] = []
        self.closing: list[Recorder] = []  # takes stopped, their writers still finishing
        self.finished: list[Recorder] = []
        self.held: collections.deque[tuple[Any, np.ndarray | None, dict[str, Any]]] = collections.deque()
        self._drops_at_start: dict[str, int] = {}

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    # -- the control stream ----------------------------------------------------------------------------------

    def log_events(self, n: int, events: list[ControlEvent]) -> None:
        if events and self.recorder is not None:
            self.recorder.add_events(n, events)

    def log_record(self, record: dict[str, Any]) -> None:
        """A record for the control stream beside the events (a mapping reload, a lab measurement)."""
        if self.recorder is not None:
            self.recorder.add_record(record)

    # -- frames ----------------------------------------------------------------------------------------------

    def record(self, waiting: Any, image: np.ndarray | None, meta: dict[str, Any]) -> None:
        """Hand frame ``meta["n"]`` to the recorder, in frame order: ``image`` (exact), or, for a frame shown
        as a blend, the exact frame of key ``waiting`` once it lands (nothing if it is not being decoded)."""
        if self.recorder is None:
            return
        if not self.recorder.active:
            if self.recorder.error:
                self.stop()
            return
        self.held.append((waiting, image, meta))
        self.release()

    def release(self, final: bool = False) -> None:
        """Pass held frames on to the recorder, oldest first, as far as their exact frames are known."""
        progressive = self.decoding.progressive
        while self.held:
            waiting, image, meta = self.held[0]
            if waiting is not None:
                image = self.decoding.cache.get(waiting)
                if image is None and not final and progressive is not None and progressive.pending == waiting:
                    return
            self.held.popleft()
            if self.recorder is not None:
                self.recorder.add_frame(image, meta)

    # -- takes -----------------------------------------------------------------------------------------------

    def toggle(self, n: int, coords: Any) -> None:
        """Start a take at frame ``n`` (whose controls are read and coordinates ``coords`` known), or stop
        the one being recorded."""
        if self.recorder is not None:
            self.stop()
            return
        if self.record_first:
            root = Path(self.record_first)
            folder = root.with_name(f"{root.name}-{len(self.takes) + 1}") if self.takes else root
        else:
            folder = Path(self.config.record_root) / time.strftime("take-%Y%m%d-%H%M%S")
        self.begin(folder, n, coords)

    def begin(self, folder: Path, n: int = -1, coords: Any = None) -> None:
        """Start a take in ``folder`` (a new name beside it if it holds a take already) from the state after
        frame ``n`` (-1: before the first frame)."""
        from safetensors.torch import save as save_tensors

        if (folder / SIDECAR).exists():  # never mix two takes in one folder
            base, k = folder, 2
            while (folder := base.with_name(f"{base.name}-{k}")).exists():
                k += 1
            log.warning("%s already holds a take; recording into %s", base, folder)
        anchors = save_tensors({"anchors": self.decoding.anchors.detach().float().cpu().contiguous()},
                               metadata={"names": "\n".join(self.names)})
        self._drops_at_start = self.controls.drops()
        self.recorder = self.recorder_factory(folder, self._sidecar(n, coords), anchors=anchors)
        self.on_take(folder)
        self.recorder.start()
        self.takes.append(folder)
        log.info("recording into %s", folder)

    def _sidecar(self, n: int, coords: Any) -> dict[str, Any]:
        from instrument.snapshot import encode_fields

        decoding = self.decoding
        return {
            "format": "latent-instrument take",
            "version": 2,
            "settings": self.config.to_dict(),
            "model": {
                "fast": decoding.fast.label,
                "full": decoding.full.label if decoding.full is not None else None,
                "family": decoding.fast.family.name,
                "notice": decoding.fast.notice,
            },
            # The sculpt model and prompts the frames' sculpts used (their settings come from the controls).
            "sculpt": decoding.sculpting.source if getattr(decoding, "sculpting", None) is not None else None,
            "mapping": self.controls.describe(),
            "anchors": self.names,
            "clock": {"start": self.start, "interval": self.interval},
            "start": {"n": n, "coords": coords.to_json() if coords is not None else None,
                      "controls": self.controls.snapshot(),
                      "performance": encode_fields(self.performance)},
            "out_size": list(decoding.out_size),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def stop(self) -> None:
        """End the take being recorded; its writer finishes in the background."""
        if self.held:  # frames still waiting for their exact decode
            try:
                if self.decoding.progressive is not None:
                    self.decoding.progressive.flush()
            except Exception as exc:  # the take must still be closed; those frames go without pictures
                self.error(f"last frame: {type(exc).__name__}: {exc}")
            self.release(final=True)
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            self.on_take(None)
            recorder.close(events_dropped=self.controls.drops(since=self._drops_at_start))
            self.closing.append(recorder)
        self.poll()

    def poll(self) -> None:
        """Report takes whose writers have finished since the last call."""
        for recorder in [r for r in self.closing if r.done]:
            self.closing.remove(recorder)
            self.finished.append(recorder)
            if recorder.error:
                self.error(f"recording stopped: {recorder.error}")
            log.info("recording finished: %s", recorder.status())

    def finish(self, timeout: float) -> None:
        """Stop recording and wait up to ``timeout`` seconds in all for every take's writer."""
        self.stop()
        deadline = time.monotonic() + timeout
        for recorder in list(self.closing):
            recorder.join(max(0.0, deadline - time.monotonic()))
        self.poll()
        for recorder in self.closing:
            self.error(f"{recorder.folder}: the writer did not finish in time")

    def status(self) -> str | None:
        return self.recorder.status() if self.recorder is not None else None
