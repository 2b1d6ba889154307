"""Helpers that more than one test folder uses (pytest puts ``tests/`` on the path: ``import support``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class Sender:
    """A JACK client with one virtual output port ``<client>:out`` that a listener can open by name,
    standing in for a controller."""

    def __init__(self, client: str) -> None:
        import rtmidi

        self.client = client
        self.port_name = f"{client}:out"
        self.midi = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
        self.midi.open_virtual_port("out")

    def send(self, data: list[int]) -> None:
        self.midi.send_message(data)

    def close(self) -> None:
        self.midi.close_port()
        self.midi.delete()
