"""Every message kind through a real JACK port, decoded; bursts, floods and garbage; a port that returns."""

from __future__ import annotations

import random
import threading
import time
import uuid

import mido
import pytest

from instrument.events import DEFAULT_EXACT_CONTROLS, ControlEvent, EventQueue
from instrument.midi.clock import MidiClock
from instrument.midi.listener import MidiListener
from instrument.midi.messages import (
    Cc14Decoder,
    NrpnDecoder,
    ParameterChange,
    pitchbend_unit,
    relative_delta,
)

from .helpers import Sender, collect, handshake, send_paced, wait_for, without_handshakes

pytestmark = pytest.mark.jack


@pytest.fixture(params=["reader", "callback"])
def listening(request, sender):
    """(queue, listener) on the sender's port. "callback": rtmidi's callback delivers, as on CoreMIDI, ALSA
    and Windows; "reader": the JACK reader thread does (the default on JACK)."""
    queue = EventQueue()
    listener = MidiListener(queue, ports=[sender.port_name], api="jack", virtual=False, poll_interval=0.1,
                            reader=request.param == "reader")
    assert listener.start()
    try:
        handshake(sender.send, queue)
        yield queue, listener
    finally:
        listener.stop()


def send(sender: Sender, *messages: mido.Message) -> None:
    for message in messages:
        sender.send(message.bytes())


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def test_every_channel_message_kind_arrives_exactly(sender, listening):
    queue, _ = listening
    messages = [
        cc(7, 100, channel=3),
        cc(64, 127), cc(64, 0),  # sustain pedal down, up
        mido.Message("note_on", channel=9, note=36, velocity=127),
        mido.Message("note_on", channel=9, note=36, velocity=0),  # velocity 0: stays note_on, means off
        mido.Message("note_off", channel=1, note=37, velocity=64),
        mido.Message("aftertouch", channel=2, value=77),
        mido.Message("polytouch", channel=2, note=60, value=33),
        mido.Message("pitchwheel", channel=5, pitch=-8192),
        mido.Message("program_change", channel=15, program=127),
        mido.Message("songpos", pos=1234),
        mido.Message("start"), mido.Message("continue"), mido.Message("stop"),
        mido.Message("sysex", data=[0x7E, 0x7F, 0x06, 0x01]),
    ]
    send(sender, *messages)
    events = collect(queue, len(messages))
    assert [e.message for e in events] == messages
    assert all(e.source == sender.port_name for e in events)
    bend = next(e.message for e in events if e.message.type == "pitchwheel")
    assert pitchbend_unit(bend.pitch) == -1.0


def test_14bit_relative_and_nrpn_controls_decode(sender, listening):
    queue, _ = listening
    queue.set_exact_controls([(0, 16), (0, 17), (0, 18)])  # three relative encoders, one per encoding
    send(sender, cc(1, 64), cc(33, 5))  # 14-bit: MSB on CC 1, LSB on CC 33
    steps = {16: [1, 1, 127, 3], 17: [65, 65, 63, 64], 18: [1, 2, 65, 66]}
    for control, values in steps.items():
        send(sender, *(cc(control, v) for v in values))
    send(sender, cc(99, 1), cc(98, 2), cc(6, 100), cc(38, 3), cc(96, 0))  # NRPN 130
    events = collect(queue, 2 + 12 + 5)
    assert len(events) == 19
    pair = Cc14Decoder()
    values14 = [pair.msb(0, 1, m.value) if m.control == 1 else pair.lsb(0, 1, m.value)
                for e in events if (m := e.message).control in (1, 33)]
    assert values14 == [8192, 8197]
    modes = {16: "twos_complement", 17: "offset_binary", 18: "sign_bit"}
    totals = {c: sum(relative_delta(e.message.value, modes[c]) for e in events
                     if e.message.type == "control_change" and e.message.control == c) for c in modes}
    assert totals == {16: 4, 17: 1, 18: 0}
    nrpn = NrpnDecoder()
    changes = [c for e in events if (c := nrpn.feed(e.message)) is not None]
    assert changes[-1] == ParameterChange(0, False, 130, (100 << 7) | 4)
    assert len(changes) == 3


def test_clock_through_jack_gives_tempo_and_beats(sender, listening):
    queue, _ = listening
    interval = 60 / (120 * 24)
    send(sender, mido.Message("start"))
    start = time.monotonic()
    for n in range(49):  # two beats at 120 BPM, paced like a real clock
        time.sleep(max(0.0, start + n * interval - time.monotonic()))
        send(sender, mido.Message("clock"))
    events = collect(queue, 50)
    clock = MidiClock()
    for event in events:
        clock.feed(event.message, event.time)
    assert clock.running
    # Arrival times carry JACK's 5.3 ms periods and the busy test machine's scheduling: a loose bound, still
    # far from the 5 or 2880 BPM that miscounted pulses would give.
    assert clock.tempo_bpm == pytest.approx(120, rel=0.1)
    assert clock.beat(events[-1].time) == pytest.approx(2.0)


def test_burst_of_10000_keeps_notes_and_transport_and_last_cc_values(sender, listening):
    queue, listener = listening
    rng = random.Random(1)
    messages, last_cc = [], {}
    for n in range(10_000):
        kind = n % 5
        if kind in (0, 1):
            control, value = rng.choice([1, 2, 74]), rng.randrange(128)
            messages.append([0xB0, control, value])
            last_cc[control] = value
        elif kind == 2:
            messages.append([0x90 | (n // 5) % 16, (n // 80) % 128, n % 127 + 1])  # sequence in the bytes
        elif kind == 3:
            messages.append([0x80, (n // 5) % 128, 0])
        else:
            messages.append([[0xF8], [0xFA], [0xFC], [0xFB]][(n // 5) % 4])
    got: list[ControlEvent] = []
    stop = threading.Event()

    def render() -> None:  # a render thread draining once a frame
        while not stop.wait(1 / 60):
            got.extend(queue.drain())

    thread = threading.Thread(target=render)
    thread.start()
    try:
        before = listener.received  # the handshake's messages count too
        send_paced(sender, messages, lambda: listener.received)
        assert wait_for(lambda: listener.received - before >= len(messages))
    finally:
        stop.set()
        thread.join()
    got = without_handshakes([*got, *queue.drain()])
    kept = [m for m in messages if m[0] & 0xF0 != 0xB0]
    assert [e.message.bytes() for e in got if e.message.type != "control_change"] == kept
    final = {}
    for event in got:
        if event.message.type == "control_change":
            final[event.message.control] = event.message.value
    assert final == last_cc
    assert queue.dropped == 0 and listener.malformed == 0


def test_flood_of_100000_with_sysex_and_garbage_stays_bounded_and_alive(sender, jack_server):
    """Never drained during the flood: the queue holds its bound of kept events, counts every drop by type,
    counts and ignores the garbage, and listens on."""
    queue = EventQueue(maxlen=512, droppable_limit=64)
    listener = MidiListener(queue, ports=[sender.port_name], api="jack", virtual=False)
    assert listener.start()
    try:
        handshake(sender.send, queue)
        rng = random.Random(2)
        # What rtmidi will send of it (it refuses more than 3 bytes unless they start with 0xF0), less a sysex
        # without its end, which rtmidi's JACK input joins to the messages after it until one ends in 0xF7.
        garbage = [[0x12, 0x34], [0xFF, 0xFF, 3], [0x90, 60], [0xF4], [0xF5, 1], [0x90, 200, 1],
                   [0xF0, 0x90, 1, 0xF7], [0xF0, 1, 0xF7, 0xF7]]
        messages, bad, kept = [], 0, 0
        for n in range(100_000):
            kind = n % 4
            if kind == 0:
                messages.append([0x90, n % 128, 1 + n % 127])
                kept += 1
            elif kind == 1:
                messages.append([0xB0, rng.randrange(120), rng.randrange(128)])
                kept += messages[-1][1] in DEFAULT_EXACT_CONTROLS
            elif kind == 2:
                messages.append([0xF0, *(rng.randrange(128) for _ in range(rng.randrange(1, 30))), 0xF7])
            else:
                messages.append(rng.choice(garbage))
                bad += 1
        before = listener.received  # the handshake's messages count too
        send_paced(sender, messages, lambda: listener.received, timeout=10)
        assert wait_for(lambda: listener.received - before >= len(messages))
        assert listener.malformed == bad
        drops = queue.drops()
        assert drops["note_on"] + drops["control_change"] == kept - 512
        assert drops["sysex"] == 25_000 - 64
        waiting = queue.drain()
        assert len([e for e in waiting if e.message.type == "note_on"]) + len(
            [e for e in waiting if e.message.type == "control_change" and e.message.control in
             DEFAULT_EXACT_CONTROLS]) == 512
        assert len(waiting) <= 512 + 64 + 120  # kept, sysex, one per coalesced CC
        send(sender, mido.Message("note_on", note=1, velocity=2))  # still listening
        assert collect(queue, 1)[0].message == mido.Message("note_on", note=1, velocity=2)
    finally:
        listener.stop()


def test_port_that_vanishes_and_returns_is_reopened(jack_server):
    client = f"replug-{uuid.uuid4().hex[:6]}"
    out = Sender(client)
    queue = EventQueue()
    listener = MidiListener(queue, ports=[out.port_name], api="jack", virtual=False, poll_interval=0.1)
    assert listener.start()
    key = f"port {out.port_name}"
    try:
        handshake(out.send, queue)
        send(out, cc(1, 1))
        assert collect(queue, 1)[0].message == cc(1, 1)
        out.close()  # unplugged mid-stream
        assert wait_for(lambda: listener.status()[key].startswith("gone"))
        assert listener.open_ports() == []
        out = Sender(client)  # plugged in again: the same name
        assert wait_for(lambda: listener.status()[key] == "open")
        handshake(out.send, queue)
        send(out, cc(1, 2), mido.Message("note_on", note=3))
        assert [e.message for e in collect(queue, 2)] == [cc(1, 2), mido.Message("note_on", note=3)]
    finally:
        listener.stop()
        out.close()


def test_a_port_asked_for_before_it_exists_opens_when_it_appears(jack_server):
    client = f"later-{uuid.uuid4().hex[:6]}"
    queue = EventQueue()
    listener = MidiListener(queue, ports=[client], api="jack", virtual=False, poll_interval=0.1)
    assert listener.start()
    try:
        assert "waiting" in listener.status()["port"]
        out = Sender(client)
        try:
            assert wait_for(lambda: listener.open_ports() == [out.port_name])
            handshake(out.send, queue)
            send(out, mido.Message("stop"))
            assert collect(queue, 1)[0].message.type == "stop"
        finally:
            out.close()
    finally:
        listener.stop()


def test_stop_during_traffic_returns_promptly(sender, jack_server):
    # The reader only, as the listener always reads JACK: with rtmidi's callback on JACK, closing a port
    # while a message is on its way can deadlock the interpreter (JACK cancels its process thread while that
    # thread waits for the GIL to run the callback), whatever the listener does.
    queue = EventQueue()
    listener = MidiListener(queue, ports=[sender.port_name], api="jack", virtual=False)
    assert listener.start()
    stop = threading.Event()

    def spray() -> None:
        while not stop.is_set():
            sender.send([0xB0, 1, 1])
            sender.send([0x90, 1, 1])
            time.sleep(0.0002)

    thread = threading.Thread(target=spray)
    thread.start()
    try:
        assert wait_for(lambda: listener.received > 100)
        began = time.monotonic()
        listener.stop()
        assert time.monotonic() - began < 5
        assert listener.status()["midi"] == "stopped"
    finally:
        stop.set()
        thread.join()
