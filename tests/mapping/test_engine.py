"""Each kind of message sets the right parameter to the right value through the mapping engine."""

from __future__ import annotations

import math

import mido
import pytest

from instrument.control import ControlState
from instrument.events import ControlEvent, EventQueue, KeyInput, PointerInput
from instrument.mapping import DEFAULT_MAPPING, MappingEngine, load_mapping
from instrument.mapping.engine import feedback_lights
from instrument.midi.messages import Light

from .helpers import Rig, cc, mapping, note_off, note_on

EXP = math.expm1(4 * 64 / 127) / math.expm1(4)


def test_cc_range_and_curves():
    rig = Rig("""
        controls:
          - {cc: 74, param: noise, range: [0.2, 0.6], smoothing: 0}
          - {cc: 75, param: offset, curve: exponential, smoothing: 0}
          - {cc: 76, param: walk_speed, curve: logarithmic, smoothing: 0}
          - {cc: 77, param: atlas_x, curve: points, points: [[0, 0], [0.5, 0.9], [1, 1]], smoothing: 0}
          - {cc: 78, param: atlas_y, invert: true, smoothing: 0}
    """)
    rig.send(0.0, cc(74, 127))
    assert rig.value("noise") == pytest.approx(0.6)
    rig.send(0.0, cc(74, 0))
    assert rig.value("noise") == pytest.approx(0.2)
    rig.send(0.0, cc(74, 64))
    assert rig.value("noise") == pytest.approx(0.2 + 0.4 * 64 / 127)
    rig.send(0.0, cc(75, 64), cc(76, 64), cc(77, 127 // 2), cc(78, 127))
    assert rig.value("offset") == pytest.approx(-3 + 6 * EXP)
    assert rig.value("walk_speed") == pytest.approx(4 * math.log1p(math.expm1(4) * 64 / 127) / 4)
    assert rig.value("atlas_x") == pytest.approx(0.9 * (63 / 127) / 0.5)
    assert rig.value("atlas_y") == pytest.approx(0.0)


def test_channel_and_port_filters():
    rig = Rig("""
        ports: [nanoKONTROL]
        controls:
          - {cc: 1, channel: 2, param: noise, smoothing: 0}
    """, source="nanoKONTROL2 MIDI 1")
    assert rig.send(0.0, cc(1, 127, channel=0)) == [False]
    assert rig.value("noise") == 0.0
    assert rig.send(0.0, cc(1, 127, channel=1)) == [True]
    assert rig.value("noise") == 1.0
    rig.source = "Other synth"
    assert rig.send(0.0, cc(1, 0, channel=1)) == [False]
    assert rig.value("noise") == 1.0


def test_smoothing_is_exact_and_frame_rate_independent():
    text = "controls:\n  - {cc: 1, param: position, smoothing: 0.5}\n"
    values = []
    for frames in (10, 97):
        rig = Rig(text)
        rig.state.advance(0.0)
        rig.send(0.1, cc(1, 127))
        for i in range(frames + 1):
            rig.state.advance(0.1 + 0.5 * i / frames)
        values.append(rig.value("position"))
    assert values[0] == pytest.approx(1 - math.exp(-1), abs=1e-12)
    assert values[1] == pytest.approx(values[0], abs=1e-12)
    assert rig.state.target("position") == 1.0


def test_14bit_pair():
    rig = Rig("controls:\n  - {cc14: 1, param: atlas_x, smoothing: 0}\n")
    assert set(rig.engine.exact_controls()) == {(None, 1), (None, 33)}
    rig.send(0.0, cc(1, 100))
    assert rig.value("atlas_x") == pytest.approx(100 * 128 / 16383)
    rig.send(0.0, cc(33, 50))
    assert rig.value("atlas_x") == pytest.approx((100 * 128 + 50) / 16383)
    rig.send(0.0, cc(1, 127), cc(33, 127))
    assert rig.value("atlas_x") == 1.0


def test_a_lone_14bit_lsb_before_any_msb_moves_nothing():
    rig = Rig("controls:\n  - {cc14: 1, param: atlas_x, smoothing: 0}\n")
    assert rig.send(0.0, cc(33, 100)) == [True]  # the mapping's control, but no MSB yet: it waits
    assert rig.value("atlas_x") == 0.5  # not ~0
    rig.send(0.0, cc(33, 100, channel=3), cc(1, 64, channel=3))  # an MSB on another channel is another pair
    assert rig.value("atlas_x") == pytest.approx(64 * 128 / 16383)
    rig.send(0.0, cc(33, 100))
    assert rig.value("atlas_x") == pytest.approx(64 * 128 / 16383)  # channel 1 still has no MSB
    rig.source = "another port"
    rig.send(0.0, cc(33, 1))
    assert rig.value("atlas_x") == pytest.approx(64 * 128 / 16383)  # nor has another port


def test_nrpn_data_lsb_before_any_msb_moves_nothing():
    rig = Rig("controls:\n  - {nrpn: 130, param: atlas_x, smoothing: 0}\n")
    rig.send(0.0, cc(99, 1), cc(98, 2), cc(38, 10))
    assert rig.value("atlas_x") == 0.5
    rig.send(0.0, cc(6, 127), cc(38, 127))
    assert rig.value("atlas_x") == 1.0


def test_buttons_and_pickup_faders_are_exact_and_knobs_are_not():
    rig = Rig("""
        controls:
          - {cc: 20, param: record, action: toggle}
          - {cc: 21, channel: 2, param: anchor, action: set, value: 3}
          - {cc: 22, param: path, action: step}
          - {cc: 23, param: freeze, action: hold}
          - {cc: 24, param: quit}
          - {cc: 25, param: noise, takeover: pickup}
          - {cc: 26, param: offset}
          - {cc: 27, param: walk_speed, takeover: scale}
          - {note: 36, param: atlas}
    """)
    assert rig.engine.exact_controls() == {(None, 20), (1, 21), (None, 22), (None, 23), (None, 24),
                                           (None, 25)}


@pytest.mark.parametrize("mode, up, down", [
    ("twos_complement", 1, 127), ("offset_binary", 65, 63), ("sign_bit", 1, 65), ("binary_offset", 65, 63),
])
def test_relative_encodings(mode, up, down):
    rig = Rig(f"controls:\n  - {{cc: 16, relative: {mode}, param: noise, step: 0.1, smoothing: 0}}\n"
              "  - {cc: 17, relative: twos_complement, param: offset_channel}\n")
    assert (None, 16) in rig.engine.exact_controls()
    rig.send(0.0, cc(16, up), cc(16, up), cc(16, up), cc(16, down))
    assert rig.value("noise") == pytest.approx(0.2)
    rig.send(0.0, *[cc(16, down)] * 5)
    assert rig.value("noise") == 0.0  # clamped at the bottom of the range
    rig.send(0.0, cc(17, 3), cc(17, 127))
    assert rig.value("offset_channel") == 2  # integers step by one per tick


def test_nrpn_14_and_7_bit():
    rig = Rig("""
        controls:
          - {nrpn: 130, param: atlas_x, smoothing: 0}
          - {nrpn: [2, 0], bits: 7, param: atlas_y, smoothing: 0}
    """)
    rig.send(0.0, cc(99, 1), cc(98, 2), cc(6, 64), cc(38, 10))
    assert rig.value("atlas_x") == pytest.approx((64 * 128 + 10) / 16383)
    rig.send(0.0, cc(99, 2), cc(98, 0), cc(6, 127))
    assert rig.value("atlas_y") == 1.0
    assert rig.value("atlas_x") == pytest.approx((64 * 128 + 10) / 16383)  # the other NRPN is untouched


def test_notes_jump_glide_and_velocity_zero_off():
    rig = Rig("""
        notes:
          - {notes: 60-71, anchor: 4, behaviour: glide, glide: [2.0, 0.1]}
          - {notes: C3-B3, behaviour: jump}
    """)
    rig.send(0.0, note_on(62, 127))
    assert rig.value("anchor") == 6 and rig.value("velocity") == 1.0
    assert rig.value("transition") == pytest.approx(0.1)
    rig.send(0.0, note_on(60, 1))
    assert rig.value("anchor") == 4 and rig.value("transition") == pytest.approx(2.0)
    rig.send(0.0, note_on(60, 0))  # velocity 0 is a note off: glide notes stay where they went
    assert rig.value("anchor") == 4
    rig.send(0.0, note_on(50, 64))  # D3 -> anchor 2, cut
    assert rig.value("anchor") == 2 and rig.value("transition") == 0.0
    assert rig.value("velocity") == pytest.approx(64 / 127)
    assert rig.state.pop_actions() == [("anchor", 6), ("anchor", 4), ("anchor", 2)]
    rig.send(0.0, note_on(50, 64))
    assert rig.state.pop_actions() == [("anchor", 2)]  # striking the same note again is an action too
    assert rig.send(0.0, note_on(90)) == [False]


def test_notes_hold_returns_when_released():
    rig = Rig("notes:\n  - {notes: 36-47, anchor: 10, behaviour: hold}\n")
    rig.state.set("anchor", 3, 0.0)
    rig.send(0.0, note_on(37))
    assert rig.value("anchor") == 11
    rig.send(0.1, note_on(40))
    assert rig.value("anchor") == 14
    rig.send(0.2, note_on(40, 0))  # back to the note still held
    assert rig.value("anchor") == 11
    rig.send(0.3, note_off(37))  # back home
    assert rig.value("anchor") == 3


def test_pitchbend_absolute_and_nudge():
    rig = Rig("""
        controls:
          - {cc: 1, param: position, smoothing: 0}
          - {pitchbend: true, channel: 1, param: position, mode: nudge, range: [-0.2, 0.2], smoothing: 0}
          - {pitchbend: true, channel: 2, param: offset, smoothing: 0}
    """)
    rig.send(0.0, cc(1, 64))
    base = 64 / 127
    rig.send(0.0, mido.Message("pitchwheel", pitch=8191))
    assert rig.value("position", at=0.0) == pytest.approx(base + 0.2)
    rig.send(0.0, mido.Message("pitchwheel", pitch=-8192))
    assert rig.value("position", at=0.0) == pytest.approx(base - 0.2)
    rig.send(0.0, mido.Message("pitchwheel", pitch=0))
    assert rig.value("position", at=0.1) == pytest.approx(base)
    rig.send(0.1, mido.Message("pitchwheel", pitch=0, channel=1))
    assert rig.value("offset") == pytest.approx(0.0)
    rig.send(0.1, mido.Message("pitchwheel", pitch=8191, channel=1))
    assert rig.value("offset") == pytest.approx(3.0)


def test_aftertouch_channel_and_poly():
    rig = Rig("""
        controls:
          - {aftertouch: true, param: noise, smoothing: 0}
          - {polytouch: 60, channel: 1, param: atlas_x, smoothing: 0}
          - {polytouch: true, channel: 2, param: atlas_y, smoothing: 0}
    """)
    rig.send(0.0, mido.Message("aftertouch", value=127))
    assert rig.value("noise") == 1.0
    rig.send(0.0, mido.Message("polytouch", note=60, value=0), mido.Message("polytouch", note=61, value=127))
    assert rig.value("atlas_x") == 0.0 and rig.value("atlas_y") == 0.5
    rig.send(0.0, mido.Message("polytouch", note=10, value=127, channel=1))
    assert rig.value("atlas_y") == 1.0


def test_sustain_freeze_program_bank_and_buttons():
    rig = Rig("""
        controls:
          - {cc: 64, param: freeze, action: hold}
          - {program: true, param: bank}
          - {note: 36, param: record}
          - {cc: 20, param: path, action: step}
          - {cc: 21, param: quit}
          - {cc: 22, param: anchor, action: set, value: 7}
    """)
    rig.send(0.0, cc(64, 127))
    assert rig.value("freeze") is True
    rig.send(0.0, cc(64, 100))
    assert rig.value("freeze") is True
    rig.send(0.0, cc(64, 0))
    assert rig.value("freeze") is False
    rig.send(0.0, mido.Message("program_change", program=5))
    assert rig.value("bank") == 5
    rig.send(0.0, note_on(36), note_off(36), note_on(36, 90), note_on(36, 0), note_on(36, 10))
    assert rig.value("record") is True and rig.state.value("record") is True
    rig.send(0.0, cc(20, 127), cc(20, 0), cc(20, 127))
    assert rig.value("path") == "loop"
    rig.send(0.0, cc(21, 127), cc(22, 127))
    actions = rig.state.pop_actions()
    assert actions == [("freeze", True), ("freeze", False), ("bank", 5), ("record", True), ("record", False),
                       ("record", True), ("path", "lerp"), ("path", "loop"), ("quit", None), ("anchor", 7)]


def test_clock_tempo_and_fixed_bpm():
    rig = Rig("tempo: clock\n")
    assert rig.state.tempo == 120.0  # the tempo param until a clock runs
    pulse = 60 / (100 * 24)
    rig.send(0.0, mido.Message("start"))
    rig.send(0.0, *[])
    for i in range(49):
        rig.send(i * pulse, mido.Message("clock"))
    assert rig.state.tempo == pytest.approx(100.0)
    assert rig.state.beat(48 * pulse) == pytest.approx(2.0)
    fixed = Rig("tempo: 90\n")
    for i in range(49):
        fixed.send(i * pulse, mido.Message("start") if i == 0 else mido.Message("clock"))
    assert fixed.state.tempo == 90.0
    fixed.state.advance(0.0)
    fixed.state.advance(2.0)
    assert fixed.state.beat(2.0) == pytest.approx(3.0)


def test_pickup_ignores_knob_until_it_crosses():
    rig = Rig("controls:\n  - {cc: 1, param: noise, takeover: pickup, smoothing: 0}\n")
    rig.state.set("noise", 0.5, 0.0)
    rig.send(0.0, cc(1, 10), cc(1, 30), cc(1, 50))
    assert rig.value("noise") == 0.5
    rig.send(0.0, cc(1, 70))  # swept across 0.5: picked up
    assert rig.value("noise") == pytest.approx(70 / 127)
    rig.send(0.0, cc(1, 20))
    assert rig.value("noise") == pytest.approx(20 / 127)
    rig.state.set("noise", 0.9, 0.0, source="elsewhere")  # someone else moved it: pick up again
    rig.send(0.0, cc(1, 30))
    assert rig.value("noise") == 0.9


def test_pickup_takes_hold_when_two_values_pass_the_parameter_or_come_near_it():
    rig = Rig("controls:\n  - {cc: 1, param: noise, takeover: pickup, smoothing: 0}\n")
    rig.state.set("noise", 0.5, 0.0)
    rig.send(0.0, cc(1, 40), cc(1, 90))  # a fast move jumps over 0.5 between two values
    assert rig.value("noise") == pytest.approx(90 / 127)
    rig.state.set("noise", 0.0, 0.0, source="elsewhere")
    rig.send(0.0, cc(1, 6), cc(1, 9), cc(1, 3))  # from above, never reaching 0: not yet
    assert rig.value("noise") == 0.0
    rig.send(0.0, cc(1, 2))  # within two steps of it: taken
    assert rig.value("noise") == pytest.approx(2 / 127)


def test_pickup_meets_a_value_beyond_its_range_at_the_nearest_end():
    rig = Rig("controls:\n  - {cc: 1, param: noise, range: [0.2, 0.6], takeover: pickup, smoothing: 0}\n")
    assert rig.state.target("noise") == 0.0  # below the knob's range
    rig.send(0.0, cc(1, 60))
    assert rig.value("noise") == 0.0
    rig.send(0.0, cc(1, 0))
    assert rig.value("noise") == pytest.approx(0.2)


def test_pickup_through_the_queue_while_the_render_thread_is_busy():
    """A fader swept from the bottom while no drain runs: its values are kept (pickup is exact), so the
    sweep passes the parameter's value and pickup takes hold; coalesced, only the last value would arrive."""
    rig = Rig("controls:\n  - {cc: 7, param: noise, takeover: pickup, smoothing: 0}\n")
    queue = EventQueue()
    queue.set_exact_controls(rig.engine.exact_controls())
    for value in range(0, 124):
        queue.put(ControlEvent(0.0, rig.source, cc(7, value)))
    for event in queue.drain():
        rig.engine.apply(event)
    assert rig.value("noise") == pytest.approx(123 / 127)


def test_value_scaling_converges():
    rig = Rig("controls:\n  - {cc: 1, param: noise, takeover: scale, smoothing: 0}\n")
    rig.state.set("noise", 0.8, 0.0)
    rig.send(0.0, cc(1, 20))
    assert rig.value("noise") == 0.8  # first message only tells where the knob is
    seen = []
    for v in range(21, 128):
        rig.send(0.0, cc(1, v))
        seen.append(rig.value("noise"))
    assert all(b >= a for a, b in zip(seen, seen[1:], strict=False))
    assert 0.8 < seen[10] < 10 / 127 + 0.8  # moved part of the way, never jumped
    assert seen[-1] == pytest.approx(1.0)
    rig.send(0.0, cc(1, 64))
    assert rig.value("noise") == pytest.approx(64 / 127)  # converged: now it follows the knob


def test_keys_and_pointer():
    rig = Rig("""
        keys:
          - {key: "1", param: anchor, value: 0}
          - {key: "2", param: anchor, value: 1}
          - {key: right, param: position, rate: 0.5}
          - {key: space, param: freeze}
          - {key: p, param: path}
        pointer:
          x: {param: atlas_x, smoothing: 0}
          y: {param: noise, invert: true, button: left, smoothing: 0}
    """)
    key = lambda t, k, down=True: rig.engine.apply(ControlEvent(t, "keyboard", KeyInput(k, down)))  # noqa: E731
    key(0.0, "2")
    assert rig.value("anchor") == 1
    key(0.0, "space")
    key(0.0, "space")  # key repeat: a toggle flips once per press
    assert rig.value("freeze") is True
    key(0.0, "space", False)
    key(0.0, "p")
    assert rig.value("path") == "lerp"
    rig.state.advance(0.0)
    key(0.0, "right")
    rig.state.advance(0.5)
    assert rig.value("position") == pytest.approx(0.25, abs=0.01)
    key(1.0, "right", False)
    rig.state.advance(2.0)
    assert rig.state.target("position") == pytest.approx(0.5)
    rig.engine.apply(ControlEvent(2.0, "pointer", PointerInput(0.25, 0.2, 0)))
    assert rig.value("atlas_x") == 0.25 and rig.value("noise") == 0.0  # y only with the left button
    rig.engine.apply(ControlEvent(2.0, "pointer", PointerInput(0.25, 0.2, 1)))
    assert rig.value("noise") == pytest.approx(0.8)


def test_mapping_swap_keeps_state():
    state = ControlState()
    engine = MappingEngine(mapping("controls:\n  - {cc: 1, param: noise, smoothing: 0}\n"), state)
    engine.apply(ControlEvent(0.0, "p", cc(1, 127)))
    engine.mapping = mapping("controls:\n  - {cc: 1, param: offset, smoothing: 0}\n")
    assert state.value("noise") == 1.0
    engine.apply(ControlEvent(0.0, "p", cc(1, 127)))
    assert state.value("offset") == 3.0 and state.value("noise") == 1.0


def test_snapshot_has_every_param():
    from instrument.params import PARAMS

    snap = ControlState().snapshot()
    assert set(PARAMS) <= set(snap) and snap["tempo"] == 120.0


def test_replay_is_deterministic():
    """The same events before the same frames give the same values: takes re-render from their log."""
    import random

    rng = random.Random(7)
    default = load_mapping(DEFAULT_MAPPING)
    events = []
    t = 0.0
    for _ in range(400):
        t += rng.random() * 0.01
        kind = rng.choice(["cc", "note", "bend", "pedal"])
        msg = {"cc": lambda: cc(rng.choice([1, 70, 71, 72, 75]), rng.randrange(128)),
               "note": lambda: note_on(rng.randrange(36, 90), rng.randrange(128)),
               "bend": lambda: mido.Message("pitchwheel", pitch=rng.randrange(-8192, 8192)),
               "pedal": lambda: cc(64, rng.choice([0, 127]))}[kind]()
        events.append(ControlEvent(t, "port", msg))
    frames = [i / 60 for i in range(int(t * 60) + 2)]

    def play():
        state = ControlState()
        engine = MappingEngine(default, state)
        queue = list(events)
        out = []
        for now in frames:
            while queue and queue[0].time <= now:
                engine.apply(queue.pop(0))
            state.advance(now)
            out.append((state.snapshot(), state.pop_actions(), state.beat(now)))
        return out

    assert play() == play()


def test_beat_goes_on_when_the_clock_stops():
    rig = Rig("tempo: {source: clock, bpm: 60}\n")
    pulse = 60 / (120 * 24)
    rig.send(0.0, mido.Message("start"))
    for i in range(97):  # four beats at 120 BPM
        rig.send(i * pulse, mido.Message("clock"))
        rig.state.advance(i * pulse)
    assert rig.state.beat(96 * pulse) == pytest.approx(4.0)
    rig.send(2.0, mido.Message("stop"))
    rig.state.advance(2.0)
    assert rig.state.tempo == 60.0  # the mapping's bpm once the clock stops
    rig.state.advance(3.0)
    assert rig.state.beat(3.0) == pytest.approx(5.0, abs=0.05)  # counted on from the clock's last beat


def random_message(rng, keys: list[str]):
    """Any kind of control message with random numbers: MIDI on any channel, a key or the pointer."""
    ch, n, v = rng.randrange(16), rng.randrange(128), rng.randrange(128)
    kind = rng.randrange(10)
    if kind == 0:
        return cc(n, v, ch)
    if kind == 1:
        return note_on(n, v, ch)
    if kind == 2:
        return note_off(n, ch)
    if kind == 3:
        return mido.Message("pitchwheel", channel=ch, pitch=rng.randrange(-8192, 8192))
    if kind == 4:
        return mido.Message("aftertouch", channel=ch, value=v)
    if kind == 5:
        return mido.Message("polytouch", channel=ch, note=n, value=v)
    if kind == 6:
        return mido.Message("program_change", channel=ch, program=v)
    if kind == 7:
        return mido.Message(rng.choice(["clock", "start", "stop", "continue"]))
    if kind == 8:
        return KeyInput(rng.choice(keys), rng.random() < 0.5)
    return PointerInput(rng.random(), rng.random(), rng.randrange(8))


@pytest.mark.parametrize("preset", sorted(DEFAULT_MAPPING.parent.glob("*.yaml")), ids=lambda p: p.name)
def test_presets_survive_every_kind_of_message(preset):
    """Random messages of every kind, keys and pointer through each preset: values stay in their ranges."""
    import random

    from instrument.params import PARAMS

    rng = random.Random(preset.name)
    state = ControlState()
    engine = MappingEngine(load_mapping(preset), state)
    keys = [k.key for k in engine.mapping.keys] + ["x"]
    port = f"{engine.mapping.ports[0]} MIDI 1" if engine.mapping.ports else "any port"
    sources = {KeyInput: "keyboard", PointerInput: "pointer"}
    used = 0
    for i in range(3000):
        t = i * 0.003
        msg = random_message(rng, keys)
        used += engine.apply(ControlEvent(t, sources.get(type(msg), port), msg))
        state.advance(t)
    assert used > 100
    for name, p in PARAMS.items():
        v = state.value(name)
        if p.kind in ("continuous", "integer"):
            assert p.low <= v <= p.high, (name, v)
        elif p.kind == "choice":
            assert v in p.choices


def test_feedback_lights_show_where_each_knob_would_be():
    """Every CC value sent to a knob comes back as the same value in its light, through any curve, range,
    inversion or choice: a motor fader or LED ring shows the knob's own position."""
    rig = Rig("""
        controls:
          - {cc: 1, param: noise, range: [0.2, 0.6], smoothing: 0}
          - {cc: 2, param: offset, curve: exponential, smoothing: 0}
          - {cc: 3, param: walk_speed, curve: logarithmic, invert: true, smoothing: 0}
          - {cc: 4, param: atlas_x, curve: points, points: [[0, 0], [0.5, 0.9], [1, 1]], smoothing: 0}
          - {cc: 5, param: path}
    """)
    controls = rig.engine.mapping.controls
    for value in range(128):
        rig.send(0.0, *[cc(n, value) for n in range(1, 5)])
        assert [light.value for light in feedback_lights(controls[:4], rig.state)] == [value] * 4
    for value in (0, 40, 127):
        rig.send(0.0, cc(5, value))
        chosen = rig.state.value("path")
        (light,) = feedback_lights(controls[4:], rig.state)
        rig.send(0.0, cc(5, 127 - value), cc(5, light.value))  # the light's position picks the same choice
        assert rig.state.value("path") == chosen


def test_feedback_lights_for_buttons_and_pads():
    rig = Rig("""
        controls:
          - {cc: 20, channel: 3, param: record, action: toggle}
          - {note: 36, param: anchor, action: set, value: 0}
          - {note: 37, param: anchor, action: set, value: 1}
          - {cc: 21, param: path, action: step}
          - {cc14: 1, param: atlas_y}
    """)
    controls = rig.engine.mapping.controls
    assert feedback_lights(controls, rig.state) == [Light(2, "cc", 20, 0), Light(0, "note", 36, 127),
                                                   Light(0, "note", 37, 0)]
    rig.send(0.0, cc(20, 127, channel=2), note_on(37))
    assert feedback_lights(controls, rig.state) == [Light(2, "cc", 20, 127), Light(0, "note", 36, 0),
                                                   Light(0, "note", 37, 127)]
