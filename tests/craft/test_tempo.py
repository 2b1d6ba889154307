"""Tap tempo from scripted taps, beat-quantised anchor changes and ``next``."""

from __future__ import annotations

import mido
import pytest
from mapping.helpers import Rig, note_off, note_on

from instrument.control import NEXT
from instrument.cues import tap_tempo
from instrument.events import ControlEvent, KeyInput
from instrument.params import PARAMS
from instrument.performance import Performance

MAPPING = """
tempo: {source: clock, bpm: 100}
controls:
  - {note: 40, param: tap}
  - {note: 41, param: next}
  - {note: 42, param: quantise, action: set, value: beat}
  - {note: 43, param: quantise, action: set, value: bar}
notes:
  - {notes: 60-67, anchor: 0, behaviour: jump}
keys:
  - {key: t, param: tap}
"""


def tap(rig: Rig, t: float) -> None:
    rig.send(t, note_on(40), note_off(40))


def test_four_taps_set_the_tempo_and_the_last_is_a_beat():
    rig = Rig(MAPPING)
    st = rig.state
    st.advance(0.0)
    for t in (10.0, 10.5, 11.0):
        tap(rig, t)
    assert st.tempo == 100.0  # three taps say nothing yet
    tap(rig, 11.5)
    assert st.tempo == pytest.approx(120.0)
    assert st.beat(11.5) == pytest.approx(round(st.beat(11.5)))  # the fourth tap landed on a beat
    assert st.beat(12.0) - st.beat(11.5) == pytest.approx(1.0)
    tap(rig, 12.1)  # a fifth, a little quicker: the median interval keeps the tempo steady
    assert st.tempo == pytest.approx(120.0)


def test_taps_from_keys_count_at_their_own_times_not_the_frames():
    rig = Rig(MAPPING)
    st = rig.state
    frame = 0.0
    taps = [1.013, 1.391, 1.769, 2.147]  # 0.378 s apart, seen at 30 fps frames
    for t in taps:
        rig.engine.apply(ControlEvent(t, "keyboard", KeyInput("t", True)))
        rig.engine.apply(ControlEvent(t + 0.05, "keyboard", KeyInput("t", False)))
        while frame < t + 0.05:
            frame += 1 / 30
            st.advance(frame)
    assert st.tempo == pytest.approx(60 / 0.378)


def test_a_pause_starts_a_new_count_and_a_running_clock_wins():
    taps: list[float] = []
    assert [tap_tempo(taps, t) for t in (0.0, 0.6, 1.2, 1.8)][-1] == pytest.approx(100.0)
    assert tap_tempo(taps, 5.0) is None and taps == [5.0]  # 3.2 s later: counting again
    assert [tap_tempo(taps, t) for t in (5.4, 5.8, 6.2)][-1] == pytest.approx(150.0)
    assert tap_tempo(taps, 6.2) is None and taps == [6.2]  # two at once (a bounce) start again too

    rig = Rig(MAPPING)
    rig.send(0.0, mido.Message("start"))
    for k in range(48):  # the clock at 140 BPM
        rig.send(k * 60 / 140 / 24, mido.Message("clock"))
    for t in (1.0, 1.5, 2.0, 2.5):
        tap(rig, t)
    assert rig.state.tempo == pytest.approx(140.0)
    assert rig.state.value("tempo") == 100.0


@pytest.mark.parametrize("quantise, pressed_at_beat, lands_on", [
    ("beat", 2.3, 3.0), ("bar", 2.3, 4.0), ("beat", 3.05, 3.0), ("bar", 8.2, 12.0)])
def test_a_quantised_anchor_change_lands_on_the_next_beat_or_bar(quantise, pressed_at_beat, lands_on):
    rig = Rig(MAPPING)  # 100 BPM: 0.6 s a beat
    st = rig.state
    st.advance(0.0)
    rig.send(0.0, note_on(42 if quantise == "beat" else 43))
    st.pop_actions()
    pressed = pressed_at_beat * 0.6
    rig.send(pressed, note_on(63))
    frames = [k / 50 for k in range(1, 501) if k / 50 >= pressed]
    landed = None
    for t in frames:
        st.advance(t)
        if ("anchor", 3) in st.pop_actions():
            landed = t
            break
    assert landed is not None and landed == pytest.approx(max(lands_on * 0.6, frames[0]), abs=1 / 50 + 1e-9)
    assert st.beat(landed) >= lands_on - 1e-9 or lands_on < pressed_at_beat


def test_next_goes_round_the_anchors_and_waits_for_the_beat_when_quantised():
    rig = Rig(MAPPING)
    st = rig.state
    st.advance(0.0)
    performance = Performance(n_anchors=3)

    def frame(t: float) -> int:
        st.advance(t)
        picks = [v for name, v in st.pop_actions() if name == "anchor"]
        values = st.snapshot() | {"beat": st.beat(t)}
        return performance.step(values, t, picks[-1] if picks else None).home

    assert frame(0.0) == 0
    homes = []
    for k in range(4):
        rig.send(0.1 + k, note_on(41), note_off(41))
        homes.append(frame(0.1 + k))
    assert homes == [1, 2, 0, 1]
    rig.send(5.0, note_on(42))  # quantise: beat (beat 8.33 at 5.0 s)
    rig.send(5.0, note_on(41))
    assert frame(5.05) == 1 and frame(5.39) == 1 and frame(5.4) == 2  # beat 9 is at 5.4 s
    assert NEXT < 0 and PARAMS["next"].kind == "trigger"
