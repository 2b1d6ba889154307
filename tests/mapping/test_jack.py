"""Real MIDI through JACK: a virtual output port -> MidiListener -> EventQueue -> MappingEngine -> state."""

from __future__ import annotations

import time
import uuid

import mido
import pytest

from instrument.control import ControlState
from instrument.events import EventQueue
from instrument.mapping import MappingEngine
from instrument.midi.system import close_client

from .helpers import mapping

pytestmark = pytest.mark.jack

MAPPING = """
controls:
  - {cc: 74, param: noise, range: [0, 0.5], smoothing: 0}
  - {cc: 16, relative: twos_complement, param: offset_channel}
  - {pitchbend: true, param: offset, smoothing: 0}
  - {cc: 64, param: freeze, action: hold}
  - {cc: 20, param: record, action: toggle}
  - {cc: 21, param: anchor, action: set, value: 7}
  - {cc: 22, param: pacing, action: toggle}
  - {cc: 23, param: atlas, action: toggle}
  - {cc: 24, param: path, action: step}
  - {cc: 7, param: walk_speed, takeover: pickup, smoothing: 0}
notes:
  - {notes: 60-72, anchor: 0, behaviour: jump}
"""


@pytest.fixture
def played(jack_server):
    """(send, engine, state, queue, listener): messages sent on a JACK output port arrive at a real
    listener."""
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
        send = lambda *messages: [out.send_message(m.bytes()) for m in messages]  # noqa: E731
        yield send, engine, state, queue, listener
    finally:
        listener.stop()
        close_client(out)


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
    send, engine, state, queue, _ = played
    send(mido.Message("control_change", control=74, value=127))
    assert run_until(engine, state, queue, lambda: state.value("noise") == pytest.approx(0.5))
    send(mido.Message("note_on", note=65, velocity=100))
    assert run_until(engine, state, queue, lambda: state.value("anchor") == 5)
    send(mido.Message("pitchwheel", pitch=-8192))
    assert run_until(engine, state, queue, lambda: state.value("offset") == pytest.approx(-3.0))
    send(mido.Message("control_change", control=64, value=127))
    assert run_until(engine, state, queue, lambda: state.value("freeze") is True)


def test_relative_encoder_ticks_are_not_coalesced(played):
    send, engine, state, queue, _ = played
    send(*[mido.Message("control_change", control=16, value=1)] * 10)
    assert run_until(engine, state, queue, lambda: state.value("offset_channel") == 10)
    time.sleep(0.1)
    run_until(engine, state, queue, lambda: False, timeout=0.1)
    assert state.value("offset_channel") == 10


def arrived(listener, count: int, before: int) -> bool:
    """Wait until the listener got ``count`` messages since it had ``before``: they wait in the queue."""
    deadline = time.monotonic() + 5
    while listener.received - before < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_cc_buttons_pressed_and_released_within_one_drain_act(played):
    """Record, an anchor pad, pacing, atlas and a step button, each pressed and released before the render
    thread drains: every press acts (coalesced, only the releases would arrive)."""
    send, engine, state, queue, listener = played
    before = listener.received
    for control in (20, 21, 22, 23, 24):
        send(mido.Message("control_change", control=control, value=127),
             mido.Message("control_change", control=control, value=0))
    assert arrived(listener, 10, before)
    for event in queue.drain():
        engine.apply(event)
    assert state.value("record") is True and state.value("anchor") == 7
    assert state.value("pacing") is True and state.value("atlas") is True
    assert state.value("path") != "slerp"
    actions = [name for name, _ in state.pop_actions()]
    assert actions == ["record", "anchor", "pacing", "atlas", "path"]


def test_pickup_fader_swept_while_the_render_thread_is_busy_takes_hold(played):
    send, engine, state, queue, listener = played
    state.set("walk_speed", 0.0, 0.0)
    before = listener.received
    send(*[mido.Message("control_change", control=7, value=v) for v in range(124)])
    assert arrived(listener, 124, before)
    for event in queue.drain():
        engine.apply(event)
    assert state.target("walk_speed") == pytest.approx(4.0 * 123 / 127)


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
        close_client(out)
    (control,) = load_mapping(target).controls
    assert (control.source, control.number, control.channel, control.param) == ("cc", 74, 3, "noise")
