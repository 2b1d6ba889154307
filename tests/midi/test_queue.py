"""EventQueue: bounded, coalescing, keeps notes and transport in order."""

from __future__ import annotations

import threading

import mido
import pytest

from instrument.events import ControlEvent, EventQueue, KeyInput


def ev(kind: str, source: str = "a", **fields) -> ControlEvent:
    return ControlEvent(0.0, source, mido.Message(kind, **fields))


def cc(control: int, value: int, channel: int = 0, source: str = "a") -> ControlEvent:
    return ev("control_change", source, channel=channel, control=control, value=value)


def test_cc_coalesced_in_place_keeping_order_of_others():
    queue = EventQueue()
    queue.put(cc(1, 0))
    queue.put(ev("note_on", note=60))
    queue.put(cc(1, 5))
    queue.put(cc(1, 6, channel=1))
    queue.put(cc(1, 7, source="b"))
    queue.put(ev("pitchwheel", pitch=100))
    queue.put(ev("pitchwheel", pitch=200))
    queue.put(ev("clock"))
    got = [e.message for e in queue.drain()]
    assert got == [cc(1, 5).message, ev("note_on", note=60).message, cc(1, 6, channel=1).message,
                   cc(1, 7).message, ev("pitchwheel", pitch=200).message, ev("clock").message]
    assert queue.dropped == 0 and len(queue) == 0 and queue.drain() == []


def test_exact_controls_and_nrpn_defaults_are_not_coalesced():
    queue = EventQueue()
    queue.set_exact_controls([(0, 16), ("b", None, 17)])
    events = [cc(16, 1), cc(16, 2), cc(16, 3, channel=1), cc(16, 4, channel=1), cc(17, 1, source="b"),
              cc(17, 2, source="b"), cc(99, 1), cc(98, 2), cc(6, 3), cc(38, 4), cc(98, 5), cc(6, 6)]
    for event in events:
        queue.put(event)
    got = [e.message.value for e in queue.drain()]
    assert got == [1, 2, 4, 1, 2, 1, 2, 3, 4, 5, 6]  # (1, 16) is not exact: 3 coalesced into 4


def test_set_exact_controls_rejects_bad_keys():
    with pytest.raises(ValueError, match="not \\(channel, control\\)"):
        EventQueue().set_exact_controls([(1,)])


def test_full_queue_evicts_coalescible_then_droppable_then_refuses():
    queue = EventQueue(maxlen=4)
    queue.put(cc(1, 1))
    queue.put(ev("sysex", data=[1]))
    queue.put(ev("note_on", note=1))
    queue.put(cc(2, 1))
    queue.put(ev("note_on", note=2))  # evicts cc 1
    queue.put(ev("sysex", data=[2]))  # evicts sysex 1, never a CC
    queue.put(ev("note_on", note=3))  # evicts cc 2
    queue.put(ev("note_on", note=4))  # evicts sysex 2
    queue.put(ev("note_on", note=5))  # all kept: refused
    queue.put(cc(3, 1))  # refused
    assert len(queue) == 4 and queue.dropped == 6
    assert [e.message.note for e in queue.drain()] == [1, 2, 3, 4]


def test_exact_controls_are_never_evicted():
    queue = EventQueue(maxlen=3)
    queue.set_exact_controls([(0, 16)])
    for value in (1, 2, 3):
        queue.put(cc(16, value))
    queue.put(ev("sysex", data=[1]))
    queue.put(cc(17, 1))
    queue.put(cc(99, 1))
    assert [e.message.value for e in queue.drain()] == [1, 2, 3] and queue.dropped == 3


def test_window_events_are_kept():
    queue = EventQueue(maxlen=2)
    queue.put(ControlEvent(0.0, "keyboard", KeyInput("a", True)))
    queue.put(ControlEvent(0.0, "keyboard", KeyInput("a", False)))
    queue.put(cc(1, 1))
    assert [e.message for e in queue.drain()] == [KeyInput("a", True), KeyInput("a", False)]


def test_bounded_under_tombstone_churn():
    queue = EventQueue(maxlen=8)
    for n in range(7):
        queue.put(ev("note_on", note=n))
    for control in range(10_000):  # every new CC key evicts the previous one
        queue.put(cc(control % 120, control % 128, channel=control // 120 % 16))
        assert len(queue) <= 8 and len(queue._slots) <= 16
    assert len(queue.drain()) == 8


def test_threads_put_while_render_drains():
    queue = EventQueue(maxlen=100_000)
    got: list[ControlEvent] = []

    def producer(source: str) -> None:
        for n in range(5000):
            queue.put(ev("note_on", source, note=n % 128, velocity=n % 127 + 1))

    threads = [threading.Thread(target=producer, args=(s,)) for s in "abc"]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        got += queue.drain()
    for thread in threads:
        thread.join()
    got += queue.drain()
    assert len(got) == 15000 and queue.dropped == 0
    for source in "abc":
        notes = [e.message.velocity for e in got if e.source == source]
        assert notes == [n % 127 + 1 for n in range(5000)]
