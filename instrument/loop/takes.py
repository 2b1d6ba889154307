"""Takes: recording what is played, from the render thread, without ever waiting for the disk.

``Takes`` names each take's folder, writes its sidecar, hands frames and the control stream to a
``recorder.Recorder`` and closes it in the background (the writer thread finishes on its own; ``finish``
waits for every take at the end of the session). It also keeps the session's *pre-roll*: every applied
control record and every frame number played since the start, so that a take started late re-renders from the
session's start to the same state (bounded by ``history_limit``; a take started after the oldest records
went says that its re-render may differ).

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
from instrument.recorder import SIDECAR, Recorder, event_to_json

log = logging.getLogger("instrument.render")

HISTORY_LIMIT = 100_000  # control records kept for a take's pre-roll (about an hour of playing)


class Takes:
    """The session's recording side. ``decoding`` gives the anchors, decoders and cache; ``controls`` the
    mapping; ``on_take(folder or None)`` is told when a take starts and ends (the lab saves what a take
    needs beside it); ``start``/``interval`` are the frame grid."""

    def __init__(self, config: Config, *, decoding: Any, controls: Any, names: Sequence[str],
                 start: float, interval: float, error: Callable[[str], None],
                 on_take: Callable[[Path | None], None] = lambda folder: None,
                 recorder_factory: Callable[..., Recorder] = Recorder, record_first: str | None = None,
                 history_limit: int = HISTORY_LIMIT) -> None:
        self.config = config
        self.decoding = decoding
        self.controls = controls
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
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history_limit)
        # Frame numbers rendered since the start, as [first, last] runs (a new run after a skipped frame).
        self.rendered: collections.deque[list[int]] = collections.deque(maxlen=history_limit)
        self.trimmed = 0  # records dropped from history and runs from rendered
        self.held: collections.deque[tuple[Any, np.ndarray | None, dict[str, Any]]] = collections.deque()

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    # -- the control stream ----------------------------------------------------------------------------------

    def log_events(self, n: int, events: list[ControlEvent]) -> None:
        if events:
            self.remember(*(event_to_json(e, n) for e in events))
            if self.recorder is not None:
                self.recorder.add_events(n, events)

    def log_record(self, record: dict[str, Any]) -> None:
        """A record for the control stream beside the events (a mapping reload, a lab measurement)."""
        self.remember(record)
        if self.recorder is not None:
            self.recorder.add_record(record)

    def remember(self, *records: dict[str, Any]) -> None:
        self.trimmed += max(0, len(self.history) + len(records) - (self.history.maxlen or 0))
        self.history.extend(records)

    def frame_rendered(self, n: int) -> None:
        if self.rendered and self.rendered[-1][1] == n - 1:
            self.rendered[-1][1] = n
        else:
            self.trimmed += len(self.rendered) == self.rendered.maxlen  # the oldest run goes
            self.rendered.append([n, n])

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

    def toggle(self) -> None:
        if self.recorder is not None:
            self.stop()
            return
        if self.record_first:
            root = Path(self.record_first)
            folder = root.with_name(f"{root.name}-{len(self.takes) + 1}") if self.takes else root
        else:
            folder = Path(self.config.record_root) / time.strftime("take-%Y%m%d-%H%M%S")
        self.begin(folder)

    def begin(self, folder: Path) -> None:
        """Start a take in ``folder`` (a new name beside it if it holds a take already)."""
        from safetensors.torch import save as save_tensors

        if (folder / SIDECAR).exists():  # never mix two takes in one folder
            base, k = folder, 2
            while (folder := base.with_name(f"{base.name}-{k}")).exists():
                k += 1
            log.warning("%s already holds a take; recording into %s", base, folder)
        anchors = save_tensors({"anchors": self.decoding.anchors.detach().float().cpu().contiguous()},
                               metadata={"names": "\n".join(self.names)})
        if self.trimmed:
            self.error(f"this take's pre-roll lacks the session's start ({self.trimmed} control records or "
                       "frame runs): its re-render may differ from what was played")
        self.recorder = self.recorder_factory(folder, self._sidecar(), anchors=anchors,
                                              preroll=list(self.history))
        self.on_take(folder)
        self.recorder.start()
        self.takes.append(folder)
        log.info("recording into %s", folder)

    def _sidecar(self) -> dict[str, Any]:
        decoding = self.decoding
        return {
            "format": "latent-instrument take",
            "version": 1,
            "settings": self.config.to_dict(),
            "model": {
                "fast": decoding.fast.label,
                "full": decoding.full.label if decoding.full is not None else None,
                "family": decoding.fast.family.name,
                "notice": decoding.fast.notice,
            },
            "mapping": self.controls.describe(),
            "anchors": self.names,
            "clock": {"start": self.start, "interval": self.interval,
                      "first_frame": self.rendered[-1][1] + 1 if self.rendered else 0},
            "preroll_frames": [list(run) for run in self.rendered],
            "preroll_trimmed": self.trimmed,
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
            recorder.close()
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
