"""The instrument in a rig: frames to other apps, OSC in and out, lights back on the controllers.

``start_rig`` builds what the settings ask for (``config.RigSettings``) around a session's queue, mailbox
and MIDI listener: a ``sinks.SinkFeed`` per ``--sink``, an ``osc.OscServer`` for ``--osc-in``, an
``osc.OscSender`` for ``--osc-out``, and MIDI feedback for the mapping's ``feedback: true`` controls, with
``loop.feedback.Feedback`` as the render loop's hook. Everything but MIDI feedback is off unless asked for.
A part that cannot start (a library or device missing, a port taken) says why in one line and play goes on
without it; ``status()`` gives the HUD a line per part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from instrument.config import Config
from instrument.events import EventQueue
from instrument.loop.feedback import Feedback, MidiFeedback
from instrument.mailbox import Mailbox
from instrument.osc import OscSender, OscServer, parse_target
from instrument.sinks import SinkUnavailable, make_sink
from instrument.sinks.feed import SinkFeed

log = logging.getLogger(__name__)


class Rig:
    """The parts of a rig that run beside the render loop: ``close()`` stops them (after the MIDI listener
    stopped, since it connects the feedback senders)."""

    def __init__(self, feeds: list[SinkFeed], osc_in: OscServer | None, feedback: Feedback,
                 problems: dict[str, str]) -> None:
        self.feeds, self.osc_in, self.feedback = feeds, osc_in, feedback
        self.problems = problems  # part -> why it is off

    def status(self) -> dict[str, str]:
        """One line a part for the HUD: ``{"sink ndi": "...; 120 sent, 3 dropped", "osc in": ...}``."""
        out = {f"sink {feed.name}": feed.status() for feed in self.feeds}
        if self.osc_in is not None:
            out["osc in"] = self.osc_in.status()
        if self.feedback.osc is not None:
            out["osc out"] = self.feedback.osc.status()
        return {**out, **{part: f"off: {why}" for part, why in self.problems.items()}}

    def close(self) -> None:
        parts: list[Callable[[], None]] = [feed.stop for feed in self.feeds] + [self.feedback.close]
        if self.osc_in is not None:
            parts.append(self.osc_in.stop)
        for stop in parts:
            try:
                stop()
            except Exception:  # the rest still stop
                log.exception("a part of the rig did not stop cleanly")


def start_rig(config: Config, queue: EventQueue, mailbox: Mailbox, listener=None) -> Rig:
    """Start what ``config`` asks for; ``listener`` (a ``midi.listener.MidiListener``, or None without MIDI)
    carries the lights back to the controllers."""
    problems: dict[str, str] = {}
    feeds = []
    for name in dict.fromkeys(n.strip() for n in config.sink.split(",") if n.strip()):
        try:
            feeds.append(SinkFeed(make_sink(name, ndi_name=config.ndi_name), mailbox, config.fps))
        except SinkUnavailable as exc:
            log.error("%s", exc)
            problems[f"sink {name}"] = str(exc)
    osc_in = None
    if config.osc_in:
        osc_in = OscServer(queue, config.osc_in, config.osc_host)
        try:
            osc_in.start()
        except OSError as exc:  # taken by another program, or not an address of this computer
            log.error("--osc-in %s:%d: %s; playing without OSC input", config.osc_host, config.osc_in,
                      exc.strerror or exc)
            problems["osc in"] = f"{config.osc_host}:{config.osc_in}: {exc.strerror or exc}"
            osc_in = None
    osc_out = None
    if config.osc_out:
        osc_out = OscSender(parse_target(config.osc_out))
        try:
            osc_out.start()
        except OSError as exc:  # a host name that does not resolve
            log.error("--osc-out %s: %s; playing without OSC output", config.osc_out, exc.strerror or exc)
            problems["osc out"] = f"{config.osc_out}: {exc.strerror or exc}"
            osc_out = None
    for feed in feeds:
        feed.start()
    midi = MidiFeedback(listener) if listener is not None else None
    return Rig(feeds, osc_in, Feedback(midi, osc_out), problems)
