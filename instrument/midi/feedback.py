"""MIDI feedback: the instrument's values back to the controller (button LEDs, pad lights, LED rings,
motor faders).

The render thread says what the controller should show, ``FeedbackSender.show(lights)``, as often as it likes:
the latest value of each light wins. The sender's thread sends only what changed since it last sent, at most
``rate`` messages a second, to the controller's output port: the one ``output_for`` finds beside the input
port the instrument listens to. The listener connects it whenever that input port is open
(``MidiListener.attach``), so the lights come back, all of them, after the controller is plugged in again.

A controller that echoes what it is sent (MIDI thru, some LED modes) would play the instrument's own values
back into it. The listener hands ``heard`` each message from that controller and drops one that repeats a
message sent to it within ``echo_window`` seconds (an echo comes back within milliseconds; a person cannot
press and release that fast). Every message heard also tells what the controller shows now, so a knob's own
move is not sent back to it; and until the render thread has applied that move (``show``'s ``as_of``), what
the controller shows is what it should show. The sender's own port is never listened to.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from collections.abc import Iterable

import mido
import rtmidi

from instrument.midi.messages import Light
from instrument.midi.system import APIS, INSTRUMENT_NAME, base_name, close_client, quiet_stderr

log = logging.getLogger(__name__)

RATE = 500.0  # messages per second at most: a preset change relights a whole controller in 0.1 s
TICK = 0.01  # seconds between the sender's sweeps
ECHO_WINDOW = 0.05  # seconds a sent message may take to come back as an echo
FEEDBACK_CLIENT = f"{INSTRUMENT_NAME} feedback"

_DIRECTION = {"capture": "playback", "playback": "capture", "out": "in", "in": "out", "output": "input",
              "input": "output"}
_DIRECTION_WORD = re.compile(r"\b(capture|playback|output|input|out|in)\b", re.IGNORECASE)


def _light_key(message: mido.Message) -> tuple[tuple[int, str, int], int] | None:
    """A received message as (channel, kind, number) and value, for comparing with sent lights."""
    if message.type == "control_change":
        return (message.channel, "cc", message.control), message.value
    if message.type in ("note_on", "note_off"):
        velocity = message.velocity if message.type == "note_on" else 0
        return (message.channel, "note", message.note), velocity
    return None


def output_for(input_name: str, outputs: list[str], api: str | None = None) -> str | None:
    """The controller's output port (where lights go) for its input port ``input_name``: the output of the
    same name (CoreMIDI, ALSA and Windows name both sides of a device alike), else the one whose name differs
    only in its direction words (JACK: ``a2j:X (capture)`` and ``a2j:X (playback)``, ``ctl out:p`` and
    ``ctl in:p``). None when none or several match."""
    def same(a: str, b: str) -> bool:
        return a == b or base_name(a, api) == base_name(b, api)

    swapped = _DIRECTION_WORD.sub(lambda m: _DIRECTION[m.group(1).lower()], input_name)
    for wanted in (input_name, swapped):
        found = [name for name in outputs if same(name, wanted)]
        if len(found) == 1:
            return found[0]
    return None


class FeedbackSender:
    """Sends lights to the controller whose input port is ``source`` (``ControlEvent.source``: the port name
    as the listener labels its events). ``output``: the output port's name, where ``output_for`` cannot
    find it. ``start()``/``stop()`` its thread; ``show`` from any thread; ``connect``/``disconnect`` come
    from the listener, which owns when MIDI clients may open and close."""

    def __init__(self, source: str, output: str | None = None, rate: float = RATE,
                 echo_window: float = ECHO_WINDOW, client_name: str = FEEDBACK_CLIENT) -> None:
        if not rate > 0:
            raise ValueError(f"feedback rate must be above 0 messages/s, not {rate}")
        self.source = source
        self.output = output
        self.rate = rate
        self.echo_window = echo_window
        self.client_name = client_name
        self.sent = 0
        self.echoes = 0
        self._lock = threading.Lock()
        self._wanted: dict[tuple[int, str, int], Light] = {}
        self._shown: dict[tuple[int, str, int], int] = {}  # what the controller shows, as far as we sent
        self._recent: dict[tuple[tuple[int, str, int], int], float] = {}  # sent message -> when
        self._heard: dict[tuple[int, str, int], float] = {}  # light -> when the controller last moved it
        self._midi: rtmidi.MidiOut | None = None
        self._state = f"waiting for {source}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"midi-feedback {self.source}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            self._thread = None
            self.disconnect()

    def show(self, lights: Iterable[Light], as_of: float | None = None) -> None:
        """What the controller should show now (lights not named keep what they were last given). ``as_of``:
        the time (``time.monotonic()``) up to which the controller's messages are in these values; a light
        the controller moved after it keeps what the controller shows."""
        lights = list(lights)
        newest = math.inf if as_of is None else as_of
        with self._lock:
            for light in lights:
                key = (light.channel, light.kind, light.number)
                if self._heard.get(key, -math.inf) <= newest:
                    self._wanted[key] = light

    def status(self) -> str:
        return f"{self._state}; {self.sent} sent, {self.echoes} echoes ignored"

    @property
    def connected(self) -> bool:
        return self._midi is not None

    # From the listener ------------------------------------------------------------------------------------

    def connect(self, input_name: str, api: str) -> None:
        """The controller's input port ``input_name`` is open: open its output and show every light again."""
        midi = None
        try:
            with quiet_stderr():
                midi = rtmidi.MidiOut(APIS[api], self.client_name)
            outputs = midi.get_ports()
            name = self.output if self.output in outputs else output_for(input_name, outputs, api)
            if name is None:
                raise rtmidi.InvalidPortError(f"no output port beside {input_name!r} (outputs: "
                                              f"{', '.join(outputs) or 'none'}); name it")
            midi.open_port(outputs.index(name), "feedback")
        except rtmidi.RtMidiError as error:
            if midi is not None:
                midi.delete()
            if self._state != f"error: {error}":
                log.warning("MIDI feedback for %r: %s", self.source, error)
            self._state = f"error: {error}"
            return
        with self._lock:
            self._midi, self._shown = midi, {}
        self._state = f"to {name}"
        log.info("MIDI feedback for %r goes to %r", self.source, name)

    def disconnect(self) -> None:
        with self._lock:
            midi, self._midi = self._midi, None
        if midi is not None:
            close_client(midi)
            self._state = f"waiting for {self.source}"

    def heard(self, message: mido.Message, now: float) -> bool:
        """``message`` came from the controller at ``now``: True if it is an echo of one sent to it (then
        counted, and to be dropped). Either way the controller now shows its value."""
        light = _light_key(message)
        if light is None:
            return False
        key, value = light
        with self._lock:
            sent = self._recent.pop(light, None)
            self._shown[key] = value
            echo = sent is not None and now - sent <= self.echo_window
            if not echo and key in self._wanted:  # the hand moved it: shown as it is until the state follows
                self._heard[key] = now
                self._wanted[key] = dataclasses.replace(self._wanted[key], value=value)
        if echo:
            self.echoes += 1
        return echo

    # The sender's thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        start = time.monotonic()
        n = 1
        budget = 0.0
        while not self._stop.wait(max(0.0, start + n * TICK - time.monotonic())):
            n += 1
            budget = min(budget + self.rate * TICK, max(1.0, self.rate * TICK))
            try:
                budget -= self._send(int(budget))
            except Exception:  # a failed send must not end feedback for the rest of the show
                log.exception("MIDI feedback to %r failed; going on", self.source)

    def _send(self, most: int) -> int:
        """Send up to ``most`` changed lights; how many went."""
        now = time.monotonic()
        sent = 0
        with self._lock:
            if self._midi is None:
                return 0
            for key, light in self._wanted.items():
                if sent >= most:
                    break
                if self._shown.get(key) != light.value:
                    self._midi.send_message(light.bytes())
                    self._shown[key] = light.value
                    self._recent[key, light.value] = now
                    sent += 1
            if len(self._recent) > 4 * len(self._wanted) + 64:  # forget what can no longer come back
                self._recent = {k: t for k, t in self._recent.items() if now - t <= self.echo_window}
        self.sent += sent
        return sent
