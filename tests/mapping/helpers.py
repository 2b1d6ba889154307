"""Building mappings from YAML text and feeding the engine messages, for the mapping tests."""

from __future__ import annotations

import textwrap

import mido

from instrument.control import ControlState
from instrument.events import ControlEvent
from instrument.mapping import Mapping, MappingEngine, parse_mapping
from instrument.midi.clock import MidiClock


def mapping(text: str, file: str = "test.yaml") -> Mapping:
    m, errors = parse_mapping("version: 1\n" + textwrap.dedent(text), file)
    assert not errors, [str(e) for e in errors]
    assert m is not None
    return m


class Rig:
    """A state and an engine for one mapping; ``send`` applies messages at time ``t``."""

    def __init__(self, text: str, source: str = "test port") -> None:
        self.state = ControlState(clock=MidiClock())
        self.engine = MappingEngine(mapping(text), self.state)
        self.source = source

    def send(self, t: float, *messages: mido.Message) -> list[bool]:
        return [self.engine.apply(ControlEvent(t, self.source, m)) for m in messages]

    def value(self, name: str, at: float | None = None):
        if at is not None:
            self.state.advance(at)
        return self.state.value(name)


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def note_on(note: int, velocity: int = 100, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=note, velocity=velocity, channel=channel)


def note_off(note: int, channel: int = 0) -> mido.Message:
    return mido.Message("note_off", note=note, channel=channel)
