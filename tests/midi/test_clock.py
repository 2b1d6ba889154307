"""MidiClock: tempo robust to jitter, beat position and phase, transport."""

from __future__ import annotations

import random

import mido
import pytest

from instrument.midi.clock import MidiClock

CLOCK = mido.Message("clock")


def pulses(clock: MidiClock, start: float, count: int, bpm: float, jitter: float = 0.0, seed: int = 0):
    rng = random.Random(seed)
    interval = 60.0 / (bpm * 24)
    for n in range(count):
        clock.feed(CLOCK, start + n * interval + rng.uniform(-jitter, jitter))
    return start + (count - 1) * interval


def test_tempo_none_before_pulses_then_exact():
    clock = MidiClock()
    assert clock.tempo_bpm is None
    pulses(clock, 10.0, 30, bpm=120)
    assert clock.tempo_bpm == pytest.approx(120, abs=1e-6)


def test_tempo_robust_to_jitter_and_outliers():
    clock = MidiClock()
    last = pulses(clock, 0.0, 48, bpm=128, jitter=0.003)
    clock.feed(CLOCK, last + 0.2)  # one late pulse (a hiccup)
    assert clock.tempo_bpm == pytest.approx(128, abs=1.5)


def test_tempo_follows_a_change():
    clock = MidiClock()
    last = pulses(clock, 0.0, 48, bpm=100)
    pulses(clock, last + 60 / (140 * 24), 48, bpm=140)
    assert clock.tempo_bpm == pytest.approx(140, abs=1e-6)


def test_beat_position_phase_and_transport():
    clock = MidiClock()
    interval = 60.0 / (120 * 24)
    pulses(clock, 0.0, 24, bpm=120)  # clock while stopped: tempo, no position
    assert not clock.running and clock.beat(1.0) == 0.0
    t0 = 24 * interval  # the clock runs on evenly; start comes just before a pulse
    clock.feed(mido.Message("start"), t0 - 0.001)
    assert clock.running and clock.beat(t0) == 0.0
    for n in range(36):  # one and a half beats
        clock.feed(CLOCK, t0 + n * interval)
    last = t0 + 35 * interval
    assert clock.beat(last) == pytest.approx(35 / 24)
    assert clock.beat(last + interval / 2) == pytest.approx(35.5 / 24)
    assert clock.beat(last + 10) == pytest.approx(36 / 24)  # never past the next pulse
    clock.feed(mido.Message("stop"), last + 0.01)
    assert not clock.running and clock.beat(last + 5) == pytest.approx(36 / 24)
    clock.feed(mido.Message("songpos", pos=8), last + 0.02)  # 8 sixteenths = beat 2
    assert clock.beat(last + 5) == 2.0
    clock.feed(mido.Message("continue"), last + 0.03)
    clock.feed(CLOCK, last + 0.04)
    assert clock.beat(last + 0.04) == 2.0
    clock.feed(CLOCK, last + 0.04 + interval)
    assert clock.beat(last + 0.04 + interval) == pytest.approx(2 + 1 / 24)
