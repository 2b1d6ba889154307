"""Sending side for the MIDI tests: a JACK output port, and waiting for what arrives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support import Sender, wait_for  # noqa: F401 (the MIDI tests import them from here)

from instrument.events import ControlEvent, EventQueue

HANDSHAKE = [0xF0, 0x7D, 0x00, 0xF7]  # a sysex for "non-commercial" use: touches no control


def collect(queue: EventQueue, count: int, timeout: float = 5.0) -> list[ControlEvent]:
    """Drain ``queue`` until ``count`` events came or ``timeout`` passed; returns what came (late handshakes
    left out)."""
    events: list[ControlEvent] = []
    wait_for(lambda: len(events.__iadd__(without_handshakes(queue.drain()))) >= count, timeout)
    return events


def without_handshakes(events: list[ControlEvent]) -> list[ControlEvent]:
    return [e for e in events if e.message.bytes() != HANDSHAKE]


def send_paced(sender: Sender, messages: list[list[int]], received: Callable[[], int], window: int = 200,
               timeout: float = 30.0) -> None:
    """Send as fast as the receiver keeps up: at most ``window`` messages on their way at once.

    rtmidi's JACK output buffers ~16 kB between periods and drops what does not fit, so an unpaced burst
    would lose messages before they reach the listener under test. ``received()`` counts arrivals.
    """
    start = received()
    deadline = time.monotonic() + timeout
    for sent, data in enumerate(messages):
        while sent - (received() - start) >= window:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {received() - start} of {sent} sent messages arrived")
            time.sleep(0.0005)
        sender.send(data)


def handshake(send: Callable[[list[int]], None], queue: EventQueue, timeout: float = 10.0) -> None:
    """Send until something arrives, then empty ``queue``: a new JACK connection takes effect at a later
    cycle (many cycles later on a busy machine), and what is sent before it is lost."""
    deadline = time.monotonic() + timeout
    while not queue.drain():
        if time.monotonic() > deadline:
            raise TimeoutError("nothing sent arrived: the JACK connection did not come up")
        send(HANDSHAKE)
        time.sleep(0.02)
    time.sleep(0.05)  # handshakes still on their way
    queue.drain()


class SenderProcess:
    """``sender_process.py`` in a process of its own: a controller's program that can be killed."""

    def __init__(self, client: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        script = Path(__file__).with_name("sender_process.py")
        self.process = subprocess.Popen([sys.executable, str(script), client], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def send(self, data: list[int]) -> None:
        self.process.stdin.write(" ".join(map(str, data)) + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(10)
