"""Pure decoders for MIDI controller conventions: 14-bit CC pairs, relative encoders, NRPN/RPN, pitch bend.

Channels are 0-15 and values are mido's (CC 0-127, pitch -8192..8191). Nothing here touches ports or
threads; the mapping engine calls these in the render thread. The stateful decoders keep one small state
per channel (and control) and are fed messages in arrival order: keep their CCs exact in the EventQueue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import mido

MAX_14BIT = 16383

# Relative encoder encodings: how a CC value 0-127 codes a signed step.
#   twos_complement: 1..63 = +1..+63, 127..65 = -1..-63 (64 = -64)   e.g. Ableton "2's Comp.", Arturia Rel 1
#   binary_offset:   64 = 0, 65..127 = +1..+63, 63..0 = -1..-64       e.g. Ableton "Bin Offset", Arturia Rel 2
#   signed_bit:      bit 6 set = negative, bits 0-5 the size: 1 = +1, 65 = -1 (0 and 64 = 0)
RELATIVE_MODES = ("twos_complement", "binary_offset", "signed_bit")


def combine_14bit(msb: int, lsb: int) -> int:
    """MSB and LSB (0-127 each) -> 0..16383."""
    return (msb & 0x7F) << 7 | (lsb & 0x7F)


def unit_14bit(msb: int, lsb: int) -> float:
    """MSB and LSB -> [0, 1], both ends exact."""
    return combine_14bit(msb, lsb) / MAX_14BIT


def relative_delta(value: int, mode: str) -> int:
    """A relative encoder's CC value (0-127) -> a signed step (typically -63..+63, 0 = no move).

    ``mode`` is one of RELATIVE_MODES; anything else raises ValueError naming them.
    """
    value &= 0x7F
    if mode == "twos_complement":
        return value - 128 if value >= 64 else value
    if mode == "binary_offset":
        return value - 64
    if mode == "signed_bit":
        return -(value & 0x3F) if value & 0x40 else value
    raise ValueError(f"relative mode {mode!r} is not one of {', '.join(RELATIVE_MODES)}")


def pitchbend_unit(pitch: int) -> float:
    """mido's pitch (-8192..8191) -> [-1, 1]: 0 is centre, both ends reach exactly -1 and +1."""
    return pitch / 8192 if pitch < 0 else pitch / 8191


class Cc14Decoder:
    """Joins 14-bit controller pairs: MSB on CC n (0-31), LSB on CC n + 32.

    ``controls``: the MSB numbers that are 14-bit on this controller (default: all of 0-31).
    ``feed(msg)`` returns the new 14-bit value (0..16383) when ``msg`` is the MSB or LSB of such a pair,
    else None. As the MIDI spec says, a new MSB clears the LSB: a controller that sends MSB then LSB gives
    a coarse value and then the fine one; one that sends only MSBs still moves (in steps of 128).
    """

    def __init__(self, controls: Iterable[int] = range(32)) -> None:
        self.controls = frozenset(controls)
        if not self.controls <= set(range(32)):
            raise ValueError(f"14-bit MSB controls are 0-31, not {sorted(self.controls - set(range(32)))}")
        self._msb: dict[tuple[int, int], int] = {}

    def feed(self, msg: mido.Message) -> int | None:
        if msg.type != "control_change" or msg.control % 32 not in self.controls or msg.control >= 64:
            return None
        if msg.control < 32:
            self._msb[msg.channel, msg.control] = msg.value
            return combine_14bit(msg.value, 0)
        msb = self._msb.get((msg.channel, msg.control - 32))
        if msb is None:
            return None  # an LSB before any MSB means nothing yet
        return combine_14bit(msb, msg.value)


@dataclass(frozen=True)
class ParameterChange:
    """An NRPN or RPN value. ``value`` 0..16383; with only a data-entry MSB so far, its low 7 bits are 0."""

    channel: int
    registered: bool  # True for RPN (CC 101/100), False for NRPN (CC 99/98)
    parameter: int  # 0..16383: (number MSB << 7) | number LSB
    value: int


# CC numbers of the (N)RPN protocol.
NRPN_MSB, NRPN_LSB, RPN_MSB, RPN_LSB = 99, 98, 101, 100
DATA_MSB, DATA_LSB, DATA_INCREMENT, DATA_DECREMENT = 6, 38, 96, 97
NULL_PARAMETER = 0x3FFF  # RPN 127/127: "no parameter selected"


class NrpnDecoder:
    """Assembles NRPN/RPN messages (CC 99/98 or 101/100, then 6 [and 38], or 96/97) per channel.

    ``feed(msg)`` returns a ParameterChange when a data-entry (6, 38) or increment/decrement (96, 97) CC
    sets the selected parameter, else None. Selecting the null parameter (127/127) stops data entry
    applying until another parameter is selected. Increment and decrement step the last value by 1.
    """

    def __init__(self) -> None:
        self._selected: dict[int, list] = {}  # channel -> [registered, msb, lsb]
        self._values: dict[tuple[int, bool, int], int] = {}

    def feed(self, msg: mido.Message) -> ParameterChange | None:
        if msg.type != "control_change":
            return None
        control, channel, value = msg.control, msg.channel, msg.value
        if control in (NRPN_MSB, NRPN_LSB, RPN_MSB, RPN_LSB):
            registered = control in (RPN_MSB, RPN_LSB)
            selected = self._selected.setdefault(channel, [registered, None, None])
            if selected[0] != registered:  # switching between NRPN and RPN starts a new number
                selected[:] = [registered, None, None]
            selected[1 if control in (NRPN_MSB, RPN_MSB) else 2] = value
            return None
        if control not in (DATA_MSB, DATA_LSB, DATA_INCREMENT, DATA_DECREMENT):
            return None
        selected = self._selected.get(channel)
        if selected is None or selected[1] is None:
            return None  # data entry with no parameter selected
        registered, msb, lsb = selected
        parameter = combine_14bit(msb, lsb or 0)
        if parameter == NULL_PARAMETER:
            return None
        key = (channel, registered, parameter)
        old = self._values.get(key, 0)
        if control == DATA_MSB:
            new = combine_14bit(value, 0)
        elif control == DATA_LSB:
            new = (old & ~0x7F) | value
        else:
            new = min(MAX_14BIT, old + 1) if control == DATA_INCREMENT else max(0, old - 1)
        self._values[key] = new
        return ParameterChange(channel, registered, parameter, new)
