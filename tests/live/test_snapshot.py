"""The snapshot a take starts from: exact round trips, and nothing outside the allowlist is ever built."""

from __future__ import annotations

import json
import math

import mido
import pytest
import torch

from instrument.control import ControlState
from instrument.events import ControlEvent
from instrument.loop.controls import Controls
from instrument.mapping import parse_mapping
from instrument.midi.clock import MidiClock
from instrument.performance import Coords, Performance
from instrument.snapshot import SnapshotError, decode, encode, encode_fields, restore_fields

MAPPING = """
version: 1
controls:
  - {cc: 1, param: position, smoothing: 0.3}
  - {cc: 7, param: noise, takeover: pickup}
  - {cc14: 20, lsb: 52, param: offset}
notes:
  - {notes: 60-61, anchor: 0, behaviour: hold}
"""


def test_values_survive_a_json_round_trip_exactly():
    from collections import defaultdict, deque

    value = {"floats": [0.1, 1 / 3, math.pi, float("inf"), -0.0], ("a", 1): {1, 2},
             "q": deque([1.5], maxlen=4), "d": defaultdict(list),
             "coords": Coords("slerp", 0.123456789, noise=0.25), "t": torch.tensor([0.5, 0.25])}
    back = decode(json.loads(json.dumps(encode(value))))
    assert back["floats"][:4] == value["floats"][:4] and math.copysign(1, back["floats"][4]) == -1
    assert back[("a", 1)] == {1, 2} and back["q"].maxlen == 4 and back["coords"] == value["coords"]
    assert torch.equal(back["t"], value["t"])


def test_a_snapshot_never_builds_a_class_outside_the_allowlist():
    hostile = {"object": "os:system", "fields": {}}
    with pytest.raises(SnapshotError, match="may not hold"):
        decode(hostile)
    with pytest.raises(SnapshotError):
        decode({"defaultdict": [], "factory": "subprocess:Popen"})
    with pytest.raises(TypeError):
        encode(object())


def test_controls_continue_from_a_snapshot_as_if_never_stopped():
    """Half-way through a smoothed knob, a 14-bit pair, a pickup fader and a held note, with a MIDI clock:
    a copy restored from the snapshot and the original answer the same events the same way."""
    mapping, errors = parse_mapping(MAPPING, "m.yaml")
    assert not errors
    original = Controls(mapping)
    events = [("control_change", dict(control=1, value=100)), ("control_change", dict(control=20, value=64)),
              ("note_on", dict(note=61, velocity=90)), ("control_change", dict(control=7, value=3))]
    for k, (kind, fields) in enumerate(events):
        original.apply(ControlEvent(1.0 + k / 10, "c", mido.Message(kind, **fields)))
    for pulse in range(30):
        original.apply(ControlEvent(1.0 + pulse / 48, "c", mido.Message("clock")))
    original.advance(1.5)
    original.pop_actions()
    data = json.loads(json.dumps(original.snapshot()))
    copy = Controls(mapping)
    copy.restore(data)
    later = [("control_change", dict(control=52, value=100)), ("control_change", dict(control=7, value=1)),
             ("note_off", dict(note=61)), ("control_change", dict(control=1, value=0))]
    for controls in (original, copy):
        for k, (kind, fields) in enumerate(later):
            controls.apply(ControlEvent(1.6 + k / 10, "c", mido.Message(kind, **fields)))
        controls.advance(2.5)
    assert copy.values(2.5) == original.values(2.5)
    assert copy.pop_actions() == original.pop_actions()
    assert isinstance(copy.state.clock, MidiClock)
    assert copy.state.clock.tempo_bpm == original.state.clock.tempo_bpm


def test_a_performance_snapshot_keeps_its_clocks_and_tables():
    performance = Performance(n_anchors=3)
    state = ControlState()
    state.set("speed", 0.5, 0.0)
    values = {**state.snapshot(), "beat": 0.0}
    for k in range(5):
        performance.step(values, k / 30, 1 if k == 2 else None)
    data = json.loads(json.dumps(encode_fields(performance)))
    copy = Performance(n_anchors=3)
    restore_fields(copy, data)
    assert copy.step(values, 6 / 30) == performance.step(values, 6 / 30)
