"""Ports that go and come back: a program restarted under the same name, a port replaced between two polls,
and the JACK server itself stopped and started again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from instrument.events import EventQueue
from instrument.midi.listener import MidiListener

from .helpers import Sender, SenderProcess, collect, handshake

pytestmark = pytest.mark.jack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NO_SERVER = 77  # jack_restart_scenario.py's exit status when jackd would not start


def test_a_port_replaced_between_two_polls_is_reconnected(jack_server):
    """Closed and opened again under the same name within one poll: the name never left the port list, but
    JACK dropped our connection with the old port."""
    client = f"swap-{uuid.uuid4().hex[:6]}"
    out = Sender(client)
    queue = EventQueue()
    listener = MidiListener(queue, ports=[out.port_name], api="jack", virtual=False, poll_interval=0.3)
    assert listener.start()
    try:
        handshake(out.send, queue)
        out.close()
        out = Sender(client)  # microseconds later: no poll can have seen it gone
        handshake(out.send, queue, timeout=5)
        out.send([0x90, 64, 100])
        assert collect(queue, 1)[0].message.bytes() == [0x90, 64, 100]
        assert listener.status()[f"port {out.port_name}"] == "open"
    finally:
        listener.stop()
        out.close()


def test_a_killed_program_back_under_its_name_within_a_second_is_reconnected(jack_server):
    client = f"killed-{uuid.uuid4().hex[:6]}"
    first = SenderProcess(client)
    queue = EventQueue()
    listener = MidiListener(queue, ports=[f"{client}:out"], api="jack", virtual=False)
    assert listener.start()
    second = None
    try:
        handshake(first.send, queue)
        first.kill()  # a crash: JACK finds out on its own (the test server waits for it a while)
        second = SenderProcess(client)
        handshake(second.send, queue, timeout=15)
        notes = [[0x90, n, 100] for n in range(100)]
        for data in notes:
            second.send(data)
        assert [e.message.bytes() for e in collect(queue, 100)] == notes
    finally:
        listener.stop()
        for process in (first, second):
            if process is not None:
                process.close()


def test_jackd_stopped_and_started_again_the_virtual_port_and_ports_come_back(jack_server):
    name = f"latent-restart-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    result = subprocess.run([sys.executable, str(HERE / "jack_restart_scenario.py"), name], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=90)
    if result.returncode == NO_SERVER:
        pytest.skip(f"could not start a JACK server of its own: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["before"] and seen["gone_said"], seen
    assert seen["status_gone"]["midi"].startswith("Jack (server gone at ")
    assert "gone with the server" in seen["status_gone"]["virtual"]
    assert "gone with the server" in seen["status_gone"]["port restart-sender:out"]
    assert seen["back_said"] and seen["port_reopened"] and seen["after"], seen
    assert seen["virtual_listed"] and seen["virtual_after"], seen
    assert seen["status_back"]["midi"].startswith("Jack (server back at ")
    assert seen["status_back"]["virtual"] == "open"
