"""OSC in and out (Open Sound Control over UDP, through python-osc): TouchOSC, TouchDesigner, a lighting desk.

In: ``OscServer`` listens on a UDP port, on 127.0.0.1 unless the user names another address, and puts each
message on the EventQueue as a control event (``events.OscInput``), so that OSC goes through the mapping
engine like MIDI and is recorded and re-rendered alike: ``/li/<param> value`` sets any parameter, and a
mapping's ``osc:`` controls bind addresses like CCs. Its thread only parses and enqueues. A packet that is
not OSC, or a message whose address or arguments no control could use (blobs, arrays, NaN, long text), is
counted as malformed and ignored.

Out: ``OscSender`` sends named values (the state: position, anchor, rates; OSC controls with ``feedback``)
to one target, from a thread of its own: the render loop says what the values are (``show``, latest wins),
the sender sends those that changed, at most ``rate`` times a second, and everything again every
``REFRESH_SECONDS`` so that a target started later catches up.
"""

from __future__ import annotations

import argparse
import logging
import math
import socket
import threading
import time
from collections.abc import Iterable

from instrument.events import ControlEvent, EventQueue, OscInput

log = logging.getLogger(__name__)

SOURCE = "osc"  # the ControlEvent.source of OSC events
RATE = 30.0  # state sends a second, at most
REFRESH_SECONDS = 2.0  # every value is sent again this often
POLL_SECONDS = 0.1  # how soon the listener notices stop()
MAX_ADDRESS = 256  # characters
MAX_TEXT = 200  # characters of a text argument
MAX_ARGS = 16

OscValue = float | int | str | bool


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:7000`` for IPv6) -> (host, port); argparse.ArgumentTypeError otherwise."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:7000)")
    return host, int(port)


def message_input(address: object, params: Iterable[object]) -> OscInput | None:
    """An OSC message as the instrument takes it, or None when no control could use it: the address is not
    printable text starting with /, or an argument is not a finite number, true/false or short text."""
    if not (isinstance(address, str) and address.startswith("/") and len(address) <= MAX_ADDRESS
            and address.isprintable()):
        return None
    args: list[OscValue] = []
    for value in params:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, str) and not (len(value) <= MAX_TEXT and value.isprintable()):
            return None
        if not isinstance(value, (bool, int, float, str)) or len(args) >= MAX_ARGS:
            return None
        args.append(value)
    return OscInput(address, tuple(args))


class OscServer:
    """Listens for OSC on ``host``:``port`` (port 0: any free one; ``address`` says which after ``start``) and
    puts each usable message on ``queue`` as a ``ControlEvent`` from ``SOURCE``. ``start()`` raises OSError
    when the port cannot be had; ``stop()`` ends the thread and closes the socket."""

    def __init__(self, queue: EventQueue, port: int, host: str = "127.0.0.1") -> None:
        self.queue = queue
        self.host, self.port = host, port
        self.received = 0  # packets
        self.malformed = 0  # packets that are not OSC, and messages no control could use
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) listened on."""
        return self._socket.getsockname()[:2] if self._socket is not None else (self.host, self.port)

    def start(self) -> None:
        family, kind, proto, _, where = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.bind(where)
        except OSError:
            sock.close()
            raise
        sock.settimeout(POLL_SECONDS)
        self._socket = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="osc-in", daemon=True)
        self._thread.start()
        log.info("OSC in: listening on %s:%d", *self.address)

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            self._thread = None
            if self._socket is not None:
                self._socket.close()

    def status(self) -> str:
        host, port = self.address
        return f"{host}:{port}; {self.received} received, {self.malformed} malformed"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self._socket.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError as exc:  # (a closed socket; or an ICMP error some systems report here)
                if self._stop.is_set():
                    return
                log.debug("OSC in: %s", exc)
                continue
            self.received += 1
            self.deliver(data, time.monotonic())

    def deliver(self, data: bytes, now: float) -> None:
        """Parse one packet and enqueue its messages (a bundle's in their time order, all stamped ``now``)."""
        from pythonosc.osc_packet import OscPacket

        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception:  # ParseError, and whatever else hostile bytes make the parser raise
            self.malformed += 1
            return
        for message in messages:
            event = message_input(message.address, message.params)
            if event is None:
                self.malformed += 1
            else:
                self.queue.put(ControlEvent(now, SOURCE, event))


class OscSender:
    """Sends values to ``target`` (host, port): ``show({address: value})`` from any thread, latest wins;
    ``start()``/``stop()`` the sending thread. Values that did not change are not sent again until the next
    refresh; numbers are compared at 4 decimals."""

    def __init__(self, target: tuple[str, int], rate: float = RATE) -> None:
        if not rate > 0:
            raise ValueError(f"OSC send rate must be above 0 a second, not {rate}")
        self.target = target
        self.rate = rate
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._wanted: dict[str, OscValue] = {}
        self._shown: dict[str, OscValue] = {}
        self._error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self._client = SimpleUDPClient(*self.target)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="osc-out", daemon=True)
        self._thread.start()
        log.info("OSC out: sending the state to %s:%d", *self.target)

    def stop(self) -> None:
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join()
        finally:
            self._thread = None

    def show(self, values: dict[str, OscValue]) -> None:
        """What the target should have now (addresses not named keep what they were last given)."""
        values = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
        with self._lock:
            self._wanted.update(values)

    def status(self) -> str:
        host, port = self.target
        error = f"; {self.failed} failed ({self._error})" if self.failed else ""
        return f"to {host}:{port}; {self.sent} sent{error}"

    def _run(self) -> None:
        start, n = time.monotonic(), 1
        refresh = start + REFRESH_SECONDS
        while not self._stop.wait(max(0.0, start + n / self.rate - time.monotonic())):
            now = time.monotonic()
            n = max(n + 1, int((now - start) * self.rate) + 1)  # (ticks missed while busy are not made up)
            with self._lock:
                wanted = dict(self._wanted)
            every = now >= refresh
            if every:
                refresh = now + REFRESH_SECONDS
            for address, value in wanted.items():
                if every or self._shown.get(address) != value:
                    self._send(address, value)

    def _send(self, address: str, value: OscValue) -> None:
        try:
            self._client.send_message(address, value)
        except OSError as exc:  # a target not there (yet): say so, keep trying
            self.failed += 1
            if str(exc) != self._error:
                log.warning("OSC out to %s:%d: %s", *self.target, exc)
                self._error = str(exc)
            return
        self._shown[address] = value
        self.sent += 1
