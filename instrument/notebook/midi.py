"""``MidiLink``: a controller moves a ``Scrubber``'s sliders, through the mapping files ``play`` reads.

The same parts as ``play``: ``midi.listener.MidiListener`` puts the controller's messages on an
``events.EventQueue`` (its callback only parses and enqueues); ``loop.controls.Controls`` applies them
through the mapping (curves, smoothing, pickup, relative encoders, note ranges) to the control state, and
reloads the mapping file when it is saved. Each tick on the kernel's loop reads the controls and moves the
sliders whose parameters changed::

    scrubber = li.Scrubber(model, anchors)
    link = scrubber.listen("mappings/korg-nanokontrol2.yaml")   # every MIDI input, and a virtual port
    link.status()                                               # {"midi": "...", port: "open", ...}
    link.stop()                                                 # or scrubber.close()

Parameters with a slider follow their controls: ``position``, ``path``, ``noise``, ``lock_channels``,
``lock_region``, ``offset``, ``offset_channel``. A note (an anchor pick) moves ``position`` to that anchor
and makes the locks hold it. What belongs to time (speed, glides, freeze, tempo) stays with ``play``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrument.events import EventQueue
from instrument.loop.controls import Controls
from instrument.notebook.ticks import Ticks
from instrument.performance import anchor_position, bank_anchor

if TYPE_CHECKING:
    from instrument.notebook.scrubber import Scrubber

log = logging.getLogger(__name__)

MOVES = ("position", "path", "noise", "lock_channels", "lock_region", "offset", "offset_channel")
TICK = 1 / 60  # seconds between reads of the controls
BANK_SIZE = 12  # anchors per bank (program change), as play's --bank-size default


class MidiLink:
    """Moves ``scrubber``'s sliders from control events through ``mapping`` (a path, a parsed
    ``mapping.Mapping``, or None for mappings/default.yaml).

    ``ports``: MIDI inputs to open (names, parts of names or numbers; None: every input, including ones
    plugged in later); ``api``: auto or a MIDI system (see ``latent-instrument ports``); ``virtual``: also
    open a virtual input port a DAW can send to. ``listen=False`` opens no MIDI: events put on ``queue``
    (``events.ControlEvent``) move the sliders alike. Outside a kernel call ``poll()`` to apply them.
    """

    def __init__(self, scrubber: Scrubber, mapping: Any = None, *, ports: list[str] | None = None,
                 api: str = "auto", virtual: bool = True, listen: bool = True) -> None:
        from instrument.mapping import DEFAULT_MAPPING, Mapping, load_mapping

        self.scrubber = scrubber
        source = DEFAULT_MAPPING if mapping is None else mapping
        parsed = source if isinstance(source, Mapping) else load_mapping(source)  # MappingError: say where
        watch = None if isinstance(source, Mapping) else Path(source)
        self.queue = EventQueue()
        self.controls = Controls(parsed, queue=self.queue, watch_path=watch)
        self.errors: list[str] = []  # mapping reload mistakes and failed events, newest last
        self._seen = {name: self.controls.values(time.monotonic())[name] for name in MOVES}
        self._n = 0
        self._stopped = False
        self.listener = None
        if listen:
            from instrument.midi.listener import MidiListener

            self.listener = MidiListener(self.queue, ports, api=api, virtual=virtual)
            self.listener.start()  # (False without any MIDI system: status() says why)
        self._ticks = Ticks(self.poll, TICK)
        self._ticks.start()

    def status(self) -> dict[str, str]:
        """The MIDI system and each port's state, as the HUD shows them."""
        return self.listener.status() if self.listener is not None else {"midi": "not listening"}

    def poll(self) -> bool:
        """Apply the waiting events and move the sliders their parameters drive; True until ``stop``."""
        if self._stopped:
            return False
        frame = self.controls.read(self._n, time.monotonic())
        self._n += 1
        self.errors.extend(frame.errors)
        if frame.reload is not None:
            log.info("mapping reloaded: %s", self.controls.path)
        moves = {}
        for name in MOVES:
            value = frame.values[name]
            if value != self._seen[name]:
                moves[name] = self._seen[name] = value
        if frame.pick is not None:
            count = len(self.scrubber.names)
            k, _ = bank_anchor(frame.pick, int(frame.values.get("bank", 0)), BANK_SIZE, count)
            path = moves.get("path", self.scrubber.path.value)
            moves.update(position=anchor_position(k, count, path == "loop"), hold=k)
        if moves:
            try:
                self.scrubber.set(**moves)
            except ValueError as exc:  # a value the scrubber does not offer (a newer mapping's path kind)
                self.errors.append(str(exc))
        return True

    def stop(self) -> None:
        """Stop reading and close the MIDI ports."""
        self._stopped = True
        self._ticks.cancel()
        if self.listener is not None:
            self.listener.stop()
