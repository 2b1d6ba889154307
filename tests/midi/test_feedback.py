"""MIDI feedback over real JACK ports: lights reach the controller's input, only on change, at a bounded rate,
come back after a replug, and what the controller echoes never reaches the instrument."""

from __future__ import annotations

import time
import uuid

import pytest
import rtmidi

from instrument.events import EventQueue
from instrument.midi.feedback import FEEDBACK_CLIENT, FeedbackSender, output_for
from instrument.midi.listener import MidiListener
from instrument.midi.messages import Light
from instrument.midi.system import close_client

from .helpers import collect, handshake, wait_for


def test_output_for_finds_the_other_side_of_a_controller():
    outputs = ["a2j:nano [20] (playback): nano MIDI 1", "ctl in:port", "synth:midi_in", "nano 1"]
    assert output_for("a2j:nano [20] (capture): nano MIDI 1", outputs) == outputs[0]
    assert output_for("ctl out:port", outputs) == "ctl in:port"
    assert output_for("nano 0", outputs, "winmm") == "nano 1"  # Windows numbers its ports
    assert output_for("nano:nano MIDI 1 20:0", ["nano:nano MIDI 1 24:0"], "alsa") == "nano:nano MIDI 1 24:0"
    assert output_for("drum pad:out", outputs) is None


def test_light_refuses_values_outside_midi():
    assert Light(15, "note", 127, 0).bytes() == [0x9F, 127, 0]
    for bad in [(16, "cc", 1, 1), (0, "cc", 128, 1), (0, "cc", 1, -1), (0, "pc", 1, 1)]:
        with pytest.raises(ValueError, match="cc or note"):
            Light(*bad)


class Controller:
    """A controller on JACK: ``<name> out:port`` plays the instrument, ``<name> in:port`` takes its lights."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port_name = f"{name} out:port"
        self.light_port = f"{name} in:port"
        self.plug_in()

    def plug_in(self) -> None:
        self.output = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, f"{self.name} out")
        self.output.open_virtual_port("port")
        self.input = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{self.name} in")
        self.input.open_virtual_port("port")
        self.lights: list[list[int]] = []

    def read(self) -> list[list[int]]:
        while (message := self.input.get_message()) is not None:
            self.lights.append(message[0])
        return self.lights

    def close(self) -> None:
        for midi in (self.output, self.input):
            close_client(midi)


@pytest.fixture
def rig(jack_server):
    """(controller, listener, queue, feedback): a listener on the controller, feedback to it."""
    name = f"fb-{uuid.uuid4().hex[:6]}"
    controller = Controller(name)
    queue = EventQueue()
    listener = MidiListener(queue, ports=[controller.port_name], api="jack", virtual=False, poll_interval=0.1)
    # The echo window is wide here: this test's controller is Python polling a port, not a device's MIDI thru.
    feedback = FeedbackSender(controller.port_name, rate=100, echo_window=0.5)
    listener.attach(feedback)
    feedback.start()
    assert listener.start()
    try:
        assert wait_for(lambda: feedback.connected), feedback.status()
        handshake(controller.output.send_message, queue)
        yield controller, listener, queue, feedback
    finally:
        listener.stop()
        feedback.stop()
        controller.close()


pytestmark = pytest.mark.jack


def test_lights_arrive_only_on_change(rig):
    controller, listener, _, feedback = rig
    assert listener.status()[f"feedback {controller.port_name}"].startswith(f"to {controller.light_port};")
    feedback.show([Light(0, "cc", 20, 127), Light(9, "note", 36, 100)])
    assert wait_for(lambda: len(controller.read()) >= 2)
    feedback.show([Light(0, "cc", 20, 127), Light(9, "note", 36, 100)])  # nothing changed: nothing sent
    feedback.show([Light(0, "cc", 20, 0)])
    assert wait_for(lambda: len(controller.read()) >= 3)
    time.sleep(0.1)
    assert controller.read() == [[0xB0, 20, 127], [0x99, 36, 100], [0xB0, 20, 0]] and feedback.sent == 3


def test_at_most_rate_messages_a_second(rig):
    controller, _, _, feedback = rig
    began = time.monotonic()
    feedback.show([Light(0, "cc", n, 1) for n in range(60)])
    time.sleep(0.2)
    elapsed = time.monotonic() - began
    assert feedback.sent <= 100 * elapsed + 2  # a slow machine sends fewer, never more
    assert wait_for(lambda: len(controller.read()) == 60)
    assert sorted(m[1] for m in controller.lights) == list(range(60))


def test_the_controllers_echo_never_reaches_the_instrument(rig):
    controller, _, queue, feedback = rig
    feedback.show([Light(0, "cc", 20, 127)])
    assert wait_for(lambda: controller.read() == [[0xB0, 20, 127]])
    controller.output.send_message([0xB0, 20, 127])  # echoed back, as MIDI thru would
    controller.output.send_message([0xB0, 20, 0])  # the performer lets go: a real move
    assert [e.message.bytes() for e in collect(queue, 1)] == [[0xB0, 20, 0]]
    time.sleep(0.1)
    assert queue.drain() == [] and feedback.echoes == 1


def test_lights_come_back_after_the_controller_is_plugged_in_again(rig):
    controller, listener, _, feedback = rig
    feedback.show([Light(0, "cc", 20, 127), Light(0, "cc", 21, 5)])
    assert wait_for(lambda: len(controller.read()) == 2)
    controller.close()
    assert wait_for(lambda: not feedback.connected)
    controller.plug_in()
    assert wait_for(lambda: len(controller.read()) == 2, timeout=10)
    assert sorted(controller.lights) == [[0xB0, 20, 127], [0xB0, 21, 5]]


def test_listening_to_every_port_leaves_the_feedback_port_alone(rig):
    controller, _, queue, feedback = rig
    lister = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "lister")
    assert any(name.startswith(FEEDBACK_CLIENT) for name in lister.get_ports())  # it is there to be heard
    lister.delete()
    everything = MidiListener(queue, ports=None, api="jack", virtual=False)
    assert everything.start()
    try:
        assert controller.port_name in everything.open_ports()
        assert not [name for name in everything.open_ports() if name.startswith(FEEDBACK_CLIENT)]
    finally:
        everything.stop()


def test_a_toggle_lights_its_button_and_its_echo_does_not_toggle_it_back(rig):
    """The whole way: a press toggles record through the mapping engine, the light goes to the controller,
    and the controller echoing the light (a press, as far as MIDI says) toggles nothing."""
    from instrument.control import ControlState
    from instrument.mapping import MappingEngine, parse_mapping
    from instrument.mapping.engine import feedback_lights

    controller, _, queue, feedback = rig
    text = "version: 1\ncontrols:\n  - {cc: 20, param: record, action: toggle}\n"
    mapping, errors = parse_mapping(text, "test.yaml")
    assert not errors
    state = ControlState()
    engine = MappingEngine(mapping, state)
    queue.set_exact_controls(engine.exact_controls())

    def frame() -> None:  # the render thread's part, once a frame
        for event in queue.drain():
            engine.apply(event)
        feedback.show(feedback_lights(mapping.controls, state))

    frame()
    assert wait_for(lambda: controller.read() == [[0xB0, 20, 0]])
    time.sleep(feedback.echo_window)  # a person's press comes later than any echo
    controller.output.send_message([0xB0, 20, 127])
    controller.output.send_message([0xB0, 20, 0])
    assert wait_for(lambda: frame() or state.value("record") is True)
    assert wait_for(lambda: frame() or controller.read()[-1] == [0xB0, 20, 127])
    for data in controller.read()[1:]:
        controller.output.send_message(data)  # echoed back
    time.sleep(0.2)
    frame()
    assert state.value("record") is True and feedback.echoes == 1


def test_a_knobs_own_move_is_not_sent_back_to_it(rig):
    controller, _, queue, feedback = rig
    controller.output.send_message([0xB0, 30, 99])
    assert collect(queue, 1)[0].message.bytes() == [0xB0, 30, 99]
    feedback.show([Light(0, "cc", 30, 99)])  # the engine's value: where the knob already is
    feedback.show([Light(0, "cc", 31, 1)])
    assert wait_for(lambda: controller.read() == [[0xB0, 31, 1]])
    time.sleep(0.1)
    assert controller.read() == [[0xB0, 31, 1]] and feedback.sent == 1
