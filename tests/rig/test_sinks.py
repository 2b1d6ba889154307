"""Frame sinks behind one contract, fed from the mailbox by a thread of their own: a sink that records
frames stands for them all; a stuck or slow sink drops frames (counted) and never holds the render loop; a
sink that cannot run says why in one line and play goes on. Each platform's own sink runs where it can,
and is skipped with the reason where it cannot; NDI sends to a receiver in a private network namespace."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import support

from instrument.config import Config
from instrument.events import EventQueue
from instrument.mailbox import Frame, Mailbox
from instrument.rig import start_rig
from instrument.sinks import KINDS, SinkUnavailable, make_sink
from instrument.sinks.feed import SinkFeed

from .helpers import make_renderer

REPO = Path(__file__).resolve().parents[2]
MAPPING = "version: 1\ncontrols:\n  - {cc: 1, param: position}\n"


class RecordingSink:
    """A sink that keeps what it is given: each frame's first pixel, and every open and close. ``hold``: a
    send waits for it (a stuck receiver); ``fail_open``/``fail_sends``: raise there."""

    name = "recording"

    def __init__(self, hold: threading.Event | None = None, fail_open: str = "", fail_sends: int = 0) -> None:
        self.hold, self.fail_open, self.fail_sends = hold, fail_open, fail_sends
        self.opened: list[tuple[int, int, float]] = []
        self.frames: list[int] = []
        self.closed = 0
        self.sending = threading.Event()

    def open(self, width: int, height: int, fps: float) -> str:
        if self.fail_open:
            raise RuntimeError(self.fail_open)
        self.opened.append((width, height, fps))
        return f"recording {width}x{height}"

    def send(self, image: np.ndarray) -> None:
        self.sending.set()
        if self.hold is not None:
            self.hold.wait()
        if self.fail_sends:
            self.fail_sends -= 1
            raise OSError("the receiver went away")
        self.frames.append(int(image[0, 0, 0]))

    def close(self) -> None:
        self.closed += 1


def frame(k: int, size: tuple[int, int] = (8, 6)) -> Frame:
    return Frame(k, k / 20, np.full((size[1], size[0], 3), k % 256, np.uint8))


@pytest.fixture
def feed_of():
    """feed_of(sink) -> a started SinkFeed on a new mailbox; stopped at the end."""
    feeds = []

    def make(sink) -> SinkFeed:
        feed = SinkFeed(sink, Mailbox(), 20.0)
        feeds.append(feed)
        feed.start()
        return feed

    yield make
    for feed in feeds:
        feed.stop()


def test_a_sink_gets_each_new_frame_opened_at_its_size_and_is_closed(feed_of):
    sink = RecordingSink()
    feed = feed_of(sink)
    for k in (1, 2, 3):
        feed.mailbox.put(frame(k))
        assert support.wait_for(lambda k=k: sink.frames[-1:] == [k])
    feed.mailbox.put(frame(4, size=(16, 12)))  # another size: closed and opened again
    assert support.wait_for(lambda: sink.frames[-1:] == [4])
    assert sink.opened == [(8, 6, 20.0), (16, 12, 20.0)] and sink.closed == 1
    assert feed.status() == "recording 16x12; 4 sent, 0 dropped"
    feed.stop()
    assert sink.closed == 2 and not feed._thread


def test_a_stuck_sink_never_holds_up_the_render_loop(loader, tmp_path):
    """The render thread publishes frame after frame while the sink is stuck in a send; the frames it never
    got are counted as dropped."""
    hold = threading.Event()
    sink = RecordingSink(hold=hold)
    renderer, _, mailbox = make_renderer(loader, tmp_path, MAPPING)
    feed = SinkFeed(sink, mailbox, 20.0)
    feed.start()
    renderer.start()
    try:
        assert sink.sending.wait(60)
        stuck_at = mailbox.count
        assert support.wait_for(lambda: mailbox.count >= stuck_at + 10, 60)
        assert sink.frames == []
        hold.set()
        assert support.wait_for(lambda: feed.sent >= 2, 30)
    finally:
        hold.set()
        renderer.stop()
        renderer.join(30)
        feed.stop()
    assert feed.dropped >= 9 and feed.sent + feed.dropped <= mailbox.count
    assert f"{feed.sent} sent, {feed.dropped} dropped" in feed.status()


def test_a_slow_sink_drops_frames_and_counts_them(feed_of):
    hold = threading.Event()
    sink = RecordingSink(hold=hold)
    feed = feed_of(sink)
    feed.mailbox.put(frame(0))
    assert sink.sending.wait(10)
    for k in range(1, 51):  # published while the sink is busy with frame 0
        feed.mailbox.put(frame(k))
    hold.set()
    assert support.wait_for(lambda: sink.frames[-1:] == [50])
    assert sink.frames == [0, 50] and feed.dropped == 49 and feed.sent == 2


def test_a_sink_that_cannot_open_says_why_in_one_line_and_stays_off(feed_of, caplog):
    sink = RecordingSink(fail_open="no loopback device")
    with caplog.at_level(logging.ERROR):
        feed = feed_of(sink)
        feed.mailbox.put(frame(1))
        assert support.wait_for(lambda: not feed._thread.is_alive())
    assert [r.getMessage() for r in caplog.records] == [
        "--sink recording could not start: no loopback device; playing without it"]
    feed.mailbox.put(frame(2))
    assert feed.status().startswith("off: RuntimeError: no loopback device") and sink.frames == []


def test_a_frame_that_fails_is_counted_and_the_next_is_sent(feed_of):
    sink = RecordingSink(fail_sends=2)
    feed = feed_of(sink)
    for k in (1, 2, 3):
        feed.mailbox.put(frame(k))
        assert support.wait_for(lambda k=k: feed.sent + feed.failed == k)
    assert sink.frames == [3] and feed.failed == 2 and "2 failed" in feed.status()


@pytest.mark.parametrize("name", ["syphon", "spout"])
def test_a_sink_for_another_platform_says_so_in_one_line(name):
    kind = KINDS[name]
    if sys.platform == kind.platform:
        pytest.skip(f"this is {kind.platform_name}: --sink {name} runs here (see the platform test)")
    with pytest.raises(SinkUnavailable) as raised:
        make_sink(name)
    assert str(raised.value) == (f"--sink {name} is for {kind.platform_name} only (this is {sys.platform}); "
                                 "playing without it")


@pytest.mark.parametrize("name,module", [("ndi", "NDIlib"), ("virtualcam", "pyvirtualcam")])
def test_a_missing_library_is_named_with_its_extra(name, module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(SinkUnavailable) as raised:
        make_sink(name)
    text = str(raised.value)
    assert f"pip install -e '.[{name}]'" in text and KINDS[name].library in text and "\n" not in text


def test_play_goes_on_without_the_sinks_that_cannot_run(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "NDIlib", None)
    with caplog.at_level(logging.ERROR):
        rig = start_rig(Config(sink="ndi,ndi"), EventQueue(), Mailbox())
    try:
        assert rig.feeds == [] and rig.status()["sink ndi"].startswith("off: --sink ndi needs ndi-python")
        assert len(caplog.records) == 1  # said once, though asked for twice
    finally:
        rig.close()


@pytest.mark.parametrize("name", ["syphon", "spout", "virtualcam"])
def test_the_platforms_sink_takes_frames(name):
    """Where the platform and library are here: open, frames, close, through the same contract."""
    try:
        sink = make_sink(name)
    except SinkUnavailable as exc:
        pytest.skip(str(exc))
    try:
        where = sink.open(64, 48, 30.0)
    except Exception as exc:  # the library is here, the device or server is not (no v4l2loopback ...)
        pytest.skip(f"--sink {name} cannot open here: {exc}")
    try:
        assert where and "\n" not in where
        for k in range(5):
            sink.send(frame(k, size=(64, 48)).image)
    finally:
        sink.close()


def _private_network() -> str | None:
    """Why a private network namespace cannot be made here, or None when it can."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs Linux with unshare and ip"
    done = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, timeout=30)
    return None if done.returncode == 0 else f"unshare --net failed ({done.stderr.strip()[:100]}; needs root)"


def test_ndi_reaches_a_receiver():
    """A real NDI sender (the sink, fed by its feed) and receiver, in a network namespace of their own: NDI
    announces itself to every network, and no test touches the network."""
    pytest.importorskip("NDIlib", reason="ndi-python is not installed (pip install -e '.[ndi]')")
    why = _private_network()
    if why is not None:
        pytest.skip(f"NDI announces itself on every network; its test runs in a private one: {why}")
    script = Path(__file__).with_name("ndi_loopback.py")
    shell = 'ip link set lo up && ip link set lo multicast on && exec "$0" "$1"'
    done = subprocess.run(["unshare", "--net", "sh", "-c", shell, sys.executable, str(script)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [name for name in result.get("sources", []) if name.endswith("(rig test)")], result
    assert result["state"].startswith("announcing the NDI source 'rig test' to every network"), result
    assert result.get("size") == [64, 48], result
    assert np.abs(np.subtract(result["left"], (220, 120, 20))).max() <= 12, result
    assert np.abs(np.subtract(result["right"], (120, 30, 230))).max() <= 12, result
    assert result["sent"] >= 1


def test_play_goes_on_when_a_sinks_device_is_missing(loader, caplog):
    """``play --sink virtualcam`` where pyvirtualcam is installed but no camera device exists: one line,
    the HUD says the sink is off, and the frames go on."""
    pytest.importorskip("pyvirtualcam", reason="pyvirtualcam is not installed (pip install -e "
                        "'.[virtualcam]')")
    try:
        probe = make_sink("virtualcam")
        probe.open(64, 64, 15.0)
    except Exception as exc:
        reason = str(exc)
    else:
        probe.close()
        pytest.skip("a virtual camera device is here: the sink opens (see the platform test)")
    from instrument.play import Session

    config = Config(size=(64, 64), fps=15, headless=True, full_model="none", midi_ports="none",
                    sink="virtualcam")
    session = Session(config, load=loader)
    done: list[int] = []
    runner = threading.Thread(target=lambda: done.append(session.run()))
    with caplog.at_level(logging.ERROR, logger="instrument.sinks.feed"):
        runner.start()
        try:
            assert support.wait_for(lambda: session.rig is not None and not session.rig.feeds[0]._thread
                                    .is_alive(), 60)
            frames = session.renderer.frames
            assert support.wait_for(lambda: session.renderer.frames > frames + 3, 60)
            hud = dict(session.renderer.status.midi)
            assert hud["sink virtualcam"].startswith("off: ") and reason in hud["sink virtualcam"]
        finally:
            if session.renderer is not None:
                session.renderer.stop()
            runner.join(60)
    assert done == [0]
    said = [r.getMessage() for r in caplog.records if r.name == "instrument.sinks.feed"]
    assert said == [f"--sink virtualcam could not start: {reason}; playing without it"]
