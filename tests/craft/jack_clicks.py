"""Run by ``test_audio_in`` in a process of its own: plays a click track into the instrument's audio input
over the JACK server named in the environment (PortAudio's JACK host API) and prints, as JSON, what the
input heard. A process of its own, because libjack keeps process-wide state (it saves and later restores
the signal mask of the thread that opens its first client) that must not leak into the test process."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import sounddevice as sd

from instrument.audio.stream import AudioInput
from instrument.events import EventQueue

RATE = 48_000


def jack_ports(kind: str) -> list[str]:
    """PortAudio's JACK ports of ``kind`` ("in" or "out")."""
    listed = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=10).stdout.split()
    return [port for port in listed if port.startswith("PortAudio") and f":{kind}_" in port]


def main(seconds: float) -> dict:
    samples = np.load(sys.stdin.buffer).astype(np.float32)
    played: dict[str, float | int] = {"at": 0}  # samples played since the track started, and when it did

    def play(out, frames, timing, status) -> None:  # PortAudio's thread: silence until the wires are in
        out.fill(0.0)
        if "start" in played:
            at = int(played["at"])
            chunk = samples[at:at + frames]
            out[:len(chunk), 0] = chunk
            played["at"] = at + frames

    queue = EventQueue()
    source = AudioInput(queue, "jack")  # the JACK server's inputs, found by their host API's name
    api = sd.query_hostapis(sd.query_devices(source.device)["hostapi"])["name"]
    source.start()
    events = []
    try:
        deadline = time.monotonic() + 10
        while not source.state.startswith("listening"):  # (PortAudio opens one stream at a time)
            if time.monotonic() > deadline or source.error:
                return {"error": source.status()}
            time.sleep(0.05)
        with sd.OutputStream(device=source.device, channels=1, samplerate=RATE, callback=play):
            for port in jack_ports("in"):
                subprocess.run(["jack_connect", jack_ports("out")[0], port], check=True, timeout=10)
            played["start"] = time.monotonic()
            end = time.monotonic() + seconds
            while time.monotonic() < end and source.error is None:
                time.sleep(0.02)
                now = time.monotonic()
                fresh = queue.drain()
                events += [(e.time, e.source, e.message.onset, e.time <= now) for e in fresh]
    finally:
        source.stop()
        source.join(5.0)
    return {"api": api, "status": source.status(), "overruns": source.overruns, "start": played["start"],
            "events": events}


if __name__ == "__main__":
    print(json.dumps(main(float(sys.argv[1]))))
