"""MIDI input: open ports through python-rtmidi, parse each message, hand it to an EventQueue.

The rtmidi callback (one thread per open port, owned by the MIDI system) only parses and enqueues: no
mapping, no torch, no long locks. JACK is the exception: its callback runs in JACK's real-time process
thread, where waiting for Python's GIL (up to the 5 ms switch interval, a whole period) overruns the cycle,
and a JACK server that does not wait for late clients (the default) then hands out duplicated and lost
events. So with JACK, rtmidi queues messages in C and a reader thread drains that queue every millisecond,
through the same parse-and-enqueue code.

A port that disappears (cable pulled, app quit) is closed and reopened by name when it comes back; a thread
polls the port names every ``poll_interval`` seconds for that.

Ports are named as the MIDI API lists them. ALSA appends ``client:port`` numbers ("nanoKONTROL2:nanoKONTROL2
MIDI 1 20:0") and Windows MM a port number ("nanoKONTROL2 1") that can change when a device is plugged in
again, so ports are matched and events are labelled (``ControlEvent.source``) by the name without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import mido
import rtmidi

from instrument.events import ControlEvent, EventQueue

log = logging.getLogger(__name__)

INSTRUMENT_NAME = "Latent Instrument"

# Our names for rtmidi's APIs; the first that works on a platform is used unless one is asked for.
APIS: dict[str, int] = {
    "coremidi": rtmidi.API_MACOSX_CORE,
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "winmm": rtmidi.API_WINDOWS_MM,
}
PLATFORM_APIS: dict[str, list[str]] = {"darwin": ["coremidi"], "linux": ["alsa", "jack"], "win32": ["winmm"]}
VIRTUAL_APIS = {"coremidi", "alsa", "jack"}  # Windows MM has no virtual ports

READER_APIS = frozenset({"jack"})  # APIs read by a thread of ours instead of rtmidi's callback (see above)
RTMIDI_QUEUE = 8192  # messages rtmidi may hold for the JACK reader (it drops and warns beyond that)
READ_INTERVAL = 0.001  # seconds between the JACK reader's sweeps when nothing came

_PORT_NUMBERS = {"alsa": re.compile(r"\s+\d+:\d+$"), "winmm": re.compile(r"\s+\d+$")}


class MidiUnavailable(RuntimeError):
    """No MIDI API could be opened; the message says why for each one tried."""


def base_name(port_name: str, api: str | None = "alsa") -> str:
    """A port's name without the numbers ``api`` appends (ALSA ``client:port``, Windows MM an index), which
    change between plug-ins."""
    pattern = _PORT_NUMBERS.get(api or "")
    return port_name if pattern is None else pattern.sub("", port_name)


def parse_message(data: Sequence[int]) -> mido.Message | None:
    """One MIDI message's bytes (as rtmidi delivers them) -> a mido.Message, or None if malformed.

    Never raises: a wrong length, a stray data byte, an unknown status, a sysex without its end byte or a
    value outside 0-255 all give None. Note-on with velocity 0 stays a note_on (the mapping reads it as off).
    """
    try:
        return mido.Message.from_bytes(data)
    except Exception:  # garbage from a device must never reach, let alone kill, the callback thread
        return None


def api_names() -> list[str]:
    """The APIs this python-rtmidi was built with, by our names, in the platform's order of preference."""
    compiled = set(rtmidi.get_compiled_api())
    preferred = PLATFORM_APIS.get(sys.platform, list(APIS))
    ordered = preferred + [name for name in APIS if name not in preferred]
    return [name for name in ordered if APIS[name] in compiled]


def api_label(api: str) -> str:
    return rtmidi.get_api_display_name(APIS[api])


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr: ALSA and libjack print several lines when their system is missing, and the
    exception says it better."""
    sys.stderr.flush()  # what Python has buffered still belongs on the real stderr
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _why(api: str, error: Exception) -> str:
    text = str(error)
    if api == "alsa" and "sequencer" in text:
        return "no ALSA sequencer (/dev/snd/seq; is the snd-seq kernel module loaded?)"
    if api == "jack" and "not running" in text:
        return "no JACK server running"
    return text or type(error).__name__


def open_client(api: str, client_name: str = INSTRUMENT_NAME) -> rtmidi.MidiIn:
    """An rtmidi input client on ``api`` ("alsa", "jack", ...); raises MidiUnavailable saying why not."""
    if api not in APIS:
        raise MidiUnavailable(f"unknown MIDI API {api!r}; choose from auto, {', '.join(APIS)}")
    if APIS[api] not in rtmidi.get_compiled_api():
        raise MidiUnavailable(f"{api}: python-rtmidi was built without it (built with: "
                              f"{', '.join(api_names()) or 'nothing'})")
    try:
        with quiet_stderr():
            return rtmidi.MidiIn(APIS[api], client_name, RTMIDI_QUEUE)
    except rtmidi.RtMidiError as error:
        raise MidiUnavailable(f"{api_label(api)}: {_why(api, error)}") from None


def choose_api(api: str | None = None, client_name: str = INSTRUMENT_NAME) -> tuple[str, rtmidi.MidiIn]:
    """The first working API (``api`` None or "auto": in platform order) and a client on it. "off": none.

    Raises MidiUnavailable naming every API tried and why it failed.
    """
    if api == "off":
        raise MidiUnavailable("turned off (--midi-api off)")
    names = api_names() if api in (None, "auto") else [api]
    reasons = []
    for name in names:
        try:
            return name, open_client(name, client_name)
        except MidiUnavailable as error:
            reasons.append(str(error))
    raise MidiUnavailable("no MIDI system works: " + "; ".join(reasons or ["python-rtmidi has no API"]))


@dataclass(eq=False)
class _Input:
    """One input port we listen to. The callback thread writes the counters; nothing else does."""

    source: str  # base name: the ControlEvent.source of its events
    name: str = ""  # full name as last opened
    midi: rtmidi.MidiIn | None = None
    state: str = "waiting"
    received: int = 0
    malformed: int = 0


class MidiListener:
    """Listens to MIDI input ports and puts each message on an EventQueue as a ControlEvent.

    ``ports``: None for every input port (present and future), else specs, each an exact port name, a
    case-insensitive part of one (all matches open), or an index into the port list. ``api``: None or "auto"
    (platform order: CoreMIDI; ALSA then JACK; Windows MM) or one of ``APIS``. ``virtual``: also open an
    input port named ``client_name`` that other programs (a DAW, a sequencer) can send to, where the API has
    virtual ports. Without any MIDI system ``start()`` logs why and returns False: the instrument goes on
    with the keyboard and mouse.
    """

    def __init__(self, queue: EventQueue, ports: list[str] | None = None, api: str | None = None,
                 virtual: bool = True, client_name: str = INSTRUMENT_NAME, poll_interval: float = 0.5):
        self.queue = queue
        self.specs = None if ports is None else list(ports)
        self.api_request = api
        self.virtual = virtual
        self.client_name = client_name
        self.poll_interval = poll_interval
        self.api: str | None = None
        self._watcher: rtmidi.MidiIn | None = None  # lists port names; also carries the virtual port
        self._virtual_input: _Input | None = None
        self._inputs: dict[str, _Input] = {}  # by base name
        self._retired = [0, 0]  # received, malformed of inputs that were closed
        self._states: dict[str, str] = {"midi": "not started"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # JACK only: the inputs the reader thread drains. Replaced whole under the lock, which the reader
        # holds for a sweep, so a port leaves it before it closes.
        self._readable: tuple[tuple[_Input, rtmidi.MidiIn], ...] = ()
        self._read_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Open the API, the virtual port and the ports asked for; start watching. False if no MIDI works."""
        try:
            self.api, self._watcher = choose_api(self.api_request, self.client_name)
        except MidiUnavailable as error:
            log.warning("MIDI off: %s. Playing on the keyboard and mouse.", error)
            self._states = {"midi": f"off: {error}"}
            return False
        log.info("MIDI API: %s", api_label(self.api))
        if self.virtual:
            self._open_virtual()
        self._poll()
        if self.specs and not self._inputs:
            log.warning("no MIDI port matches %s; waiting for one. Ports now: %s", self.specs,
                        self._watcher.get_ports() or "none")
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="midi-reconnect", daemon=True)
        self._thread.start()
        if self.api in READER_APIS:
            self._reader = threading.Thread(target=self._read, name="midi-jack-reader", daemon=True)
            self._reader.start()
        return True

    def stop(self) -> None:
        """Stop watching, then close every port (each callback is removed before its port closes)."""
        self._stop.set()
        try:
            for thread in (self._thread, self._reader):
                if thread is not None:
                    thread.join()
        finally:
            self._thread = self._reader = None
            for port in list(self._inputs.values()):
                self._close(port)
            if self._virtual_input is not None:
                self._close(self._virtual_input)  # the watcher carries it: closes the watcher too
            elif self._watcher is not None:
                self._watcher.delete()
            self._watcher = None
            self._virtual_input = None
            self._states = {"midi": "stopped"}

    def __enter__(self) -> MidiListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # State for the HUD, the log and tests ------------------------------------------------------------------

    def status(self) -> dict[str, str]:
        """``{"midi": api, "virtual": port or why not, "port <source>": "open" | "gone, waiting..." ...,
        "events": counts}``: one line each for the HUD."""
        states = dict(self._states)
        if self.api is not None:
            states["events"] = (f"{self.received} received, {self.malformed} malformed, "
                                f"{self.queue.dropped} dropped")
        return states

    @property
    def received(self) -> int:
        """Messages the callbacks got (malformed ones included), over every port ever opened."""
        return self._retired[0] + sum(port.received for port in self._all_inputs())

    @property
    def malformed(self) -> int:
        """Messages that could not be parsed and were ignored."""
        return self._retired[1] + sum(port.malformed for port in self._all_inputs())

    def open_ports(self) -> list[str]:
        """Full names of the ports open now (the virtual port not included)."""
        return [port.name for port in list(self._inputs.values()) if port.midi is not None]

    # The callback: runs on the MIDI system's thread --------------------------------------------------------

    def _callback(self, packet: tuple[list[int], float], port: _Input) -> None:
        now = time.monotonic()
        port.received += 1
        message = parse_message(packet[0])
        if message is None:
            port.malformed += 1
            return
        self.queue.put(ControlEvent(now, port.source, message))

    # Opening, closing and watching ports -------------------------------------------------------------------

    def _all_inputs(self) -> list[_Input]:
        inputs = list(self._inputs.values())
        return inputs if self._virtual_input is None else [*inputs, self._virtual_input]

    def _open_virtual(self) -> None:
        label = api_label(self.api)
        if self.api not in VIRTUAL_APIS:
            self._states["virtual"] = f"not supported by {label}"
            return
        port = _Input(source=self.client_name, name=self.client_name)
        try:
            self._watcher.open_virtual_port(self.client_name)
        except rtmidi.RtMidiError as error:
            log.warning("could not open the virtual MIDI port %r: %s", self.client_name, error)
            self._states["virtual"] = f"error: {error}"
            return
        self._listen(self._watcher, port)
        port.midi, port.state = self._watcher, "open"
        self._virtual_input = port
        self._states["virtual"] = "open"
        log.info("virtual MIDI input %r open: other programs can send to it", self.client_name)

    def _listen(self, midi: rtmidi.MidiIn, port: _Input) -> None:
        """Start delivering an open port's messages: its callback, or (JACK) the reader thread."""
        midi.ignore_types(sysex=False, timing=False, active_sense=True)
        if self.api in READER_APIS:
            with self._read_lock:
                self._readable = (*self._readable, (port, midi))
        else:
            midi.set_callback(self._callback, port)

    def _unlisten(self, midi: rtmidi.MidiIn, port: _Input) -> None:
        """Stop delivering: after this returns, no callback or sweep touches the port."""
        with self._read_lock:
            self._readable = tuple(pair for pair in self._readable if pair[0] is not port)
        midi.cancel_callback()

    def _read(self) -> None:
        # JACK's reader: take what rtmidi queued, sweep after sweep; a short sleep only when nothing came.
        while not self._stop.is_set():
            got = False
            try:
                with self._read_lock:
                    for port, midi in self._readable:
                        while (packet := midi.get_message()) is not None:
                            self._callback(packet, port)
                            got = True
            except Exception:  # the reader must outlive any one bad sweep
                log.exception("reading MIDI from JACK failed; going on")
            if not got:
                time.sleep(READ_INTERVAL)

    def _wanted(self, names: list[str]) -> list[str]:
        """The names of the ports that should be open, of those listed now."""
        if self.specs is None:
            return names
        wanted: list[str] = []
        for spec in self.specs:
            matches = [n for n in names if n == spec or self._base(n) == self._base(spec)]
            if not matches and spec.isdigit() and int(spec) < len(names):
                matches = [names[int(spec)]]
            if not matches:
                matches = [n for n in names if spec.lower() in n.lower()]
            wanted += [n for n in matches if n not in wanted]
        return wanted

    def _base(self, name: str) -> str:
        return base_name(name, self.api)

    def _poll(self) -> None:
        names = self._watcher.get_ports()
        present = {self._base(n): n for n in names}
        for source, port in list(self._inputs.items()):
            if port.midi is None:
                continue
            if source not in present:
                self._close(port)
                port.state = f"gone at {time.strftime('%H:%M:%S')}, waiting for it to come back"
                log.warning("MIDI port %r is gone; it will be reopened when it comes back", port.name)
            elif present[source] != port.name:  # ALSA: unplugged and back between two polls, new numbers
                self._close(port)
                log.warning("MIDI port %r came back as %r", port.name, present[source])
        for name in self._wanted(names):
            port = self._inputs.get(self._base(name))
            if port is not None and port.midi is not None:
                continue
            reopening = port is not None
            port = port or _Input(source=self._base(name))
            self._open(port, name)
            self._inputs[port.source] = port
            if port.midi is not None:
                log.info("MIDI port %r %s", name, "reopened" if reopening else "open")
        states = {k: v for k, v in self._states.items() if not k.startswith("port ")}
        states["midi"] = api_label(self.api)
        states.update({f"port {port.source}": port.state for port in self._inputs.values()})
        if self.specs and not self._inputs:
            states["port"] = f"none matches {', '.join(self.specs)}; waiting"
        else:
            states.pop("port", None)
        self._states = states  # one reference swap: status() never waits for a poll

    def _open(self, port: _Input, name: str) -> None:
        midi = None
        try:
            midi = rtmidi.MidiIn(APIS[self.api], self.client_name, RTMIDI_QUEUE)
            names = midi.get_ports()  # this client's own list: an index from an older one may have moved
            if name not in names:
                raise rtmidi.InvalidPortError(f"{name!r} went away while opening")
            midi.open_port(names.index(name), "in")
        except rtmidi.RtMidiError as error:
            if midi is not None:
                midi.delete()
            if port.state != f"error: {error}":  # say it once, not at every poll
                log.warning("could not open MIDI port %r: %s", name, error)
            port.state = f"error: {error}"
            return
        port.name, port.midi, port.state = name, midi, "open"
        self._listen(midi, port)

    def _close(self, port: _Input) -> None:
        midi, port.midi = port.midi, None
        if midi is None:
            return
        port.state = "closed"
        self._unlisten(midi, port)  # first: nothing may read from a closing port
        midi.close_port()
        midi.delete()
        self._retired[0] += port.received
        self._retired[1] += port.malformed
        port.received = port.malformed = 0

    def _watch(self) -> None:
        start = time.monotonic()
        n = 1
        while not self._stop.wait(max(0.0, start + n * self.poll_interval - time.monotonic())):
            n = int((time.monotonic() - start) / self.poll_interval) + 1  # skip ticks missed while busy
            try:
                self._poll()
            except Exception:  # a failed poll must not end reconnection for the rest of the show
                log.exception("MIDI port poll failed; trying again")
