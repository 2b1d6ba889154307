"""``audio:`` mapping sources: features bound like knobs (range, curve, smoothing, attack and release),
onsets as button presses, the MIDI clock's beat in place of the sound's; mistakes in such entries are
one-line errors at their line; a mapping with them writes back as it reads."""

from __future__ import annotations

import math

import mido
import pytest
from mapping.helpers import Rig, mapping

from instrument.events import AUDIO_FEATURES, AudioFeatures, ControlEvent
from instrument.mapping import parse_mapping
from instrument.mapping.writer import dump_mapping

MAPPING = """
controls:
  - {audio: low, param: noise, range: [0, 0.5], smoothing: 0, attack: 0.1, release: 0.5}
  - {audio: low, param: offset, range: [0, 3], smoothing: 0}
  - {audio: onset, param: next}
  - {audio: beat, param: atlas_x, smoothing: 0}
  - {audio: tempo, param: tempo, smoothing: 0}
"""


def hop(at: float, *, low: float = 0.0, onset: bool = False, beat: float = 0.0,
        tempo: float = 0.0) -> AudioFeatures:
    return AudioFeatures(at, 0.0, low, 0.0, 0.0, onset, beat, tempo)


def feed(rig: Rig, t: float, features: AudioFeatures) -> bool:
    return rig.engine.apply(ControlEvent(t, "audio:test", features))


def test_a_feature_drives_its_parameters_through_the_envelope():
    rig = Rig(MAPPING)
    assert rig.engine.hears_audio
    feed(rig, 0.0, hop(0.0))
    for k in range(1, 11):  # the low band jumps to 1 and stays: the envelope rises over `attack`
        feed(rig, k * 0.01, hop(k * 0.01, low=1.0))
    risen = 1 - math.exp(-0.1 / 0.1)
    assert rig.value("noise", 0.1) == pytest.approx(0.5 * risen)
    assert rig.value("offset") == pytest.approx(3.0)  # the entry without an envelope follows at once
    for k in range(11, 61):  # silence: it falls over `release`
        feed(rig, k * 0.01, hop(k * 0.01))
    assert rig.value("noise", 0.6) == pytest.approx(0.5 * risen * math.exp(-0.5 / 0.5))
    assert rig.value("offset") == 0.0


def test_onsets_press_next_and_an_unknown_tempo_moves_nothing():
    rig = Rig(MAPPING)
    st = rig.state
    tempo = st.value("tempo")
    for k, onset in enumerate([False, True, True, False, True, False]):
        feed(rig, k * 0.01, hop(k * 0.01, onset=onset))
    assert st.pop_actions() == [("anchor", -1), ("anchor", -1)]  # one press per attack, not per hop on
    assert st.value("tempo") == tempo
    feed(rig, 0.1, hop(0.1, beat=0.25, tempo=160.0))
    assert st.value("tempo") == pytest.approx(160.0, abs=0.01) and rig.value("atlas_x", 0.1) == 0.25


def test_while_a_midi_clock_runs_its_beat_and_tempo_stand_in_for_the_sound():
    rig = Rig("tempo: {source: clock, bpm: 120}\n" + MAPPING)
    t = 0.0
    rig.send(t, mido.Message("start"), mido.Message("clock"))
    for _ in range(30):  # 1.25 beats at 90 BPM
        t += 60 / 90 / 24
        rig.send(t, mido.Message("clock"))
    feed(rig, t, hop(t, beat=0.9, tempo=150.0))
    assert rig.value("atlas_x", t) == pytest.approx(0.25, abs=0.02)
    assert rig.state.tempo == pytest.approx(90.0, rel=0.02)


def test_a_mapping_without_audio_entries_does_not_listen():
    rig = Rig("controls:\n  - {cc: 1, param: noise}\n")
    assert not rig.engine.hears_audio and feed(rig, 0.0, hop(0.0, low=1.0)) is False


@pytest.mark.parametrize("entry, where, message", [
    ("{audio: bass, param: noise}", "controls[1].audio", "'bass' is not one of level, low"),
    ("{audio: low, param: noise, channel: 1}", "controls[1].channel", "audio has no channels"),
    ("{cc: 1, param: noise, attack: 0.1}", "controls[1].attack", "attack shapes an `audio:` feature"),
    ("{audio: low, param: noise, release: -1}", "controls[1].release", "release"),
    ("{note: 36, scene: recall}", "controls[1].slot", "missing: which scene"),
    ("{note: 36, scene: recall, slot: 0, param: noise}", "controls[1].param", "a scene entry takes no"),
    ("{note: 36, param: anchor, slot: 2}", "controls[1].slot", "slot is for `scene: store`"),
])
def test_mistakes_in_audio_and_scene_entries_are_one_line_errors_at_their_line(entry, where, message):
    m, errors = parse_mapping(f"version: 1\ncontrols:\n  - {entry}\n", "bad.yaml")
    assert m is None and errors
    first = str(errors[0])
    assert first.startswith(f"bad.yaml:3: {where}: ") and message in first and "\n" not in first, first


def test_audio_and_scene_entries_write_back_as_they_read():
    text = MAPPING + "  - {note: 36, scene: recall, slot: 3}\n  - {note: 37, scene: store, slot: 3}\n"
    first = mapping(text)
    again, errors = parse_mapping(dump_mapping(first), "again.yaml")
    assert not errors
    drop_lines = lambda m: [c.__class__(**{**c.__dict__, "line": 0}) for c in m.controls]  # noqa: E731
    assert drop_lines(again) == drop_lines(first)
    assert [c.source for c in first.controls[:5]] == ["audio"] * 5
    assert [AUDIO_FEATURES[c.number] for c in first.controls[:5]] == ["low", "low", "onset", "beat", "tempo"]
    assert (first.controls[5].param, first.controls[5].value) == ("scene_recall", 3)
