"""The pure decoders: 14-bit pairs, relative encoders, NRPN/RPN, pitch bend."""

from __future__ import annotations

import mido
import pytest

from instrument.midi.messages import (
    Cc14Decoder,
    NrpnDecoder,
    ParameterChange,
    combine_14bit,
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
    ("binary_offset", {64: 0, 65: 1, 63: -1, 127: 63, 0: -64}),
    ("signed_bit", {0: 0, 1: 1, 63: 63, 65: -1, 127: -63, 64: 0}),
])
def test_relative_delta(mode, table):
    assert {value: relative_delta(value, mode) for value in table} == table


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
    assert decoder.feed(cc(33, 5)) is None  # LSB before any MSB
    assert decoder.feed(cc(1, 64)) == 8192
    assert decoder.feed(cc(33, 5)) == 8197
    assert decoder.feed(cc(1, 64, channel=2)) == 8192
    assert decoder.feed(cc(33, 127, channel=2)) == 8319
    assert decoder.feed(cc(1, 10)) == 1280  # a new MSB clears the LSB
    assert decoder.feed(cc(74, 10)) is None
    assert decoder.feed(mido.Message("note_on")) is None
    only_7 = Cc14Decoder(controls=[7])
    assert only_7.feed(cc(1, 64)) is None
    assert only_7.feed(cc(7, 1)) == 128 and only_7.feed(cc(39, 1)) == 129
    with pytest.raises(ValueError, match="0-31"):
        Cc14Decoder(controls=[40])


def test_nrpn_decoder_full_sequence():
    decoder = NrpnDecoder()
    assert decoder.feed(cc(99, 1)) is None
    assert decoder.feed(cc(98, 2)) is None
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
