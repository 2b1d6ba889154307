"""The loop's outputs besides the picture: the controllers' lights (MIDI feedback) and the state over OSC.

``Feedback.after_frame`` is the render loop's hook, called in each frame's spare time. At most ``rate``
times a second it reads the control state and hands what should be shown to the senders, latest value
wins; their threads do the sending (``midi.feedback.FeedbackSender``, ``osc.OscSender``), so the render
thread never waits for a port or a socket. Lights go to each controller the mapping listens to, for the
controls that say ``feedback: true``; the OSC target gets the state (``state_values``) and the values of
the OSC controls that say it. A session with neither does nothing here.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from instrument.mapping.engine import feedback_lights, feedback_osc

if TYPE_CHECKING:
    from instrument.control import ControlState
    from instrument.loop.controls import Controls
    from instrument.mailbox import Status
    from instrument.mapping import Control, Mapping
    from instrument.midi.feedback import FeedbackSender
    from instrument.midi.listener import MidiListener
    from instrument.osc import OscSender
    from instrument.performance import Coords

log = logging.getLogger(__name__)

RATE = 30.0  # updates a second: the lights and the state follow the picture without flooding anything
PORTS_SECONDS = 1.0  # how often controllers plugged in since are looked for
STATE_PREFIX = "/li/state/"


def state_values(coords: Coords, state: ControlState, status: Status, now: float) -> dict[str, float | int]:
    """The state for an OSC target, by address: where the picture is (``position`` on the path 0..1, the
    ``anchor`` picked, counting from 0, ``glide`` progress to it 0..1), how it moves (``speed`` in path
    lengths a bar, ``tempo`` in BPM, ``beat``) and the rates (``fps`` published, ``exact_fps`` decoded where
    blends fill in between, ``recording`` 1 or 0)."""
    values = {"position": coords.s, "anchor": coords.home, "glide": coords.glide,
              "speed": state.value("speed"), "tempo": state.tempo, "beat": state.beat(now),
              "fps": status.render_fps, "recording": int(status.recording is not None)}
    if status.exact_fps is not None:
        values["exact_fps"] = status.exact_fps
    return {STATE_PREFIX + name: value for name, value in values.items()}


class MidiFeedback:
    """A ``FeedbackSender`` for each controller port the mapping listens to, made when the listener has it
    open (and attached to the listener, which connects it and drops its echoes); ``close`` stops them."""

    def __init__(self, listener: MidiListener) -> None:
        self.listener = listener
        self.senders: dict[str, FeedbackSender] = {}  # by source (the port's base name)
        self._ports_due = -math.inf

    def show(self, mapping: Mapping, controls: list[Control], state: ControlState, t: float) -> None:
        """Light ``controls`` as ``state`` says, which holds the controllers' messages up to time ``t``."""
        if t >= self._ports_due:
            self._ports_due = t + PORTS_SECONDS
            self._follow(mapping)
        lights = feedback_lights(controls, state)
        for sender in self.senders.values():
            sender.show(lights, as_of=t)

    def _follow(self, mapping: Mapping) -> None:
        from instrument.midi.feedback import FeedbackSender
        from instrument.midi.system import base_name

        wanted = [p.lower() for p in mapping.ports] if mapping.ports else None
        for name in self.listener.open_ports():
            source = base_name(name, self.listener.api)
            if source in self.senders or (wanted and not any(p in source.lower() for p in wanted)):
                continue
            sender = FeedbackSender(source)
            self.listener.attach(sender)
            sender.start()
            self.senders[source] = sender
            log.info("MIDI feedback: lights go back to %r", source)

    def close(self) -> None:
        """Stop every sender (after the listener stopped: it connects them)."""
        for sender in self.senders.values():
            try:
                sender.stop()
            except Exception as exc:  # the others still stop
                log.warning("MIDI feedback to %r did not stop cleanly: %s", sender.source, exc)


class Feedback:
    """The render loop's hook for lights and state: ``after_frame`` once a frame, ``close`` at the end."""

    def __init__(self, midi: MidiFeedback | None = None, osc: OscSender | None = None,
                 rate: float = RATE) -> None:
        self.midi, self.osc, self.rate = midi, osc, rate
        self.failures = 0
        self._start: float | None = None
        self._due = -math.inf

    def after_frame(self, controls: Controls, coords: Coords, status: Status, t: float) -> None:
        """Hand the lights and the state of the frame made for time ``t`` (its controls read then) to the
        senders, if an update is due."""
        if (self.midi is None and self.osc is None) or t < self._due:
            return
        if self._start is None:
            self._start = t
        self._due = self._start + (math.floor((t - self._start) * self.rate) + 1) / self.rate
        try:
            state = controls.state
            shown = [c for c in controls.mapping.controls if c.feedback]
            if self.midi is not None and shown:
                self.midi.show(controls.mapping, shown, state, t)
            if self.osc is not None:
                self.osc.show({**state_values(coords, state, status, t), **feedback_osc(shown, state)})
        except Exception:  # the picture matters more than the lights: say it, go on
            self.failures += 1
            if self.failures == 1:
                log.exception("feedback failed; the picture goes on")

    def close(self) -> None:
        if self.midi is not None:
            self.midi.close()
        if self.osc is not None:
            self.osc.stop()
