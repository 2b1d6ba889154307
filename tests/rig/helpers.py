"""Helpers for the rig tests: a render loop on a mapping, and OSC receivers."""

from __future__ import annotations

import socket
import threading

from instrument.config import Config
from instrument.events import EventQueue
from instrument.mailbox import Mailbox

from .conftest import SIZE


def make_renderer(load, tmp_path, mapping_text: str, **kwargs):
    """(renderer, queue, mailbox) of a render loop on ``mapping_text``, at SIZE, 20 fps, no full decoder."""
    from instrument.loop.controls import Controls
    from instrument.mapping import parse_mapping
    from instrument.render import Renderer

    mapping, errors = parse_mapping(mapping_text, "test.yaml")
    assert not errors, errors
    queue, mailbox = EventQueue(), Mailbox()
    config = Config(size=(SIZE, SIZE), fps=20, record_root=str(tmp_path / "takes"), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=load,
                        controls=lambda: Controls(mapping, queue=queue), **kwargs)
    return renderer, queue, mailbox


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OscReceiver:
    """A python-osc server on 127.0.0.1 that keeps every message it gets: ``messages`` [(address, args)]."""

    def __init__(self) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.messages: list[tuple[str, tuple]] = []
        self._lock = threading.Lock()
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._got)
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _got(self, address: str, *args) -> None:
        with self._lock:
            self.messages.append((address, args))

    def got(self) -> list[tuple[str, tuple]]:
        with self._lock:
            return list(self.messages)

    def latest(self, address: str):
        values = [args for a, args in self.got() if a == address]
        return values[-1] if values else None

    def close(self) -> None:
        try:
            self.server.shutdown()
            self._thread.join()
        finally:
            self.server.server_close()


class Controller:
    """A controller on JACK: ``<name> out:port`` plays the instrument, ``<name> in:port`` takes its lights
    (``read()``: every message it got so far)."""

    def __init__(self, name: str) -> None:
        import rtmidi

        self.port_name = f"{name} out:port"
        self.output = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"{name} out")
        self.output.open_virtual_port("port")
        self.input = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{name} in")
        self.input.open_virtual_port("port")
        self.lights: list[list[int]] = []

    def send(self, data: list[int]) -> None:
        self.output.send_message(data)

    def read(self) -> list[list[int]]:
        while (message := self.input.get_message()) is not None:
            self.lights.append(message[0])
        return self.lights

    def close(self) -> None:
        from instrument.midi.system import close_client

        for midi in (self.output, self.input):
            close_client(midi)
