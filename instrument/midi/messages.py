"""Pure decoders for MIDI: message bytes, 14-bit CC pairs, relative encoders, NRPN/RPN, pitch bend.

Channels are 0-15 and values are mido's (CC 0-127, pitch -8192..8191). Nothing here touches ports or
threads: ``parse_message`` runs in the MIDI callback, the stateful decoders in the render thread (the mapping
engine), fed messages in arrival order: keep their CCs exact in the EventQueue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mido

MAX_14BIT = 16383

# The channel voice messages by status nibble: mido's type and the names of the data bytes.
_VOICE: dict[int, tuple[str, ...]] = {
    0x80: ("note_off", "note", "velocity"),
    0x90: ("note_on", "note", "velocity"),
    0xA0: ("polytouch", "note", "value"),
    0xB0: ("control_change", "control", "value"),
    0xC0: ("program_change", "program"),
    0xD0: ("aftertouch", "value"),
    0xE0: ("pitchwheel",),
}
_REALTIME = {0xF8: "clock", 0xFA: "start", 0xFB: "continue", 0xFC: "stop"}


def parse_message(data: Sequence[int]) -> mido.Message | None:
    """One MIDI message's bytes (as rtmidi delivers them) -> a mido.Message, or None if malformed.

    Never raises: a wrong length, a stray data byte, an unknown status, a sysex without its end byte or a
    value outside 0-255 all give None. Note-on with velocity 0 stays a note_on (the mapping reads it as off).
    Channel messages and the clock are built directly, checked here: they are nearly all of the traffic, and
    mido's general parser costs several times more, on the thread that must keep up with a flood.
    """
    try:
        status = data[0]
        size = len(data)
        if 0x80 <= status < 0xF0:
            names = _VOICE[status & 0xF0]
            if size != (2 if len(names) == 2 else 3) or any(not 0 <= byte < 0x80 for byte in data[1:]):
                return None
            fields = {"type": names[0], "time": 0, "channel": status & 0x0F}
            if len(names) == 1:
                fields["pitch"] = (data[1] | data[2] << 7) - 8192
            else:
                for name, byte in zip(names[1:], data[1:], strict=True):
                    fields[name] = byte
        elif size == 1 and status in _REALTIME:
            fields = {"type": _REALTIME[status], "time": 0}
        else:
            return mido.Message.from_bytes(data)
    except Exception:  # garbage from a device must never reach, let alone kill, the callback thread
        return None
    message = mido.Message.__new__(mido.Message)
    vars(message).update(fields)  # as mido's own Message.copy builds one: the values are checked above
    return message


# Relative encoder encodings (the mapping file's ``relative:`` names): how a CC value 0-127 codes a step.
#   twos_complement: 1..63 = +1..+63, 127..65 = -1..-63 (64 = -64)   e.g. Ableton "2's Comp.", Arturia Rel 1
#   offset_binary:   64 = 0, 65..127 = +1..+63, 63..0 = -1..-64       e.g. Ableton "Bin Offset", Arturia Rel 2
#   sign_bit:        bit 6 set = negative, bits 0-5 the size: 1 = +1, 65 = -1 (0 and 64 = 0)
RELATIVE_MODES = ("twos_complement", "offset_binary", "sign_bit")


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
    if mode == "offset_binary":
        return value - 64
    if mode == "sign_bit":
        return -(value & 0x3F) if value & 0x40 else value
    raise ValueError(f"relative mode {mode!r} is not one of {', '.join(RELATIVE_MODES)}")


def pitchbend_unit(pitch: int) -> float:
    """mido's pitch (-8192..8191) -> [-1, 1]: 0 is centre, both ends reach exactly -1 and +1."""
    return pitch / 8192 if pitch < 0 else pitch / 8191


class Cc14Decoder:
    """Joins 14-bit controller pairs, an MSB CC and its LSB CC (by convention n and n + 32), per channel.

    Which CCs pair up is the caller's to say (the mapping engine knows its ``cc14`` controls); this keeps the
    last MSB of each (channel, MSB CC). As the MIDI spec says, a new MSB clears the LSB: a controller that
    sends MSB then LSB gives a coarse value and then the fine one; one that sends only MSBs still moves (in
    steps of 128). An LSB before any MSB means nothing yet: it would otherwise read as MSB 0, a jump to the
    bottom of the range.
    """

    def __init__(self) -> None:
        self._msb: dict[tuple[int, int], int] = {}

    def msb(self, channel: int, control: int, value: int) -> int:
        """The MSB ``value`` (0-127) came on CC ``control``: the pair's new value, 0..16383 (LSB 0)."""
        self._msb[channel, control] = value & 0x7F
        return combine_14bit(value, 0)

    def lsb(self, channel: int, msb_control: int, value: int) -> int | None:
        """The LSB ``value`` came for the pair whose MSB is CC ``msb_control``: its new value 0..16383, or
        None while no MSB has come."""
        msb = self._msb.get((channel, msb_control))
        return None if msb is None else combine_14bit(msb, value)


@dataclass(frozen=True, slots=True)
class Light:
    """One thing on the controller: a CC (LED ring, button LED, motor fader) or a note (pad light) on
    ``channel`` 0-15, ``number`` 0-127, showing ``value`` 0-127 (for a note its velocity; 0 is off)."""

    channel: int
    kind: str  # "cc" or "note"
    number: int
    value: int

    def __post_init__(self) -> None:
        if self.kind not in ("cc", "note") or not (0 <= self.channel < 16 and 0 <= self.number < 128
                                                   and 0 <= self.value < 128):
            raise ValueError(f"{self!r}: kind is cc or note, channel 0-15, number and value 0-127")

    def bytes(self) -> list[int]:
        return [(0xB0 if self.kind == "cc" else 0x90) | self.channel, self.number, self.value]



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
    applying until another parameter is selected. Increment and decrement step the last value by 1. As with
    14-bit pairs, a data-entry LSB before the parameter's first MSB means nothing yet.
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
        old = self._values.get(key)
        if control == DATA_MSB:
            new = combine_14bit(value, 0)
        elif control == DATA_LSB:
            if old is None:
                return None
            new = (old & ~0x7F) | value
        elif old is None:
            new = 1 if control == DATA_INCREMENT else 0
        else:
            new = min(MAX_14BIT, old + 1) if control == DATA_INCREMENT else max(0, old - 1)
        self._values[key] = new
        return ParameterChange(channel, registered, parameter, new)
