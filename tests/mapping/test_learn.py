"""MIDI learn: detection of what moved, binding, and files that load back with the same binding."""

from __future__ import annotations

import io

import mido
import pytest

from instrument.events import ControlEvent
from instrument.mapping import Mapping, load_mapping
from instrument.mapping.learn import Detected, Detector, LearnSession, bind, classify_cc, learn_loop
from instrument.mapping.model import NoteRange
from instrument.params import PARAMS

from .helpers import cc, mapping, note_on


@pytest.mark.parametrize("values, kind", [
    ([1, 1, 1, 2], "twos_complement"), ([127, 127, 126, 127], "twos_complement"),
    ([65, 65, 63, 65], "offset_binary"), ([1, 1, 65, 65], "sign_bit"),
    (list(range(40, 52)), "absolute"), ([127, 0], "absolute"), ([127], "absolute"),
    ([63, 64, 63, 64, 63], None), ([64], None),
])
def test_classify_cc(values, kind):
    assert classify_cc(values) == kind


def events(messages, start=0.0, step=0.02, source="port"):
    return [ControlEvent(start + i * step, source, m) for i, m in enumerate(messages)]


def detect(messages, settle=0.3):
    detector = Detector(settle)
    found = None
    evs = events(messages)
    for e in evs:
        found = found or detector.feed(e)
    return found or detector.decide(evs[-1].time + settle)


def test_detector_kinds():
    assert detect([cc(74, v, channel=2) for v in range(30, 45)]) == Detected("cc", 74, channel=2)
    assert detect([cc(16, 1)] * 6) == Detected("cc", 16, channel=0, relative="twos_complement")
    assert detect([m for v in range(20, 30) for m in (cc(3, v), cc(35, 5))]) == Detected("cc14", 3, 35, 0)
    nrpn = [cc(99, 1), cc(98, 2)] + [m for v in range(10) for m in (cc(6, 60 + v), cc(38, 0))]
    assert detect(nrpn) == Detected("nrpn", 130, channel=0)
    assert detect([mido.Message("pitchwheel", pitch=p) for p in range(0, 8000, 500)]) == \
        Detected("pitchbend", channel=0)
    assert detect([note_on(61, 90, channel=9)]) == Detected("note", 61, channel=9)
    assert detect([mido.Message("program_change", program=3)]) == Detected("program", channel=0)


def test_detector_ignores_jitter_and_picks_the_moved_control():
    jitter = [cc(7, 63 + i % 2) for i in range(20)]
    assert detect(jitter) is None
    mixed = [m for i in range(20) for m in (cc(7, 63 + i % 2), cc(74, 20 + i))]
    assert detect(mixed) == Detected("cc", 74, channel=0)


def test_bind_replaces_and_splits_note_ranges():
    m = mapping("controls:\n  - {cc: 74, param: speed}\nnotes:\n  - {notes: 60-72, anchor: 0}\n")
    m = bind(m, Detected("cc", 74, channel=0), "noise")
    assert [(c.number, c.param) for c in m.controls] == [(74, "noise")]
    m = bind(m, Detected("note", 64, channel=0), "record")
    assert m.notes == (NoteRange(60, 63, anchor=0), NoteRange(65, 72, anchor=5))
    assert m.controls[-1].source == "note" and m.controls[-1].action == "toggle"


def test_learn_session_binds_and_saves(tmp_path):
    path = tmp_path / "live-learned.yaml"
    session = LearnSession(mapping("controls:\n  - {cc: 1, param: position}\n"), path)
    assert session.feed(events([cc(74, 10)])[0]) is None  # not active: ignored
    session.start("noise")
    result = None
    for e in events([cc(74, v) for v in range(10, 40)]):
        result = result or session.feed(e)
    assert isinstance(result, Mapping) and not session.active
    assert "noise <- cc 74 on channel 1" in session.status
    loaded = load_mapping(path)
    assert loaded == result
    assert [(c.source, c.number, c.channel, c.param) for c in loaded.controls] == \
        [("cc", 1, None, "position"), ("cc", 74, 0, "noise")]


class Script:
    """A fake MIDI input: each drain hands out the next batch of events; the clock advances per call."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.now = 0.0

    def drain(self):
        return self.batches.pop(0) if self.batches else []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_scripted_learn_from_stdin_round_trips(tmp_path):
    out = tmp_path / "learned.yaml"
    knob = events([cc(21, v, channel=0) for v in range(50, 70)], start=0.0)
    encoder = events([cc(16, 127)] * 8, start=1.0)
    script = Script([[], knob, [], encoder])
    answers = io.StringIO(f"{list(PARAMS).index('speed') + 1}\nnoise\nq\n")
    said = []
    final = learn_loop(script.drain, lambda prompt: answers.readline() or "q", said.append, Mapping(), out,
                       clock=script.clock, sleep=script.sleep, timeout=5)
    loaded = load_mapping(out)
    assert loaded == final
    speed, noise = loaded.controls
    assert (speed.source, speed.number, speed.channel, speed.param) == ("cc", 21, 0, "speed")
    assert speed.relative is None
    assert (noise.number, noise.param, noise.relative) == (16, "noise", "twos_complement")
    assert any("Got cc 16 on channel 1 (twos_complement encoder)" in line for line in said)


def test_assign_non_interactive(tmp_path):
    out = tmp_path / "assigned.yaml"
    script = Script([[], events([mido.Message("pitchwheel", pitch=p) for p in range(0, 8000, 400)]),
                     [], events([note_on(36, channel=9)])])
    final = learn_loop(script.drain, lambda prompt: pytest.fail("asked"), lambda line: None, Mapping(), out,
                       assign=["offset", "freeze"], clock=script.clock, sleep=script.sleep, timeout=5)
    loaded = load_mapping(out)
    assert loaded == final
    assert [(c.source, c.param, c.action) for c in loaded.controls] == \
        [("pitchbend", "offset", "follow"), ("note", "freeze", "toggle")]


def test_timeout_ends_without_binding(tmp_path):
    script = Script([])
    result = learn_loop(script.drain, lambda p: "q", lambda line: None, Mapping(), tmp_path / "x.yaml",
                        clock=script.clock, sleep=script.sleep, timeout=0.5)
    assert result == Mapping() and not (tmp_path / "x.yaml").exists()


def test_a_control_that_cannot_drive_the_param_is_refused(tmp_path):
    session = LearnSession(Mapping(), tmp_path / "x.yaml")
    session.start("noise")
    assert session.feed(events([mido.Message("program_change", program=2)])[0]) is None
    assert session.active and "cannot drive noise" in session.status
    result = None
    for e in events([cc(71, v) for v in range(0, 30)], start=1.0):
        result = result or session.feed(e)
    assert result is not None and result.controls[0].number == 71
