"""Live audio in (``AudioInput``): a click track played into the instrument's input over JACK's dummy
backend through PortAudio's JACK host API (in a process of its own: ``jack_clicks``), a sound file played
in real time, and inputs that are not there. The onsets must come at the clicks' times, on the events'
clock."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mapping.helpers import Rig

from instrument.audio.files import AudioError
from instrument.audio.stream import AudioInput, find_input
from instrument.events import AudioFeatures, ControlEvent, EventQueue

from .conftest import RATE, click_track, write_wav

HOP = 0.01  # seconds: the features' hop (audio.features.HOP_SECONDS)
TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


def drain_until(queue: EventQueue, source: AudioInput, seconds: float) -> list:
    """Every event ``source`` puts on ``queue`` within ``seconds``, each checked not to be early: an event is
    stamped with the time its hop's last sample arrived, so it is never on the queue before that time."""
    events, end = [], time.monotonic() + seconds
    while time.monotonic() < end and source.error is None:
        time.sleep(0.02)
        now = time.monotonic()
        fresh = queue.drain()
        assert all(e.time <= now for e in fresh)
        events += fresh
    return events


def test_a_click_track_over_jack_gives_onsets_at_the_clicks(jack_server, tmp_path):
    if shutil.which("jack_connect") is None:
        pytest.skip("jack_connect is not installed (it comes with jackd2)")
    if importlib.util.find_spec("sounddevice") is None:  # (not imported here: see jack_clicks)
        pytest.skip("sounddevice (PortAudio) is not installed")
    samples, clicks = click_track(4.0, 120, first=0.5)
    track = tmp_path / "clicks.npy"
    np.save(track, samples)
    with open(track, "rb") as stdin:  # (the JACK server's name is in the environment)
        done = subprocess.run([sys.executable, "-m", "craft.jack_clicks", "5.0"], stdin=stdin, cwd=TESTS,
                              env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{TESTS}"},
                              capture_output=True, text=True, timeout=120)
    if done.returncode and "no audio input 'jack'" in done.stderr:
        pytest.skip("this PortAudio has no JACK host API")
    assert done.returncode == 0, done.stderr
    heard = json.loads(done.stdout.splitlines()[-1])
    assert "error" not in heard and heard["api"].startswith("JACK") and not heard["overruns"], heard
    events = heard["events"]  # (time, source, onset, whether it came no earlier than its time)
    assert events and all(source == "audio:jack" and in_time for _, source, _, in_time in events)
    onsets = np.array([t for t, _, onset, _ in events if onset]) - heard["start"]
    assert len(onsets) == len(clicks), (onsets, clicks)
    # The sample clock keeps the clicks' spacing to within a hop, however late the callbacks ran; each
    # onset comes after its click, by the JACK periods between the two clients and the hop.
    assert np.abs(np.diff(onsets) - np.diff(clicks)).max() <= HOP + 0.002, np.diff(onsets)
    assert ((onsets - clicks > -0.005) & (onsets - clicks < 0.25)).all(), onsets - clicks

    rig = Rig("controls:\n  - {audio: onset, param: next}\n")  # the onsets press a mapping's button
    for t, source, onset, _ in events:
        rig.engine.apply(ControlEvent(t, source, AudioFeatures(t, 0.0, 0.0, 0.0, 0.0, onset, 0.0, 0.0)))
    assert rig.state.pop_actions() == [("anchor", -1)] * len(clicks)


def test_a_file_played_in_real_time_puts_each_hop_on_the_queue_at_its_time(tmp_path):
    samples, clicks = click_track(1.6, 150, first=0.2)
    path = write_wav(tmp_path / "clicks.wav", samples)
    queue = EventQueue()
    source = AudioInput(queue, str(path), monitor=False)
    began = time.monotonic()
    source.start()
    try:
        events = drain_until(queue, source, 2.5)
    finally:
        source.stop()
        source.join(5.0)
    assert source.error is None and source.state == "ended", source.status()
    assert len(events) == int(1.6 / HOP) and source.name == "audio:file:clicks.wav"
    zero = {round(e.time - e.message.at, 9) for e in events}  # one clock: the file's second 0
    assert len(zero) == 1 and 0 <= zero.pop() - began < 0.5
    at = np.array([e.message.at for e in events if e.message.onset])
    assert len(at) == len(clicks) and ((at - clicks >= 0) & (at - clicks <= HOP + 0.005)).all()


def test_stop_ends_a_long_file_at_once(tmp_path):
    path = write_wav(tmp_path / "long.wav", np.zeros(RATE * 60))
    source = AudioInput(EventQueue(), str(path), monitor=False)
    source.start()
    time.sleep(0.2)
    asked = time.monotonic()
    source.stop()
    source.join(5.0)
    assert not source._thread.is_alive() and time.monotonic() - asked < 1.0
    assert source.state == "stopped"


def test_an_input_that_is_not_there_is_a_one_line_error_listing_those_that_are(monkeypatch):
    # PortAudio here must not join the tests' JACK server: it would outlive it and abort at exit.
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "latent-test-no-server")
    pytest.importorskip("sounddevice", reason="sounddevice (PortAudio) is not installed")
    with pytest.raises(AudioError, match=r"^no audio input 'no such microphone'; inputs here: ") as caught:
        find_input("no such microphone")
    assert "\n" not in str(caught.value)
    with pytest.raises(AudioError, match="missing.wav"):
        AudioInput(EventQueue(), "missing.wav")  # a file that is not there is not taken for a device
