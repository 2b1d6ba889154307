"""MIDI input: open ports through python-rtmidi, parse each message, hand it to an EventQueue.

The rtmidi callback (one thread per open port, owned by the MIDI system) only parses and enqueues: no
mapping, no torch, no long locks. JACK is the exception: its callback runs in JACK's real-time process
thread, where waiting for Python's GIL (up to the 5 ms switch interval, a whole period) overruns the cycle,
and a JACK server that does not wait for late clients (the default) then hands out duplicated and lost
events. So with JACK, rtmidi queues messages in C and a reader thread drains that queue every millisecond,
through the same parse-and-enqueue code.

A thread polls the ports every ``poll_interval`` seconds. A port that disappears (cable pulled, app quit)
is closed and reopened by name when it comes back. On JACK the poll also checks that each port is still
connected to ours: a program killed and started again between two polls has a port of the same name, but
JACK dropped our connection with the old one. And when the JACK server itself stops, every port and the
virtual port are closed, and opened again when a server is back (``status()`` and the log say so).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import rtmidi

from instrument.events import ControlEvent, EventQueue
from instrument.midi.feedback import FEEDBACK_CLIENT, FeedbackSender
from instrument.midi.jackgraph import JackGraph
from instrument.midi.messages import parse_message
from instrument.midi.system import (
    APIS,
    INSTRUMENT_NAME,
    RTMIDI_QUEUE,
    VIRTUAL_APIS,
    MidiUnavailable,
    api_label,
    base_name,
    choose_api,
    close_client,
    open_client,
    quiet_stderr,
)

log = logging.getLogger(__name__)

READER_APIS = frozenset({"jack"})  # APIs read by a thread of ours instead of rtmidi's callback (see above)
READ_INTERVAL = 0.001  # seconds between the JACK reader's sweeps when nothing came
LINK_WAIT = 0.5  # seconds to wait, after opening a JACK port, for our connection to show in the graph


@dataclass(eq=False)
class _Input:
    """One input port we listen to. The callback thread writes the counters; nothing else does."""

    source: str  # base name: the ControlEvent.source of its events
    name: str = ""  # full name as last opened
    midi: rtmidi.MidiIn | None = None
    state: str = "waiting"
    received: int = 0
    malformed: int = 0
    link: str | None = None  # JACK: the full name of our port connected to it, once seen
    before: tuple[str, ...] = ()  # JACK: what it was connected to before we opened it

    def open(self, name: str, api: str, client_name: str, delivery: Delivery,
             graph: JackGraph | None) -> None:
        """Open port ``name`` on a client of its own and deliver its messages; ``state`` says how it went."""
        midi = None
        before = graph.connections(name) if graph is not None else None
        try:
            with quiet_stderr():
                midi = rtmidi.MidiIn(APIS[api], client_name, RTMIDI_QUEUE)
            names = midi.get_ports()  # this client's own list: an index from an older one may have moved
            if name not in names:
                raise rtmidi.InvalidPortError(f"{name!r} went away while opening")
            midi.open_port(names.index(name), "in")
        except rtmidi.RtMidiError as error:
            if midi is not None:
                midi.delete()
            if self.state != f"error: {error}":  # say it once, not at every poll
                log.warning("could not open MIDI port %r: %s", name, error)
            self.state = f"error: {error}"
            return
        self.name, self.midi, self.state = name, midi, "open"
        self.link, self.before = None, tuple(before or ())
        delivery.listen(midi, self)
        deadline = time.monotonic() + LINK_WAIT
        while graph is not None and self.linked(graph) and self.link is None and time.monotonic() < deadline:
            time.sleep(0.005)  # JACK shows a new connection from its next cycle on

    def linked(self, graph: JackGraph | None) -> bool:
        """Whether our connection from it still stands (True where that cannot be told: no graph, or our
        connection not seen yet). Ours is the one that was not there before we opened it."""
        if graph is None:
            return True
        now = graph.connections(self.name) or []
        if self.link is None:
            new = [n for n in now if n not in self.before]
            self.link = new[0] if len(new) == 1 else None
            return True
        return self.link in now

    def close(self, delivery: Delivery) -> bool:
        """Stop delivering and close; False if it was not open."""
        midi, self.midi = self.midi, None
        if midi is None:
            return False
        self.state = "closed"
        self.link, self.before = None, ()
        delivery.unlisten(midi, self)  # first: nothing may read from a closing port
        close_client(midi)
        return True


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def wanted_ports(specs: list[str] | None, names: list[str], api: str | None) -> list[str]:
    """Of the port ``names`` listed now, those ``specs`` ask for (None: all but the instrument's own, such as
    its feedback outputs). A spec is an exact name, a name without the numbers ``api`` appends, an index into
    ``names``, or a case-insensitive part of names."""
    if specs is None:
        return [n for n in names if not n.startswith(FEEDBACK_CLIENT)]
    wanted: list[str] = []
    for spec in specs:
        matches = [n for n in names if n == spec or base_name(n, api) == base_name(spec, api)]
        if not matches and spec.isdigit() and int(spec) < len(names):
            matches = [names[int(spec)]]
        if not matches:
            matches = [n for n in names if spec.lower() in n.lower()]
        wanted += [n for n in matches if n not in wanted]
    return wanted


def open_graph(api: str, client_name: str) -> JackGraph | None:
    """JACK: a graph client to watch connections and the server with; None on other APIs, or if it fails."""
    if api != "jack":
        return None
    try:
        return JackGraph(f"{client_name} graph")
    except OSError as error:  # reconnection then goes by port names alone
        log.warning("cannot watch the JACK graph (%s): a port that returns between two polls, or a restarted "
                    "server, will not be noticed", error)
        return None


class Delivery:
    """Hands each message of the open ports to ``queue``: from rtmidi's callback, or (``reads``) from a reader
    thread that drains rtmidi's queue. Parse and enqueue only, on either thread."""

    def __init__(self, queue: EventQueue, reads: bool) -> None:
        self.queue = queue
        self.reads = reads
        self.outputs: dict[str, FeedbackSender] = {}  # by source: their echoes are dropped
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The inputs the reader drains. Replaced whole under the lock, which the reader holds for a sweep,
        # so a port leaves it before it closes.
        self._readable: tuple[tuple[_Input, rtmidi.MidiIn], ...] = ()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.reads:
            self._stop.clear()
            self._thread = threading.Thread(target=self._read, name="midi-reader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            self._thread = None

    def listen(self, midi: rtmidi.MidiIn, port: _Input) -> None:
        """Start delivering an open port's messages."""
        midi.ignore_types(sysex=False, timing=False, active_sense=True)
        if self.reads:
            with self._lock:
                self._readable = (*self._readable, (port, midi))
        else:
            midi.set_callback(self.callback, port)

    def unlisten(self, midi: rtmidi.MidiIn, port: _Input) -> None:
        """Stop delivering: after this returns, no callback or sweep touches the port."""
        with self._lock:
            self._readable = tuple(pair for pair in self._readable if pair[0] is not port)
        midi.cancel_callback()

    def callback(self, packet: tuple[list[int], float], port: _Input) -> None:
        """One message's bytes from ``port``: runs on the MIDI system's thread (or the reader)."""
        now = time.monotonic()
        port.received += 1
        message = parse_message(packet[0])
        if message is None:
            port.malformed += 1
            return
        output = self.outputs.get(port.source)
        if output is not None and output.heard(message, now):
            return
        self.queue.put(ControlEvent(now, port.source, message))

    def _read(self) -> None:
        # Take what rtmidi queued, sweep after sweep; a short sleep only when nothing came.
        while not self._stop.is_set():
            got = False
            try:
                with self._lock:
                    for port, midi in self._readable:
                        while (packet := midi.get_message()) is not None:
                            self.callback(packet, port)
                            got = True
            except Exception:  # the reader must outlive any one bad sweep
                log.exception("reading MIDI failed; going on")
            if not got:
                time.sleep(READ_INTERVAL)


class MidiListener:
    """Listens to MIDI input ports and puts each message on an EventQueue as a ControlEvent.

    ``ports``: None for every input port (present and future), else specs, each an exact port name, a
    case-insensitive part of one (all matches open), or an index into the port list. ``api``: None or "auto"
    (platform order: CoreMIDI; ALSA then JACK; Windows MM) or one of ``APIS``. ``virtual``: also open an
    input port named ``client_name`` that other programs (a DAW, a sequencer) can send to, where the API has
    virtual ports. ``reader``: deliver through a reader thread (True) or rtmidi's callback (False); None: a
    reader where the API needs one (JACK). Without any MIDI system ``start()`` logs why and returns False:
    the instrument goes on with the keyboard and mouse.
    """

    def __init__(self, queue: EventQueue, ports: list[str] | None = None, api: str | None = None,
                 virtual: bool = True, client_name: str = INSTRUMENT_NAME, poll_interval: float = 0.5,
                 reader: bool | None = None):
        self.queue = queue
        self.specs = None if ports is None else list(ports)
        self.api_request = api
        self.virtual = virtual
        self.client_name = client_name
        self.poll_interval = poll_interval
        self.reader = reader
        self.api: str | None = None
        self._watcher: rtmidi.MidiIn | None = None  # lists port names; also carries the virtual port
        self._graph: JackGraph | None = None  # JACK: connections and server shutdown
        self._virtual_input: _Input | None = None
        self._inputs: dict[str, _Input] = {}  # by base name
        self._retired = [0, 0]  # received, malformed of inputs that were closed
        self._states: dict[str, str] = {"midi": "not started"}
        self._server = ""  # what happened to the MIDI system, for status(): "" while nothing did
        self._delivery = Delivery(queue, reads=False)  # how is known once the API is
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._delivery.reads = self.reader if self.reader is not None else self.api in READER_APIS
        self._graph = open_graph(self.api, self.client_name)
        if self.virtual:
            self._open_virtual()
        self._poll()
        if self.specs and not self._inputs:
            log.warning("no MIDI port matches %s; waiting for one. Ports now: %s", self.specs,
                        self._watcher.get_ports() or "none")
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="midi-reconnect", daemon=True)
        self._thread.start()
        self._delivery.start()
        return True

    def stop(self) -> None:
        """Stop watching, then close every port (each callback is removed before its port closes)."""
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            self._thread = None
            try:
                self._delivery.stop()
            finally:
                self._close_all()
            self._states = {"midi": "stopped"}

    def __enter__(self) -> MidiListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # State for the HUD, the log and tests ------------------------------------------------------------------

    def status(self) -> dict[str, str]:
        """One line each for the HUD: ``{"midi": the API, and what happened to its server if anything did,
        "virtual": "open" or why not, "port <source>": "open" | "gone at ..., waiting ..." ..., "events":
        counts}``."""
        states = dict(self._states)
        if self.api is not None:
            drops = self.queue.drops()
            detail = ", ".join(f"{kind} {n}" for kind, n in sorted(drops.items()))
            states["events"] = (f"{self.received} received, {self.malformed} malformed, "
                                f"{sum(drops.values())} dropped" + (f" ({detail})" if detail else ""))
        return states

    @property
    def received(self) -> int:
        """Messages the callbacks got (malformed ones included), over every port ever opened."""
        return self._retired[0] + sum(port.received for port in self._all_inputs())

    @property
    def malformed(self) -> int:
        """Messages that could not be parsed and were ignored."""
        return self._retired[1] + sum(port.malformed for port in self._all_inputs())

    def attach(self, output: FeedbackSender) -> None:
        """Connect ``output`` whenever the port it is for (``output.source``) is open, and drop that port's
        echoes of what it sends. The caller starts and stops the sender."""
        self._delivery.outputs = {**self._delivery.outputs, output.source: output}  # one swap: no lock

    def open_ports(self) -> list[str]:
        """Full names of the ports open now (the virtual port not included)."""
        return [port.name for port in list(self._inputs.values()) if port.midi is not None]

    # Opening and closing -----------------------------------------------------------------------------------

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
        self._delivery.listen(self._watcher, port)
        port.midi, port.state = self._watcher, "open"
        self._virtual_input = port
        self._states["virtual"] = "open"
        log.info("virtual MIDI input %r open: other programs can send to it", self.client_name)

    def _close(self, port: _Input) -> None:
        output = self._delivery.outputs.get(port.source)
        if output is not None:
            output.disconnect()  # before any new client: see _lose_server
        if port.close(self._delivery):
            self._retired[0] += port.received
            self._retired[1] += port.malformed
            port.received = port.malformed = 0

    def _close_all(self) -> None:
        """Close every port, the virtual one, the watcher and the graph client."""
        for port in list(self._inputs.values()):
            self._close(port)
        if self._virtual_input is not None:
            self._close(self._virtual_input)  # the watcher carries it: closes the watcher too
        elif self._watcher is not None:
            self._watcher.delete()
        self._watcher = None
        self._virtual_input = None
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    # Watching ----------------------------------------------------------------------------------------------

    def _watch(self) -> None:
        start = time.monotonic()
        n = 1
        while not self._stop.wait(max(0.0, start + n * self.poll_interval - time.monotonic())):
            n = int((time.monotonic() - start) / self.poll_interval) + 1  # skip ticks missed while busy
            try:
                self._poll()
            except Exception:  # a failed poll must not end reconnection for the rest of the show
                log.exception("MIDI port poll failed; trying again")

    def _poll(self) -> None:
        if self._graph is not None and not self._graph.alive:
            self._lose_server()
        if self._watcher is None and not self._restore_server():
            self._publish()
            return
        names = self._watcher.get_ports()
        present = {self._base(n): n for n in names}
        for source, port in list(self._inputs.items()):
            if port.midi is None:
                continue
            if source not in present:
                self._close(port)
                port.state = f"gone at {_clock()}, waiting for it to come back"
                log.warning("MIDI port %r is gone; it will be reopened when it comes back", port.name)
            elif present[source] != port.name:  # ALSA: unplugged and back between two polls, new numbers
                self._close(port)
                log.warning("MIDI port %r came back as %r", port.name, present[source])
            elif not port.linked(self._graph):
                self._close(port)  # a new port under the old name: JACK dropped our connection with the old
                log.warning("MIDI port %r was replaced (its program restarted?); reconnecting", port.name)
        for name in wanted_ports(self.specs, names, self.api):
            port = self._inputs.get(self._base(name))
            if port is not None and port.midi is not None:
                continue
            reopening = port is not None
            port = port or _Input(source=self._base(name))
            port.open(name, self.api, self.client_name, self._delivery, self._graph)
            self._inputs[port.source] = port
            if port.midi is not None:
                log.info("MIDI port %r %s", name, "reopened" if reopening else "open")
        for source, output in self._delivery.outputs.items():
            port = self._inputs.get(source)
            if port is not None and port.midi is not None and not output.connected:
                output.connect(port.name, self.api)
        self._publish()

    def _publish(self) -> None:
        states = {k: v for k, v in self._states.items() if not k.startswith("port ")}
        states["midi"] = api_label(self.api) + (f" ({self._server})" if self._server else "")
        states.update({f"port {port.source}": port.state for port in self._inputs.values()})
        states.update({f"feedback {s}": o.status() for s, o in self._delivery.outputs.items()})
        if self.specs and not self._inputs:
            states["port"] = f"none matches {', '.join(self.specs)}; waiting"
        else:
            states.pop("port", None)
        self._states = states  # one reference swap: status() never waits for a poll

    def _base(self, name: str) -> str:
        return base_name(name, self.api)

    def _lose_server(self) -> None:
        """The JACK server is gone: close everything now, before any new client (libjack frees what an old
        client holds when a new one connects, and closing that old client then crashes)."""
        self._close_all()
        when = _clock()
        for port in self._inputs.values():
            port.state = f"gone with the server at {when}, waiting for it to come back"
        self._server = f"server gone at {when}; waiting for it to come back"
        if self.virtual:
            self._states["virtual"] = f"gone with the server at {when}; re-created when it comes back"
        log.warning("the %s server is gone: MIDI input stops until it comes back", api_label(self.api))

    def _restore_server(self) -> bool:
        """After the server was lost: open a client again if one is back (virtual port and graph too)."""
        try:
            self._watcher = open_client(self.api, self.client_name)
        except MidiUnavailable:
            return False
        self._graph = open_graph(self.api, self.client_name)
        if self.virtual:
            self._open_virtual()
        self._server = f"server back at {_clock()}"
        log.warning("the %s server is back: %s", api_label(self.api),
                    "virtual port re-created, ports reopening" if self.virtual else "ports reopening")
        return True
