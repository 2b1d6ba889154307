"""Bursts far above playing speed over real JACK ports: notes counted in and out.

Up to the queue's bound every kept event (notes, note-offs, program changes, exact CCs, clock) arrives, in
order, while a render thread drains once a frame; beyond the bound drops are counted by type and no note is
left hanging.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import mido
import pytest

from instrument.events import ControlEvent, EventQueue
from instrument.midi.listener import MidiListener

from .helpers import handshake, wait_for, without_handshakes

pytestmark = pytest.mark.jack

RATE = 30_000  # messages per second sent, above the 20,000 the queue is documented to take
RELATIVE_CC = 16  # an encoder: made exact, so every tick counts


def mixed_burst(n: int, seed: int) -> list[list[int]]:
    """``n`` messages: note-ons each ended by a note-off (or a velocity 0 note-on) a few messages later, on
    16 channels; program changes; knob CCs (coalesced); encoder ticks (exact); clock."""
    rng = random.Random(seed)
    messages: list[list[int]] = []
    on: list[tuple[int, int]] = []
    while len(messages) < n - len(on):
        kind = rng.randrange(6)
        if kind <= 1 and len(on) < 64:
            channel, note = rng.randrange(16), rng.randrange(128)
            if (channel, note) not in on:
                on.append((channel, note))
                messages.append([0x90 | channel, note, rng.randrange(1, 128)])
        elif kind <= 1 and on:
            channel, note = on.pop(rng.randrange(len(on)))
            messages.append([0x80 | channel, note, 64] if rng.random() < 0.5 else [0x90 | channel, note, 0])
        elif kind == 2:
            messages.append([0xC0 | rng.randrange(16), rng.randrange(128)])
        elif kind == 3:
            messages.append([0xB0, rng.choice([1, 2, 74]), rng.randrange(128)])
        elif kind == 4:
            messages.append([0xB0, RELATIVE_CC, rng.choice([1, 127])])
        else:
            messages.append([0xF8])
    messages += [[0x80 | channel, note, 0] for channel, note in on]
    return messages


def is_kept(data: list[int]) -> bool:
    return not (data[0] & 0xF0 == 0xB0 and data[1] != RELATIVE_CC)


def hanging(events: list[ControlEvent]) -> set[tuple[int, int]]:
    """Notes switched on and never off."""
    on: set[tuple[int, int]] = set()
    for event in events:
        message = event.message
        if message.type == "note_on" and message.velocity > 0:
            on.add((message.channel, message.note))
        elif message.type in ("note_on", "note_off"):
            on.discard((message.channel, message.note))
    return on


def send_at(sender, messages: list[list[int]], rate: float, received, window: int = 4000) -> float:
    """Send ``messages`` on a schedule of ``rate`` per second (start + n * interval), holding back only while
    ``window`` are on their way (rtmidi's JACK output drops what does not fit in a period). Returns the
    rate achieved."""
    start = time.monotonic()
    base = received()
    for n, data in enumerate(messages):
        due = start + n / rate
        while (wait := due - time.monotonic()) > 0.001 or n - (received() - base) >= window:
            time.sleep(min(max(wait, 0.0), 0.001) or 0.0002)
        sender.send(data)
    return len(messages) / (time.monotonic() - start)


@pytest.fixture
def listening(sender):
    def start(queue: EventQueue) -> MidiListener:
        listener = MidiListener(queue, ports=[sender.port_name], api="jack", virtual=False)
        assert listener.start()
        handshake(sender.send, queue)
        return listener

    listeners: list[MidiListener] = []
    yield lambda queue: listeners.append(start(queue)) or listeners[-1]
    for listener in listeners:
        listener.stop()


def test_60000_mixed_messages_at_30000_per_second_lose_no_kept_event(sender, listening):
    queue = EventQueue()
    queue.set_exact_controls([(None, RELATIVE_CC)])
    listener = listening(queue)
    messages = mixed_burst(60_000, seed=4)
    got: list[ControlEvent] = []
    stop = threading.Event()

    def render() -> None:  # drains once a frame, as the render thread does
        while not stop.wait(1 / 60):
            got.extend(queue.drain())

    thread = threading.Thread(target=render)
    thread.start()
    try:
        before = listener.received
        rate = send_at(sender, messages, RATE, lambda: listener.received)
        assert wait_for(lambda: listener.received - before >= len(messages), timeout=10)
    finally:
        stop.set()
        thread.join()
    got = without_handshakes([*got, *queue.drain()])
    kept = [e.message.bytes() for e in got if is_kept(e.message.bytes())]
    assert kept == [m for m in messages if is_kept(m)]
    last = {m[1]: m[2] for m in messages if not is_kept(m)}
    assert {e.message.control: e.message.value for e in got if not is_kept(e.message.bytes())} == last
    notes_in = Counter(m[0] & 0xF0 for m in messages if m[0] & 0xE0 == 0x80)
    notes_out = Counter(e.message.bytes()[0] & 0xF0 for e in got if e.message.type in ("note_on", "note_off"))
    assert notes_out == notes_in and not hanging(got)
    assert queue.dropped == 0 and listener.malformed == 0
    assert rate > 20_000, f"sent at {rate:.0f} messages/s only: the machine was too busy to test the rate"


def test_beyond_the_bound_drops_are_counted_and_no_note_hangs(sender, listening):
    """The render thread stalls through a 30,000-message burst with room for 2,000 kept events."""
    queue = EventQueue(maxlen=2000)
    queue.set_exact_controls([(None, RELATIVE_CC)])
    listener = listening(queue)
    messages = mixed_burst(30_000, seed=5)
    before = listener.received
    send_at(sender, messages, 10 * RATE, lambda: listener.received)
    assert wait_for(lambda: listener.received - before >= len(messages), timeout=10)
    got = without_handshakes(queue.drain())
    sent = Counter(mido.Message.from_bytes(m).type for m in messages if is_kept(m))
    arrived = Counter(e.message.type for e in got if is_kept(e.message.bytes()))
    assert sum(arrived.values()) - arrived["note_off"] <= 2000 < sum(sent.values())
    assert queue.drops() == {kind: n - arrived[kind] for kind, n in sent.items() if n > arrived[kind]}
    assert queue.drops()["note_on"] > 0 and queue.drops()["note_off"] > 0  # each with its note-on
    assert not hanging(got)
    offs = [(e.message.channel, e.message.note) for e in got
            if e.message.type == "note_off" or (e.message.type == "note_on" and e.message.velocity == 0)]
    ons = [(e.message.channel, e.message.note) for e in got
           if e.message.type == "note_on" and e.message.velocity > 0]
    assert Counter(offs) == Counter(ons)  # no note-off arrived without its note-on
    sender.send([0x90, 1, 2])  # still listening, with room again
    assert wait_for(lambda: any(e.message.bytes() == [0x90, 1, 2] for e in queue.drain()))
