"""Real MIDI through JACK: a virtual output port -> MidiListener -> EventQueue -> MappingEngine -> state."""

from __future__ import annotations

import time
import uuid

import mido
import pytest

from instrument.control import ControlState
from instrument.events import EventQueue
from instrument.mapping import MappingEngine

from .helpers import mapping

pytestmark = pytest.mark.jack

MAPPING = """
controls:
  - {cc: 74, param: noise, range: [0, 0.5], smoothing: 0}
  - {cc: 16, relative: twos_complement, param: offset_channel}
  - {pitchbend: true, param: offset, smoothing: 0}
  - {cc: 64, param: freeze, action: hold}
notes:
  - {notes: 60-72, anchor: 0, behaviour: jump}
"""


@pytest.fixture
def played(jack_server):
    """(send, engine, state, queue): messages sent on a JACK output port arrive at a real listener."""
    import rtmidi

    from instrument.midi.listener import MidiListener

    name = f"mapping-test-{uuid.uuid4().hex[:6]}"
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
    out.open_virtual_port("out")
    queue = EventQueue()
    state = ControlState()
    engine = MappingEngine(mapping(MAPPING), state)
    queue.set_exact_controls(engine.exact_controls())
    listener = MidiListener(queue, ports=[f"{name}:out"], api="jack", virtual=False, poll_interval=0.1)
    assert listener.start()
    try:
        deadline = time.monotonic() + 5
        while not listener.open_ports() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert listener.open_ports(), listener.status()
        # The port is open a moment before JACK connects it: probe with an unmapped CC until one arrives.
        probe = mido.Message("control_change", control=119, value=0).bytes()
        while not queue.drain() and time.monotonic() < deadline + 5:
            out.send_message(probe)
            time.sleep(0.02)
        yield lambda *messages: [out.send_message(m.bytes()) for m in messages], engine, state, queue
    finally:
        listener.stop()
        out.close_port()
        out.delete()


def run_until(engine, state, queue, condition, timeout=5.0) -> bool:
    """The render loop in miniature: drain, apply, advance, until ``condition()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in queue.drain():
            engine.apply(event)
        state.advance(time.monotonic())
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_cc_note_and_pitchbend_through_jack(played):
    send, engine, state, queue = played
    send(mido.Message("control_change", control=74, value=127))
    assert run_until(engine, state, queue, lambda: state.value("noise") == pytest.approx(0.5))
    send(mido.Message("note_on", note=65, velocity=100))
    assert run_until(engine, state, queue, lambda: state.value("anchor") == 5)
    send(mido.Message("pitchwheel", pitch=-8192))
    assert run_until(engine, state, queue, lambda: state.value("offset") == pytest.approx(-3.0))
    send(mido.Message("control_change", control=64, value=127))
    assert run_until(engine, state, queue, lambda: state.value("freeze") is True)


def test_relative_encoder_ticks_are_not_coalesced(played):
    send, engine, state, queue = played
    send(*[mido.Message("control_change", control=16, value=1)] * 10)
    assert run_until(engine, state, queue, lambda: state.value("offset_channel") == 10)
    time.sleep(0.1)
    run_until(engine, state, queue, lambda: False, timeout=0.1)
    assert state.value("offset_channel") == 10


def test_learn_command_through_jack(jack_server, tmp_path):
    """`latent-instrument learn --assign noise` with a knob turned on a real port writes a loadable file."""
    import argparse
    import threading

    import rtmidi

    from instrument.mapping import load_mapping
    from instrument.mapping.learn import configure_learn, run_learn

    name = f"learn-test-{uuid.uuid4().hex[:6]}"
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
    out.open_virtual_port("out")
    stop = threading.Event()

    def turn_knob():
        while not stop.is_set():  # keep turning until learn has bound it
            for value in range(20, 60):
                out.send_message(mido.Message("control_change", channel=3, control=74, value=value).bytes())
                if stop.wait(0.01):
                    return

    parser = argparse.ArgumentParser()
    configure_learn(parser)
    target = tmp_path / "learned.yaml"
    args = parser.parse_args(["--port", f"{name}:out", "--api", "jack", "--assign", "noise",
                              "-o", str(target), "--timeout", "10"])
    knob = threading.Thread(target=turn_knob)
    knob.start()
    try:
        assert run_learn(args) == 0
    finally:
        stop.set()
        knob.join()
        out.close_port()
        out.delete()
    (control,) = load_mapping(target).controls
    assert (control.source, control.number, control.channel, control.param) == ("cc", 74, 3, "noise")
