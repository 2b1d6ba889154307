"""The pure decoders: message bytes, 14-bit pairs, relative encoders, NRPN/RPN, pitch bend."""

from __future__ import annotations

import random

import mido
import pytest

from instrument.midi.messages import (
    RELATIVE_MODES,
    Cc14Decoder,
    NrpnDecoder,
    ParameterChange,
    combine_14bit,
    parse_message,
    pitchbend_unit,
    relative_delta,
    unit_14bit,
)


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def test_combine_14bit():
    assert combine_14bit(0, 0) == 0
    assert combine_14bit(127, 127) == 16383
    assert combine_14bit(64, 0) == 8192
    assert combine_14bit(1, 2) == 130
    assert unit_14bit(127, 127) == 1.0 and unit_14bit(0, 0) == 0.0


@pytest.mark.parametrize("mode,table", [
    ("twos_complement", {0: 0, 1: 1, 63: 63, 127: -1, 65: -63, 64: -64}),
    ("offset_binary", {64: 0, 65: 1, 63: -1, 127: 63, 0: -64}),
    ("sign_bit", {0: 0, 1: 1, 63: 63, 65: -1, 127: -63, 64: 0}),
])
def test_relative_delta(mode, table):
    assert {value: relative_delta(value, mode) for value in table} == table


@pytest.mark.parametrize("mode", RELATIVE_MODES)
def test_a_mapping_names_relative_modes_as_the_decoder_does(mode):
    """One vocabulary: each of the decoder's mode names is what a mapping file writes, untranslated."""
    from instrument.mapping import parse_mapping

    text = f"version: 1\ncontrols:\n  - {{cc: 20, param: noise, relative: {mode}}}\n"
    mapping, errors = parse_mapping(text, "m.yaml")
    assert not errors and mapping.controls[0].relative == mode


def test_relative_delta_rejects_unknown_mode():
    with pytest.raises(ValueError, match="twos_complement"):
        relative_delta(1, "absolute")


def test_pitchbend_unit_ends_and_centre():
    assert pitchbend_unit(-8192) == -1.0
    assert pitchbend_unit(8191) == 1.0
    assert pitchbend_unit(0) == 0.0
    assert pitchbend_unit(4096) == pytest.approx(0.5, abs=1e-3)


def test_cc14_decoder_pairs_per_channel_and_control():
    decoder = Cc14Decoder()
    assert decoder.lsb(0, 1, 5) is None  # an LSB before any MSB means nothing yet, not MSB 0
    assert decoder.msb(0, 1, 64) == 8192
    assert decoder.lsb(0, 1, 5) == 8197
    assert decoder.lsb(2, 1, 5) is None  # another channel has no MSB yet
    assert decoder.msb(2, 1, 64) == 8192
    assert decoder.lsb(2, 1, 127) == 8319
    assert decoder.msb(0, 1, 10) == 1280  # a new MSB clears the LSB
    assert decoder.lsb(0, 1, 1) == 1281
    assert decoder.lsb(0, 7, 1) is None  # another pair
    assert decoder.msb(0, 7, 127) == 16256 and decoder.lsb(0, 7, 127) == 16383


def test_nrpn_decoder_full_sequence():
    decoder = NrpnDecoder()
    assert decoder.feed(cc(99, 1)) is None
    assert decoder.feed(cc(98, 2)) is None
    assert decoder.feed(cc(38, 3)) is None  # a data LSB before the parameter's first MSB means nothing yet
    assert decoder.feed(cc(6, 100)) == ParameterChange(0, False, 130, 100 << 7)
    assert decoder.feed(cc(38, 3)) == ParameterChange(0, False, 130, (100 << 7) | 3)
    assert decoder.feed(cc(96, 0)) == ParameterChange(0, False, 130, (100 << 7) | 4)
    assert decoder.feed(cc(97, 0)) == ParameterChange(0, False, 130, (100 << 7) | 3)


def test_nrpn_decoder_rpn_null_and_channels():
    decoder = NrpnDecoder()
    assert decoder.feed(cc(6, 1)) is None  # nothing selected
    decoder.feed(cc(101, 0, channel=4))
    decoder.feed(cc(100, 0, channel=4))
    assert decoder.feed(cc(6, 2, channel=4)) == ParameterChange(4, True, 0, 256)
    assert decoder.feed(cc(6, 2, channel=5)) is None  # other channel, nothing selected there
    decoder.feed(cc(101, 127, channel=4))
    decoder.feed(cc(100, 127, channel=4))
    assert decoder.feed(cc(6, 9, channel=4)) is None  # RPN null
    decoder.feed(cc(99, 0, channel=4))  # NRPN now: a new number, LSB unknown -> 0
    assert decoder.feed(cc(6, 9, channel=4)) == ParameterChange(4, False, 0, 9 << 7)
    assert decoder.feed(cc(97, 0, channel=4)).value == (9 << 7) - 1


def mido_parse(data: list[int]) -> mido.Message | None:
    try:
        return mido.Message.from_bytes(data)
    except Exception:
        return None


def test_parse_message_matches_mido_on_random_bytes():
    """Every status byte with random data bytes (in range, out of range, short, long): the parser's message
    is mido's, and it refuses what mido refuses (and a pitch bend of the wrong length, which mido takes)."""
    rng = random.Random(3)
    parsed = 0
    for status in range(0x80, 0x100):
        for _ in range(200):
            data = [status] + [rng.choice([rng.randrange(128), rng.randrange(256)])
                               for _ in range(rng.choice([0, 1, 2, 2, 2, 3]))]
            ours, theirs = parse_message(data), mido_parse(data)
            if theirs is not None and theirs.type == "pitchwheel" and len(data) != 3:
                assert ours is None
                continue
            assert ours == theirs, data
            if ours is not None:
                assert (ours.bytes(), str(ours), ours.dict()) == (theirs.bytes(), str(theirs), theirs.dict())
                parsed += 1
    assert parsed > 5000


def test_parsed_messages_behave_as_mido_messages():
    message = parse_message([0x93, 60, 0])
    assert message == mido.Message("note_on", channel=3, note=60, velocity=0)  # velocity 0 stays note_on
    assert message.copy(velocity=5).velocity == 5
    with pytest.raises(ValueError):
        message.velocity = 200  # checked, as mido's own are
    assert parse_message([0xE5, 0, 0x40]) == mido.Message("pitchwheel", channel=5, pitch=0)
    assert parse_message([0xF8]) == mido.Message("clock")
