"""MIDI moves the Scrubber's sliders through a mapping file: injected events, then a real JACK port."""

from __future__ import annotations

import time
import uuid

import mido
import numpy as np
import pytest
import support

import instrument as li
from instrument.events import ControlEvent
from instrument.mapping import DEFAULT_MAPPING, MappingError

from .conftest import MISSING

pytest.importorskip("ipywidgets", reason=MISSING)

MAPPING = """
version: 1
controls:
  - {cc: 1, param: position, smoothing: 0}
  - {cc: 7, param: noise, range: [0, 0.5], smoothing: 0}
  - {cc: 8, param: lock_channels, smoothing: 0}
  - {cc: 9, param: path, action: step}
  - {cc: 10, param: speed}
notes:
  - {notes: 60-72, anchor: 0, behaviour: jump}
"""


def cc(control: int, value: int) -> ControlEvent:
    message = mido.Message("control_change", control=control, value=value)
    return ControlEvent(time.monotonic(), "test", message)


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "scrub.yaml"
    path.write_text(MAPPING)
    return path


def test_events_through_the_mapping_move_the_sliders(model, anchors, mapping_file):
    with li.Scrubber(model, anchors) as scrubber:
        link = li.MidiLink(scrubber, mapping_file, listen=False)
        first = scrubber.frame
        for event in (cc(1, 127), cc(7, 127), cc(8, 32), cc(9, 127), cc(10, 127)):
            link.queue.put(event)
        assert link.poll()
        assert scrubber.position.value == 1.0 and scrubber.noise.value == pytest.approx(0.5)
        assert scrubber.lock_channels.value == 16 and scrubber.path.value == "lerp"  # (stepped once)
        assert scrubber.exact and not np.array_equal(scrubber.frame, first)
        link.queue.put(ControlEvent(time.monotonic(), "test", mido.Message("note_on", note=61, velocity=90)))
        link.poll()
        assert scrubber.position.value == 0.5 and scrubber.hold.value == 1  # anchor 1 of 3
        assert link.status() == {"midi": "not listening"} and not link.errors
        link.stop()
        assert not link.poll()


def test_a_burst_of_knob_moves_lands_on_the_last(model, anchors, mapping_file):
    with li.Scrubber(model, anchors) as scrubber:
        link = li.MidiLink(scrubber, mapping_file, listen=False)
        for k in range(5000):
            link.queue.put(cc(1, k % 128))
        link.queue.put(cc(1, 32))
        link.poll()
        assert scrubber.position.value == pytest.approx(32 / 127, abs=1e-3)


def test_a_broken_mapping_is_named_and_the_preset_is_the_default(model, anchors, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ncontrols:\n  - {cc: 1, param: nonesuch}\n")
    with li.Scrubber(model, anchors) as scrubber:
        with pytest.raises(MappingError, match="broken.yaml:3: .*nonesuch"):
            li.MidiLink(scrubber, broken, listen=False)
        link = li.MidiLink(scrubber, listen=False)
        assert link.controls.path == str(DEFAULT_MAPPING)
        link.queue.put(cc(71, 127))  # knob 2 of default.yaml: noise
        deadline = time.monotonic() + 5  # (its smoothing glides there)
        while scrubber.noise.value < 0.99 and time.monotonic() < deadline:
            link.poll()
            time.sleep(0.02)
        assert scrubber.noise.value == pytest.approx(1.0, abs=0.01)


@pytest.mark.jack
def test_a_controller_on_a_jack_port_moves_the_sliders(model, anchors, mapping_file, jack_server):
    sender = support.Sender(f"scrub-{uuid.uuid4().hex[:6]}")
    try:
        with li.Scrubber(model, anchors) as scrubber:
            link = scrubber.listen(mapping_file, ports=[sender.port_name], api="jack", virtual=False)
            assert support.wait_for(lambda: link.listener.open_ports(), 10), link.status()

            def moved() -> bool:
                sender.send([0xB0, 1, 127])  # (JACK connects the port a moment after it opens)
                link.poll()
                return scrubber.position.value == 1.0

            assert support.wait_for(moved, 10, interval=0.05), link.status()
            sender.send([0xB0, 7, 64])
            assert support.wait_for(lambda: link.poll() and scrubber.noise.value > 0.2, 10)
            assert scrubber.exact and scrubber.frame is not None
        assert link.status()["midi"] == "stopped"  # closing the scrubber closed its ports
    finally:
        sender.close()
