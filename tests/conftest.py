"""Shared fixtures. ``shared`` and ``taef2``: the assets in ``../shared`` (skipped without them).
``jack_server``: a private JACK server (dummy driver, no sound card) for real MIDI ports.

The server gets a unique name, set in ``os.environ["JACK_DEFAULT_SERVER"]`` for this process, so every JACK
client the tests (and the code under test) open talks to it and never to a user's own server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

JACK_START_TIMEOUT = 15.0


def _jack_accepts_clients() -> bool:
    import rtmidi

    from instrument.midi.listener import quiet_stderr

    try:
        with quiet_stderr():
            client = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "probe")
    except rtmidi.RtMidiError:
        return False
    client.delete()
    return True


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    """Start ``jackd --no-realtime --sync -d dummy`` under a unique server name; yields the name. Skips
    without jackd or without JACK support in python-rtmidi.

    ``--sync``: the server waits for every client to finish its cycle. Without it, a client thread that the
    (non-real-time, busy) test machine schedules late gets its MIDI buffers overwritten by the next cycle:
    events are lost and duplicated inside JACK, whatever the code under test does.
    """
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd is not installed (apt install jackd2): the MIDI tests need a JACK server")
    import rtmidi

    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("python-rtmidi was built without JACK support")
    name = f"latent-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    previous = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"  # a client must never start a server of its own
    # A file, not a pipe, for jackd's chatter: a full pipe would stall the server.
    with tempfile.TemporaryFile(mode="w+") as log_file:
        process = subprocess.Popen(
            [jackd, "--no-realtime", "--sync", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
            stdout=log_file, stderr=subprocess.STDOUT, text=True,
        )
        try:
            deadline = time.monotonic() + JACK_START_TIMEOUT
            while not _jack_accepts_clients():
                if process.poll() is not None:
                    log_file.seek(0)
                    pytest.skip(f"jackd exited at start ({process.returncode}): {log_file.read()[-500:]}")
                if time.monotonic() > deadline:
                    pytest.skip(f"jackd did not accept clients within {JACK_START_TIMEOUT:.0f} s")
                time.sleep(0.05)
            yield name
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` beside the checkout: the pretrained taef2 pair and five 512x512 images."""
    needed = [SHARED / "models" / "taef2_encoder.pth", SHARED / "models" / "taef2_decoder.pth",
              SHARED / "images" / "dog.png"]
    if not all(p.is_file() for p in needed):
        pytest.skip(f"shared models and images not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def taef2(shared):
    """The taef2 pair through the loader a user calls, on the CPU in fp32 (its encoder found beside it)."""
    from instrument.decoders import load_autoencoder

    return load_autoencoder(str(shared / "models" / "taef2_decoder.pth"), family="flux2", device="cpu",
                            dtype="fp32")
