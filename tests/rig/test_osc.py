"""OSC over 127.0.0.1 UDP, python-osc on the other side: messages become control events through the mapping
engine (so a take holds them and re-renders them), malformed packets are counted and ignored, floods are
bounded, and the state goes out to a target at a bounded rate."""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time

import mido
import pytest
import support
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from instrument import events as events_module
from instrument.config import Config
from instrument.control import ControlState
from instrument.events import ControlEvent, EventQueue, OscInput
from instrument.mailbox import Mailbox, Status
from instrument.mapping import MappingEngine, parse_mapping
from instrument.mapping.engine import feedback_osc
from instrument.osc import OscSender, OscServer, parse_target
from instrument.recorder import EVENTS, FRAMES, event_from_json, event_to_json, read_jsonl
from instrument.rig import start_rig

from .helpers import OscReceiver, free_udp_port, make_renderer

MAPPING = """
version: 1
name: touchosc
controls:
  - {osc: /1/fader1, param: noise, range: [0, 0.5], feedback: true}
  - {osc: /1/toggle1, param: freeze, feedback: true}
  - {osc: /1/push1, param: path, action: step}
"""


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def drained(queue: EventQueue, count: int) -> list[ControlEvent]:
    got: list[ControlEvent] = []
    support.wait_for(lambda: len(got.__iadd__(queue.drain())) >= count)
    return got


@pytest.fixture
def server():
    queue = EventQueue()
    listening = OscServer(queue, 0)
    listening.start()
    try:
        yield listening
    finally:
        listening.stop()


def test_messages_become_control_events_and_malformed_packets_are_counted(server):
    host, port = server.address
    assert host == "127.0.0.1"  # this computer only, unless the user names another address
    client = SimpleUDPClient(host, port)
    client.send_message("/li/noise", 0.25)
    client.send_message("/li/path", "loop")
    bundle = OscBundleBuilder(IMMEDIATELY)
    bundle.add_content(OscMessageBuilder("/1/fader1").build())
    bundle.add_content(OscMessageBuilder("/li/freeze").build())
    client.send(bundle.build())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for junk in (b"hello", b"\x00" * 7, b"#bundle\x00" + b"\xff" * 9, message("/li/noise", float("nan")),
                     message("/li/noise", b"\x01\x02"), message("/li/" + "x" * 300, 1.0),
                     message("/li/label", "tab\there")):
            raw.sendto(junk, (host, port))
    got = drained(server.queue, 4)
    assert [(e.source, e.message) for e in got] == [
        ("osc", OscInput("/li/noise", (0.25,))), ("osc", OscInput("/li/path", ("loop",))),
        ("osc", OscInput("/1/fader1")), ("osc", OscInput("/li/freeze"))]
    assert support.wait_for(lambda: server.received == 10)
    assert server.malformed == 7 and "10 received, 7 malformed" in server.status()
    assert server.queue.drain() == []


def test_a_port_in_use_is_said_in_one_line_and_play_goes_on(caplog):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR):
            rig = start_rig(Config(osc_in=port), EventQueue(), Mailbox())
        try:
            assert rig.osc_in is None
            assert rig.status()["osc in"].startswith(f"off: 127.0.0.1:{port}")
            lines = [r.getMessage() for r in caplog.records]
            assert len(lines) == 1 and "--osc-in" in lines[0] and "\n" not in lines[0]
        finally:
            rig.close()


def test_a_target_is_host_and_port():
    assert parse_target("127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert parse_target("[::1]:9") == ("::1", 9)
    for bad in ("7000", "host:", "host:0", "host:70000", ":7000", "host:port"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_target(bad)


def test_a_flood_of_new_addresses_is_bounded_and_counted(monkeypatch):
    monkeypatch.setattr(events_module, "COALESCED_LIMIT", 50)
    queue = EventQueue()
    queue.set_exact_controls([(None, "osc /1/push1")])
    for k in range(200):
        queue.put(ControlEvent(0.0, "osc", OscInput(f"/flood/{k}", (1.0,))))
    for value in (1.0, 0.0):  # a button's press and release: exact, both kept
        queue.put(ControlEvent(0.0, "osc", OscInput("/1/push1", (value,))))
    queue.put(ControlEvent(0.0, "port", mido.Message("note_on", note=60)))
    got = queue.drain()
    assert len(got) == 53 and queue.drops() == {"osc": 150}
    assert [e.message.args for e in got if e.message.type == "osc" and e.message.address == "/1/push1"] == \
        [(1.0,), (0.0,)]
    for _ in range(3):  # a fader: the latest value wins
        queue.put(ControlEvent(0.0, "osc", OscInput("/1/fader1", (0.5,))))
    assert len(queue.drain()) == 1


def test_li_addresses_set_any_parameter_in_its_own_units():
    mapping, errors = parse_mapping(MAPPING, "touchosc.yaml")
    assert not errors
    state = ControlState()
    engine = MappingEngine(mapping, state)

    def send(address, *args) -> bool:
        return engine.apply(ControlEvent(1.0, "osc", OscInput(address, args)))

    assert send("/li/speed", 0.5) and send("/li/anchor", 3) and send("/li/path", "loop")
    assert send("/li/decoder", 1) and send("/li/sync", True) and send("/li/hud", "off")
    assert send("/li/freeze") and send("/li/quit")
    for unusable in [("/li/speed",), ("/li/speed", "fast"), ("/li/path", 9), ("/li/path", 0.5),
                     ("/li/nothing", 1.0), ("/other", 1.0), ("/li/sync", "maybe"), ("/li/speed", math.nan)]:
        assert not send(*unusable), unusable
    state.advance(2.0)
    assert state.value("speed") == 0.5 and state.value("anchor") == 3 and state.value("path") == "loop"
    assert state.value("decoder") == "full" and state.value("sync") is True and state.value("hud") is False
    assert state.value("freeze") is True
    actions = state.pop_actions()
    assert ("anchor", 3) in actions and ("quit", None) in actions


def test_an_osc_control_moves_like_a_knob_and_shows_its_value_back():
    mapping, _ = parse_mapping(MAPPING, "touchosc.yaml")
    state = ControlState()
    engine = MappingEngine(mapping, state)
    for address, args in [("/1/fader1", (0.5,)), ("/1/toggle1", (1.0,)), ("/1/toggle1", (0.0,)),
                          ("/1/toggle1", (1,)), ("/1/push1", (1.0,)), ("/1/push1", (0.0,)),
                          ("/1/push1", (True,))]:
        assert engine.apply(ControlEvent(1.0, "osc", OscInput(address, args)))
    assert not engine.apply(ControlEvent(1.0, "osc", OscInput("/1/fader1", ("loud",))))
    state.advance(5.0)
    assert state.value("noise") == pytest.approx(0.25)
    assert state.value("freeze") is True  # an OSC toggle says its state: the parameter follows it
    assert state.value("path") == "loop"  # slerp -> lerp -> loop: two presses
    assert engine.exact_controls() == {(None, "osc /1/push1")}
    assert feedback_osc(mapping.controls, state) == {"/1/fader1": pytest.approx(0.5), "/1/toggle1": 1.0}


def test_an_osc_event_survives_the_takes_log():
    for message_ in (OscInput("/li/path", ("loop",)), OscInput("/li/freeze"), OscInput("/x", (1, 2.5, True))):
        event = ControlEvent(2.5, "osc", message_)
        record = json.loads(json.dumps(event_to_json(event, 3)))
        assert record["n"] == 3 and event_from_json(record) == event
    for bad in ({"osc": 5}, {"osc": "/x", "args": "1"}, {"osc": "/x", "args": [[1]]}):
        with pytest.raises(ValueError, match="OSC record"):
            event_from_json({"n": 0, "t": 0.0, "source": "osc", **bad})


def test_osc_moves_reach_the_state_and_the_take_and_re_render_alike(loader, taef2, tmp_path):
    """The whole way: python-osc over UDP into a listener, through the mapping engine of a live loop, into a
    take; the re-render of the take lands on the frames as played."""
    from instrument.replay import rerender

    renderer, queue, mailbox = make_renderer(loader, tmp_path, MAPPING)
    server = OscServer(queue, 0)
    server.start()
    client = SimpleUDPClient(*server.address)
    renderer.start()
    try:
        assert support.wait_for(lambda: mailbox.count > 0, 60)
        client.send_message("/li/record", 1)
        assert support.wait_for(lambda: renderer.recorder is not None, 30)
        for value in (0.2, 0.6, 0.9):
            client.send_message("/li/position", value)
            time.sleep(0.15)
        client.send_message("/1/fader1", 0.8)
        state = renderer.parts.controls.state
        assert support.wait_for(lambda: state.value("noise") > 0.39, 10)
        assert state.value("position") == pytest.approx(0.9, abs=1e-6)
        time.sleep(0.3)
        client.send_message("/li/record", 0)
        assert support.wait_for(lambda: renderer.recorder is None, 30)
    finally:
        renderer.stop()
        renderer.join(30)
        server.stop()
    take = renderer.takes[0]
    logged = [(e["osc"], e["args"]) for e in read_jsonl(take / EVENTS) if "osc" in e]
    assert [a for a, _ in logged][-5:] == ["/li/position"] * 3 + ["/1/fader1", "/li/record"]
    assert logged[-5][1] == [pytest.approx(0.2)]
    live = read_jsonl(take / FRAMES)
    assert live[-1]["coords"]["s"] == pytest.approx(0.9, abs=1e-3)  # (coordinates are quantized)
    result = rerender(take, load=lambda config: (taef2, None), progress=False)
    support.assert_as_played(result, read_jsonl(result.folder / FRAMES), live)
    assert result.coords[-1].noise == pytest.approx(live[-1]["coords"]["noise"])


def test_the_state_goes_to_the_target_only_on_change_and_at_a_bounded_rate():
    receiver = OscReceiver()
    sender = OscSender(("127.0.0.1", receiver.port), rate=20)
    sender.start()
    try:
        began = time.monotonic()
        for k in range(200):  # far faster than the rate; "still" never changes
            sender.show({"/li/state/beat": k * 0.01, "/li/state/still": 1})
            time.sleep(0.002)
        assert support.wait_for(lambda: receiver.latest("/li/state/beat") == (pytest.approx(1.99),))
        elapsed = time.monotonic() - began
        beats = [m for m in receiver.got() if m[0] == "/li/state/beat"]
        assert 2 <= len(beats) <= 20 * elapsed + 2
        assert [m for m in receiver.got() if m[0] == "/li/state/still"] == [("/li/state/still", (1,))]
    finally:
        sender.stop()
        receiver.close()
    assert "sent" in sender.status() and sender.failed == 0


def test_the_feedback_hook_sends_the_state_and_the_osc_controls_values(loader, tmp_path):
    from instrument.loop.controls import Controls
    from instrument.loop.feedback import Feedback
    from instrument.performance import Coords

    mapping, _ = parse_mapping(MAPPING, "touchosc.yaml")
    controls = Controls(mapping)
    receiver = OscReceiver()
    sender = OscSender(("127.0.0.1", receiver.port))
    sender.start()
    hook = Feedback(osc=sender)
    try:
        controls.apply(ControlEvent(0.0, "osc", OscInput("/1/fader1", (0.3,))))
        controls.apply(ControlEvent(0.0, "osc", OscInput("/li/tempo", (90.0,))))
        controls.advance(1.0)
        hook.after_frame(controls, Coords("slerp", 0.4, home=1), Status(render_fps=29.5), 1.0)
        want = {"/li/state/position": 0.4, "/li/state/anchor": 1, "/li/state/fps": 29.5,
                "/li/state/tempo": 90.0, "/li/state/recording": 0, "/1/fader1": 0.3, "/1/toggle1": 0.0}
        assert support.wait_for(lambda: all(receiver.latest(a) == (pytest.approx(v),)
                                            for a, v in want.items()))
    finally:
        hook.close()
        receiver.close()


def test_play_listens_and_sends_when_asked(loader, tmp_path):
    """``play --osc-in PORT --osc-out HOST:PORT --record``: an OSC fader recorded into the take, the state
    and the fader's value sent back out, everything closed at the end."""
    from instrument.play import Session

    mapping_file = tmp_path / "touchosc.yaml"
    mapping_file.write_text(MAPPING)
    receiver = OscReceiver()
    port = free_udp_port()
    config = Config(size=(64, 64), fps=15, headless=True, full_model="none", midi_ports="none",
                    mapping=str(mapping_file), record=str(tmp_path / "take"), osc_in=port,
                    osc_out=f"127.0.0.1:{receiver.port}")
    session = Session(config, load=loader)
    done: list[int] = []
    runner = threading.Thread(target=lambda: done.append(session.run()))
    runner.start()
    try:
        assert support.wait_for(lambda: session.renderer is not None and session.renderer.frames > 3, 60)
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/1/fader1", 0.6)
        assert support.wait_for(lambda: receiver.latest("/1/fader1") == (pytest.approx(0.6),), 10)
        assert receiver.latest("/li/state/fps") is not None
        assert support.wait_for(lambda: "1 received, 0 malformed" in dict(session.renderer.status.midi).get(
            "osc in", ""), 10)
    finally:
        if session.renderer is not None:
            session.renderer.stop()
        runner.join(60)
        receiver.close()
    assert done == [0]
    logged = [e for e in read_jsonl(tmp_path / "take" / EVENTS) if "osc" in e]
    assert [(e["osc"], e["args"]) for e in logged] == [("/1/fader1", [pytest.approx(0.6)])]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the listener let its port go
