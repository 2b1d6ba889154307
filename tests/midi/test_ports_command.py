"""`latent-instrument ports` lists JACK ports; with no MIDI system it says so and the listener stays off."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from instrument.events import EventQueue
from instrument.midi.listener import MidiListener

from .helpers import Sender

ROOT = Path(__file__).resolve().parents[2]


def ports_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instrument", "ports", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.mark.jack
def test_ports_lists_the_jack_ports(jack_server):
    sender = Sender(f"ports-{uuid.uuid4().hex[:6]}")
    try:
        result = ports_command("--api", "jack")
    finally:
        sender.close()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Jack (--midi-api jack)"
    assert any(line.strip().endswith(f": {sender.port_name}") for line in lines), result.stdout
    assert "virtual input: while playing, other programs can send to 'Latent Instrument'" in result.stdout


def test_without_a_midi_system_ports_says_so():
    env = {**os.environ, "JACK_DEFAULT_SERVER": f"absent-{uuid.uuid4().hex[:6]}", "JACK_NO_START_SERVER": "1"}
    result = ports_command("--api", "jack", env=env)
    assert result.returncode == 1
    assert "Jack: not available: no JACK server running" in result.stdout
    assert "still plays with the computer keyboard and mouse" in result.stdout
    assert "Traceback" not in result.stderr


def test_listener_without_a_midi_system_stays_off(monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"absent-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    listener = MidiListener(EventQueue(), api="jack")
    assert listener.start() is False
    assert listener.status()["midi"].startswith("off: no MIDI system works: Jack: no JACK server running")
    listener.stop()  # harmless
    off = MidiListener(EventQueue(), api="off")
    assert off.start() is False and "turned off" in off.status()["midi"]
