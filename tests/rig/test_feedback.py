"""MIDI feedback wired into play, read back over JACK ports: the mapping's ``feedback: true`` controls light
the controller the mapping listens to, a toggle's light follows it, the controller's echo of a light toggles
nothing, and a knob's own move is not sent back to it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import support

from instrument.config import Config

from .helpers import Controller

pytestmark = pytest.mark.jack

MAPPING = """
version: 1
ports: [{name}]
controls:
  - {{cc: 20, param: freeze, action: toggle, feedback: true}}
  - {{cc: 21, param: noise, feedback: true}}
  - {{note: 36, param: anchor, action: set, value: 1, feedback: true}}
  - {{cc: 22, param: path, action: step}}
"""


@pytest.fixture
def played(jack_server, loader, tmp_path):
    """(controller, session): ``play --headless`` on a mapping with feedback, listening to the controller."""
    from instrument.play import Session

    name = f"lights-{uuid.uuid4().hex[:6]}"
    controller = Controller(name)
    mapping = tmp_path / "lights.yaml"
    mapping.write_text(MAPPING.format(name=name))
    config = Config(size=(64, 64), fps=15, headless=True, full_model="none", midi_api="jack",
                    midi_ports=controller.port_name, midi_virtual=False, mapping=str(mapping))
    session = Session(config, load=loader)
    done: list[int] = []
    runner = threading.Thread(target=lambda: done.append(session.run()))
    runner.start()
    try:
        assert support.wait_for(lambda: session.renderer is not None and session.renderer.frames > 0, 60)
        yield controller, session
    finally:
        if session.renderer is not None:
            session.renderer.stop()
        runner.join(60)
        controller.close()
    assert done == [0]


def test_a_toggle_lights_its_button_and_its_echo_is_not_played(played):
    controller, session = played
    state = session.renderer.parts.controls.state
    # Every light once, as the controller is found: all off, the pad dark (anchor 0 is not its anchor).
    assert support.wait_for(lambda: len(controller.read()) >= 3, 15), controller.lights
    assert sorted(controller.lights) == [[0x90, 36, 0], [0xB0, 20, 0], [0xB0, 21, 0]]
    sender = session.rig.feedback.midi.senders[controller.port_name]
    sender.echo_window = 0.5  # this controller is Python polling a port: its echo comes later than a device's
    time.sleep(0.6)  # a person's press comes later than any echo
    controller.send([0xB0, 20, 127])  # the performer presses the button...
    controller.send([0xB0, 20, 0])  # ...and lets go
    assert support.wait_for(lambda: controller.read()[-1:] == [[0xB0, 20, 127]], 15), controller.lights
    assert state.value("freeze") is True
    controller.send([0xB0, 20, 127])  # the controller echoes its light (MIDI thru): no press
    time.sleep(0.5)
    assert state.value("freeze") is True and controller.read()[-1:] == [[0xB0, 20, 127]]
    assert sender.echoes == 1
    status = dict(session.renderer.status.midi)
    assert status[f"feedback {controller.port_name}"].startswith("to ")


def test_a_knob_is_not_answered_and_a_pad_lights_for_its_anchor(played):
    controller, session = played
    assert support.wait_for(lambda: len(controller.read()) >= 3, 15)
    time.sleep(0.1)  # (after the echo window of the first lights)
    controller.send([0xB0, 21, 90])  # the knob: noise follows, gliding
    controller.send([0x90, 36, 100])  # the pad: anchor 1
    assert support.wait_for(lambda: controller.read()[-1:] == [[0x90, 36, 127]], 15), controller.lights
    state = session.renderer.parts.controls.state
    assert support.wait_for(lambda: state.value("noise") == pytest.approx(90 / 127, abs=1e-3), 15)
    time.sleep(0.3)
    assert [m for m in controller.read() if m[:2] == [0xB0, 21]] == [[0xB0, 21, 0]]  # never sent back
    controller.send([0xB0, 22, 127])  # a step button has no light
    time.sleep(0.3)
    assert not [m for m in controller.read() if m[:2] == [0xB0, 22]]
