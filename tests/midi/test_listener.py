"""The listener on real JACK MIDI ports: what is sent from another client arrives as ControlEvents."""

from __future__ import annotations

import uuid

import mido
import pytest

from instrument.events import EventQueue
from instrument.midi.listener import MidiListener
from instrument.midi.messages import parse_message
from instrument.midi.system import base_name, close_client

from .helpers import Sender, collect, handshake, wait_for

pytestmark = pytest.mark.jack


def test_port_by_exact_name_delivers_messages(sender):
    queue = EventQueue()
    with MidiListener(queue, ports=[sender.port_name], api="jack", virtual=False) as listener:
        assert listener.open_ports() == [sender.port_name]
        handshake(sender.send, queue)
        sender.send([0x90, 60, 100])
        sender.send([0xB2, 7, 99])
        events = collect(queue, 2)
    assert [e.message for e in events] == [mido.Message("note_on", note=60, velocity=100),
                                           mido.Message("control_change", channel=2, control=7, value=99)]
    assert {e.source for e in events} == {sender.port_name}
    assert events[0].time <= events[1].time


def test_virtual_port_receives_from_another_client(jack_server):
    queue = EventQueue()
    name = f"Latent Test {uuid.uuid4().hex[:6]}"
    with MidiListener(queue, ports=[], api="jack", virtual=True, client_name=name) as listener:
        assert listener.status()["virtual"] == "open"
        out = rtmidi_out()
        target = [i for i, n in enumerate(out.get_ports()) if n.startswith(name)]
        assert target, out.get_ports()
        out.open_port(target[0])
        try:
            handshake(out.send_message, queue)
            out.send_message([0xC0, 5])
            events = collect(queue, 1)
        finally:
            close_client(out)
    assert events[0].message == mido.Message("program_change", program=5)
    assert events[0].source == name


def rtmidi_out():
    import rtmidi

    return rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "virtual-sender")


@pytest.mark.parametrize("spec", ["substring", "index"])
def test_port_by_substring_or_index(sender, spec):
    queue = EventQueue()
    import rtmidi

    lister = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "lister")
    names = lister.get_ports()
    lister.delete()
    chosen = sender.client[-6:].upper() if spec == "substring" else str(names.index(sender.port_name))
    with MidiListener(queue, ports=[chosen], api="jack", virtual=False) as listener:
        assert listener.open_ports() == [sender.port_name]
        handshake(sender.send, queue)
        sender.send([0x80, 61, 0])
        assert collect(queue, 1)[0].message == mido.Message("note_off", note=61, velocity=0)


def test_all_ports_includes_a_port_that_appears_later(jack_server):
    queue = EventQueue()
    with MidiListener(queue, ports=None, api="jack", virtual=False, poll_interval=0.1) as listener:
        late = Sender(f"late-{uuid.uuid4().hex[:6]}")
        try:
            assert wait_for(lambda: late.port_name in listener.open_ports())
            handshake(late.send, queue)
            late.send([0xF8])
            assert any(e.message.type == "clock" for e in collect(queue, 1))
        finally:
            late.close()


@pytest.mark.parametrize("garbage", [[], [0x12, 0x34], [0xFF, 0xFF, 3], [0x90, 200, 1], [0x90, 60],
                                     [0xF0, 1, 2], [0xF4], [0xB0, 7, 1, 5], [300, 1, 2], [-1]])
def test_parser_rejects_garbage(garbage):
    assert parse_message(garbage) is None


def test_parser_keeps_note_on_velocity_zero():
    assert parse_message([0x93, 60, 0]) == mido.Message("note_on", channel=3, note=60, velocity=0)


def test_base_name_drops_the_numbers_that_change_between_plug_ins():
    assert base_name("nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0") == "nanoKONTROL2:nanoKONTROL2 MIDI 1"
    assert base_name("nanoKONTROL2 1", "winmm") == "nanoKONTROL2"
    assert base_name("sender:out 2", "jack") == "sender:out 2"
