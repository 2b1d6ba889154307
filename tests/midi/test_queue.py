"""EventQueue: coalesces, keeps notes and transport in order, bounded, counts its drops, hangs no note."""

from __future__ import annotations

import threading

import mido
import pytest

from instrument.events import DEFAULT_EXACT_CONTROLS, ControlEvent, EventQueue, KeyInput


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


def note(on: bool, number: int, channel: int = 0, source: str = "a", velocity: int = 100) -> ControlEvent:
    if on:
        return ev("note_on", source, channel=channel, note=number, velocity=velocity)
    return ev("note_off", source, channel=channel, note=number, velocity=0)


def test_beyond_the_bound_kept_events_are_dropped_and_counted_by_type():
    queue = EventQueue(maxlen=3, droppable_limit=1)
    for n in range(3):
        queue.put(ev("program_change", program=n))
    queue.put(ev("program_change", program=9))  # over the bound
    queue.put(ev("clock"))
    queue.put(cc(16, 1))  # coalescible CCs never count against the bound: one waits per key
    queue.put(cc(16, 2))
    queue.put(ev("sysex", data=[1]))
    queue.put(ev("sysex", data=[2]))  # over the droppable limit
    queue.put(ControlEvent(0.0, "keyboard", KeyInput("a", True)))
    assert queue.drops() == {"program_change": 1, "clock": 1, "sysex": 1, "key": 1} and queue.dropped == 4
    got = [e.message for e in queue.drain()]
    assert [m.program for m in got if m.type == "program_change"] == [0, 1, 2]
    assert [m.value for m in got if m.type == "control_change"] == [2]
    assert [m.data for m in got if m.type == "sysex"] == [(1,)]
    before = queue.drops()
    queue.put(ev("program_change", program=3))  # drained: room again
    assert len(queue) == 1 and queue.drops(since=before) == {}
    for n in range(4):
        queue.put(ev("program_change", program=n))
    assert queue.drops(since=before) == {"program_change": 2}


def test_a_dropped_note_on_takes_its_note_off_and_no_note_is_left_hanging():
    queue = EventQueue(maxlen=2)
    queue.put(note(True, 60))
    queue.put(note(True, 61))
    queue.put(note(True, 62))  # full: dropped, and so will be its note-off
    queue.put(note(True, 63, channel=1))  # dropped
    queue.put(note(False, 60))  # 60 is on: its note-off goes in past the bound
    queue.put(note(False, 62))  # its note-on was dropped: dropped too
    queue.put(note(True, 61, velocity=0))  # velocity 0 ends 61: in
    queue.put(note(False, 62))  # no longer muted, still no room: dropped as any kept event is
    assert queue.drops() == {"note_on": 2, "note_off": 2}
    got = [(e.message.type, e.message.note, e.message.velocity) for e in queue.drain()]
    assert got == [("note_on", 60, 100), ("note_on", 61, 100), ("note_off", 60, 0), ("note_on", 61, 0)]
    queue.put(note(False, 63, channel=1))  # room now, yet its note-on was dropped: so is it
    assert queue.drain() == [] and queue.drops()["note_off"] == 3


def test_notes_that_are_on_keep_their_note_off_across_drains_and_sources():
    queue = EventQueue(maxlen=1)
    queue.put(note(True, 60, source="a"))
    queue.drain()
    queue.put(note(True, 60, source="b"))  # the same note from another port is another note
    queue.put(note(False, 60, source="a"))  # full, but "a" 60 is on
    queue.put(note(False, 60, source="a"))  # a second note-off for it: it is off already, so dropped
    assert [e.source for e in queue.drain()] == ["b", "a"] and queue.drops() == {"note_off": 1}


def test_all_notes_off_goes_in_when_notes_are_on_and_ends_them():
    queue = EventQueue(maxlen=1)
    queue.put(note(True, 60, channel=2))
    queue.put(note(True, 61, channel=2))  # dropped
    queue.put(cc(123, 0, channel=2))  # all notes off on channel 3: past the bound
    queue.put(cc(123, 0, channel=2))  # nothing on there any more: bounded again
    queue.put(note(False, 60, channel=2))  # ended already
    queue.put(note(False, 61, channel=2))  # its note-on was dropped: dropped (and no longer muted)
    got = [e.message.type for e in queue.drain()]
    assert got == ["note_on", "control_change"]
    assert queue.drops() == {"note_on": 1, "control_change": 1, "note_off": 2}


def test_exact_controls_are_kept_and_bounded():
    queue = EventQueue(maxlen=3)
    queue.set_exact_controls([(0, 16)])
    for value in (1, 2, 3, 4):
        queue.put(cc(16, value))
    queue.put(cc(17, 1))
    queue.put(cc(17, 2))
    assert [e.message.value for e in queue.drain()] == [1, 2, 3, 2] and queue.drops() == {"control_change": 1}


def test_window_events_are_kept():
    queue = EventQueue(maxlen=2)
    queue.put(ControlEvent(0.0, "keyboard", KeyInput("a", True)))
    queue.put(ControlEvent(0.0, "keyboard", KeyInput("a", False)))
    queue.put(cc(1, 1))
    assert [e.message for e in queue.drain()][:2] == [KeyInput("a", True), KeyInput("a", False)]


def test_a_flood_of_coalescible_events_stays_bounded_by_their_keys():
    queue = EventQueue(maxlen=8)
    controls = sorted(set(range(128)) - DEFAULT_EXACT_CONTROLS)
    knobs = [cc(control, value, channel) for channel in range(16) for control in controls for value in (0, 1)]
    for n in range(100_000):
        queue.put(knobs[n % len(knobs)])
    assert len(queue) == len(controls) * 16 and queue.dropped == 0


def test_the_default_bound_keeps_a_100000_event_burst_without_a_drain():
    queue = EventQueue()
    pairs = [(note(True, n, channel), note(False, n, channel)) for channel in range(16) for n in range(128)]
    for n in range(50_000):
        queue.put(pairs[n % len(pairs)][0])
        queue.put(pairs[n % len(pairs)][1])
    assert len(queue) == 100_000 and queue.dropped == 0 and len(queue.drain()) == 100_000


def test_rejects_a_bound_below_one():
    with pytest.raises(ValueError, match="maxlen"):
        EventQueue(maxlen=0)


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
