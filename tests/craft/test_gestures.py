"""Gesture loops against the MIDI clock: a knob gesture recorded over N beats plays back on the same beats,
follows the clock when its tempo changes, overdubs only what the knob moved through, and clears."""

from __future__ import annotations

import mido
import pytest
from mapping.helpers import Rig, cc, note_off, note_on

from instrument.gestures import Loop

MAPPING = """
controls:
  - {cc: 1, param: noise, smoothing: 0}
  - {cc: 2, param: offset, smoothing: 0}
  - {note: 36, param: gesture_record, action: hold}
  - {note: 37, param: gesture_clear}
  - {cc: 3, param: gesture_beats, range: [1, 16]}
"""


class Clocked:
    """A rig driven by a MIDI clock: ``run_to(beat)`` sends the pulses up to ``beat`` at the tempo set, with
    a knob move or button at chosen pulses, and advances the state at every pulse."""

    def __init__(self, bpm: float = 120.0) -> None:
        self.rig = Rig(MAPPING)
        self.bpm = bpm
        self.t = 0.0
        self.pulse = 0
        self.rig.send(0.0, mido.Message("start"))
        self.rig.send(0.0, mido.Message("clock"))  # pulse 0 is beat 0

    def run_to(self, beat: float, each=None) -> dict[int, float]:
        """Pulses up to ``beat``; ``each(pulse)`` may return messages to send then. Returns noise by pulse."""
        seen = {}
        while self.pulse < round(beat * 24):
            self.t += 60.0 / self.bpm / 24
            self.pulse += 1
            messages = list(each(self.pulse) or ()) if each else []
            self.rig.send(self.t, mido.Message("clock"), *messages)
            seen[self.pulse] = self.rig.value("noise", self.t)
        return seen


def test_a_recorded_gesture_loops_on_the_clock_and_follows_its_tempo():
    c = Clocked(120.0)
    st = c.rig.state
    c.rig.send(0.0, cc(3, 0))  # loops of 1 beat ... then 4:
    c.rig.send(0.0, cc(3, round(3 / 15 * 127)))
    assert st.value("gesture_beats") == 4
    c.run_to(1.0)
    c.rig.send(c.t, note_on(36))  # record from beat 1 to beat 5: a rising ramp, one CC step a pulse
    c.run_to(5.0, lambda p: [cc(1, (p - 24) % 96 + 10)])
    c.rig.send(c.t, note_off(36))
    assert set(st.gestures.loops) == {"noise"} and len(st.gestures.loops["noise"].points) == 96
    played = c.run_to(13.0)
    for p in range(5 * 24 + 1, 13 * 24):
        assert played[p] == pytest.approx(((p - 24) % 96 + 10) / 127), p
    c.bpm = 80.0  # the clock slows: the loop stays on its beats
    played = c.run_to(17.0)
    assert st.tempo == pytest.approx(80.0, rel=0.02)
    for p in range(13 * 24 + 1, 17 * 24):
        assert played[p] == pytest.approx(((p - 24) % 96 + 10) / 127), p


def test_overdub_replaces_only_what_the_knob_moved_through_and_other_loops_play_on():
    c = Clocked(120.0)
    st = c.rig.state
    c.rig.send(0.0, note_on(36), cc(1, 20), cc(2, 0))
    c.run_to(4.0, lambda p: [cc(1, 20 + p // 24), cc(2, p % 96)])  # noise steps per beat, offset ramps
    c.rig.send(c.t, note_off(36))
    before = dict(st.gestures.loops["offset"].points)
    c.run_to(9.0)
    c.rig.send(c.t, note_on(36))  # overdub noise over beats 9.5-10.5 (loop places 1.5-2.5) only
    c.run_to(9.5)
    c.run_to(10.5, lambda p: [cc(1, 127)])
    c.rig.send(c.t, note_off(36))
    assert dict(st.gestures.loops["offset"].points) == before  # not touched: as it was, and playing
    played = c.run_to(16.0)
    for beat in (12, 13, 15):  # loop places 0, 1, 3: as first recorded (20 + beat's number)
        assert played[beat * 24 + 6] == pytest.approx((20 + beat % 4) / 127), beat
    assert played[13 * 24 + 18] == pytest.approx(1.0) and played[14 * 24 + 6] == pytest.approx(1.0)
    assert c.rig.value("offset", c.t) != 0


def test_while_recording_the_hand_wins_and_clear_forgets_every_loop():
    c = Clocked(120.0)
    st = c.rig.state
    c.rig.send(0.0, note_on(36))
    c.run_to(4.0, lambda p: [cc(1, p % 96)])
    c.rig.send(c.t, note_off(36))
    c.run_to(5.0)
    c.rig.send(c.t, note_on(36), cc(1, 127))  # recording again: noise stays where the hand put it
    assert c.run_to(6.0)[6 * 24] == 1.0
    c.rig.send(c.t, note_off(36))
    c.rig.send(c.t, note_on(37), note_off(37))  # clear
    assert not st.gestures.loops
    c.rig.send(c.t, cc(1, 50))
    assert set(c.run_to(8.0).values()) == {50 / 127}


def test_a_loop_interpolates_round_its_end_and_holds_across_a_still_knob():
    loop = Loop(4, [(1.0, 0.0), (3.0, 1.0)])
    assert loop.at(2.0) == 0.5 and loop.at(6.0) == 0.5  # (beat 6 is place 2)
    assert loop.at(0.0) == pytest.approx(0.5) and loop.at(3.5) == pytest.approx(0.75)  # round the end
    from instrument.gestures import GestureLoops

    loops = GestureLoops()
    loops.capture("noise", 0.2, 0.0, 4)
    loops.capture("noise", 0.8, 1.0, 4)  # still for a beat, then moved: a step, not a slope
    loops.end_pass()
    assert loops.values(0.5)["noise"] == pytest.approx(0.2) and loops.values(1.0)["noise"] == 0.8
