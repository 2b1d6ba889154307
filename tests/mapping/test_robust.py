"""Hostile and random mapping files: the loader answers every one with MappingErrors (never another
exception, never an unlocated or multi-line message), and whatever it accepts, the engine plays without
raising and without a non-finite value, whatever MIDI, keys and pointer moves arrive."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import mido
import pytest

from instrument.control import ControlState
from instrument.events import ControlEvent, KeyInput, PointerInput
from instrument.mapping import Mapping, MappingEngine, parse_mapping
from instrument.midi.clock import MidiClock

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "mappings").glob("*.yaml"))

# Every field at or near its limits: what a valid file can ask of the engine at most.
EDGES = """version: 1
tempo: {source: fixed, bpm: 300}
initial: {speed: 2, offset: -3, anchor: 127, path: walk, freeze: true, tempo: 20}
controls:
  - {cc: 1, param: speed, range: [-2, 2], smoothing: 10, curve: points, points: [[0, 1], [0.0001, 0], [1, 1]]}
  - {cc: 2, param: offset, relative: twos_complement, step: 6}
  - {cc: 3, param: path, relative: sign_bit, step: 5}
  - {cc: 4, param: anchor, relative: offset_binary}
  - {cc: 5, param: speed, mode: nudge, range: [-4, 4]}
  - {cc: 6, param: tempo, takeover: scale, range: [20, 300]}
  - {cc: 7, param: offset_channel, takeover: pickup, invert: true, curve: logarithmic}
  - {cc: 8, param: freeze, action: toggle}
  - {cc: 9, param: quit}
  - {cc: 10, param: bank, action: step, step: -127}
  - {cc: 11, param: lock_region, action: step, step: -7}
  - {cc: 12, param: lock_channels, action: set, value: 64}
  - {cc: 13, param: freeze}
  - {cc14: 14, lsb: 15, param: transition}
  - {nrpn: [127, 127], param: noise, bits: 7}
  - {nrpn: 0, param: anchor}
  - {pitchbend: true, param: path}
  - {aftertouch: true, param: sync}
  - {polytouch: true, param: walk_speed}
  - {program: true, param: lock_region}
  - {note: 0, param: anchor, action: step, step: -127}
  - {note: 127, param: speed}
notes:
  - {notes: 1-126, anchor: 1, behaviour: hold, glide: [8, 0]}
keys:
  - {key: a, param: speed, rate: -400}
  - {key: b, param: anchor, action: ramp, rate: 12700}
  - {key: c, param: path, step: -5}
  - {key: d, param: quit}
pointer:
  x: {param: path, curve: exponential}
  y: {param: anchor, button: right, invert: true}
"""

# What a mutation writes into a file: YAML syntax, hostile values, and plausible ones.
TOKENS = ["[", "]", "{", "}", ":", "-", ",", "&a", "*a", "<<", "!!set", ".nan", ".inf", "-.inf", "true",
          "null", "~", "'", '"', "\t", "\n", "  ", "1.0e+999", "99999999999999999999", "[]", "{}", "? ",
          "!!binary", "!!omap", "%YAML 1.1", "---", "...", "|", ">", "#", "\x00", "\ufeff", "é", "0x7f",
          "0o17", "1:30", "2024-01-01", "param", "cc", "noise", "anchor", "-1", "1.5", "[0, 1]",
          "[[0,0],[1,1]]", "=", "!", "0", "1", "127", "-2", "2", "0.5", "64", "walk", "[-1, 1]"]


def mutate(text: str, rng: random.Random) -> str:
    """``text`` with one to four random edits: a token inserted, a stretch cut, or a value replaced."""
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(text))
        op = rng.random()
        if op < 0.35:
            text = text[:pos] + rng.choice(TOKENS) + text[pos:]
        elif op < 0.6:
            text = text[:pos] + text[pos + rng.randint(1, 20):]
        elif (j := text.find(": ", pos)) > 0:
            ends = [x for x in (text.find(",", j), text.find("}", j), text.find("\n", j)) if x > 0]
            text = text[:j + 2] + rng.choice(TOKENS) + text[min(ends or [len(text)]):]
    return text


def play(mapping: Mapping, rng: random.Random) -> None:
    """Every kind of message (CC extremes on three channels, notes, bends, pressure, programs, clock),
    shuffled, then keys held and released and the pointer moved; the state must stay finite."""
    state = ControlState(clock=MidiClock())
    for name, value in mapping.initial:
        state.set(name, value, 0.0)
    engine = MappingEngine(mapping, state)
    engine.exact_controls()
    messages = [mido.Message("clock")] * 30 + [mido.Message("start"), mido.Message("songpos", pos=100)]
    for ch in (0, 9, 15):
        messages += [mido.Message("control_change", channel=ch, control=cc, value=v)
                     for cc in range(128) for v in (0, 64, 127, rng.randrange(128))]
        for n in (0, 36, 60, 64, 127):
            messages += [mido.Message("note_on", channel=ch, note=n, velocity=v) for v in (1, 127)]
            messages += [mido.Message("note_off", channel=ch, note=n),
                         mido.Message("polytouch", channel=ch, note=n, value=99)]
        messages += [mido.Message("pitchwheel", channel=ch, pitch=p) for p in (-8192, 0, 8191)]
        messages += [mido.Message("aftertouch", channel=ch, value=v) for v in (0, 127)]
        messages += [mido.Message("program_change", channel=ch, program=p) for p in (0, 5, 127)]
    rng.shuffle(messages)
    t = 0.0
    for i, message in enumerate(messages):
        t += 0.001
        engine.apply(ControlEvent(t, "port", message))
        if i % 200 == 0:
            state.advance(t)
    for k in mapping.keys:
        for down in (True, True, False):
            t += 0.01
            engine.apply(ControlEvent(t, "keyboard", KeyInput(k.key, down)))
    for x, y, buttons in ((0.0, 0.0, 0), (1.0, 1.0, 7), (0.5, 0.2, 1)):
        engine.apply(ControlEvent(t, "mouse", PointerInput(x, y, buttons)))
    state.advance(t + 1.0)
    for name, value in state.snapshot().items():
        if isinstance(value, float):
            assert value == value and abs(value) != float("inf"), (name, value)
    state.pop_actions()


@pytest.mark.parametrize("text", [EDGES] + [p.read_text() for p in PRESETS],
                         ids=["edges"] + [p.name for p in PRESETS])
def test_the_engine_plays_any_valid_mapping(text):
    mapping, errors = parse_mapping(text, "edges.yaml")
    assert not errors, [str(e) for e in errors]
    play(mapping, random.Random(1))


@pytest.mark.slow
def test_random_edits_give_located_errors_or_a_playable_mapping(caplog):
    """Seeded mutations of the presets: each is either refused with clean located errors, or plays."""
    rng = random.Random(7)
    sources = [p.read_text() for p in PRESETS] + [EDGES]
    played = refused = 0
    with caplog.at_level(logging.ERROR):
        for _ in range(300):
            text = mutate(rng.choice(sources), rng)
            mapping, errors = parse_mapping(text, "fuzz.yaml")
            for error in errors:
                assert error.line >= 1 and "\n" not in str(error) and "could not be read" not in str(error), \
                    (str(error), text)
            if mapping is None:
                refused += 1
            elif rng.random() < 0.3:  # playing every one takes long; a sample tells
                play(mapping, rng)
                played += 1
    assert refused > 100 and played > 3
    assert not caplog.records  # the loader's last resort logs; it must never be needed
