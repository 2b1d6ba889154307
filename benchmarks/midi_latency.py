"""MIDI input latency through a real JACK server: send N CC messages, time each one to the queue and out.

    python benchmarks/midi_latency.py [--n 2000] [--interval 0.002] [--period 256]

Starts a private ``jackd --no-realtime --sync -d dummy`` (no sound card needed), opens a JACK output port,
and a MidiListener on it. Each message gets a unique (control, value), so its send time is known. Three
spans, in milliseconds:

- send -> callback: from ``send_message`` to our parse-and-enqueue code (the JACK period: the sender's port
  is read once per period; plus the JACK reader's sweep, at most READ_INTERVAL),
- callback -> queue: parsing the bytes and ``EventQueue.put`` (our code only),
- send -> drained: the whole path, with a drain loop at 1 kHz (a render thread draining once per frame adds
  up to one frame on top: 17 ms at 60 fps).

Writes benchmarks/results/midi_latency.md and .json. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rtmidi  # noqa: E402

from instrument.events import ControlEvent, EventQueue  # noqa: E402
from instrument.midi.listener import READ_INTERVAL, MidiListener, quiet_stderr  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


class TimedQueue(EventQueue):
    """An EventQueue that notes when each put finished, by message (control, value)."""

    def __init__(self) -> None:
        super().__init__(maxlen=65536)
        self.put_done: dict[tuple[int, int], float] = {}

    def put(self, event: ControlEvent) -> None:
        super().put(event)
        message = event.message
        if message.type == "control_change":
            self.put_done[message.control, message.value] = time.monotonic()


def start_jack(period: int, rate: int) -> subprocess.Popen:
    """A private JACK server; JACK_DEFAULT_SERVER is set for this process. Waits until it takes clients."""
    if shutil.which("jackd") is None:
        raise SystemExit("jackd is not installed (apt install jackd2)")
    name = f"latent-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    command = ["jackd", "--no-realtime", "--sync", "-n", name, "-d", "dummy", "-r", str(rate),
               "-p", str(period)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"jackd exited with {process.returncode}")
        try:
            with quiet_stderr():
                rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "probe").delete()
            return process
        except rtmidi.RtMidiError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("jackd did not accept clients within 15 s")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p99": at(0.99), "max": ordered[-1], "mean": statistics.fmean(ordered)}


def measure(n: int, interval: float) -> dict[str, dict[str, float]]:
    queue = TimedQueue()
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "bench-sender")
    out.open_virtual_port("out")
    listener = MidiListener(queue, ports=["bench-sender:out"], api="jack", virtual=False)
    if not listener.start():
        raise SystemExit("the listener could not start")
    drained: dict[tuple[int, int], tuple[float, float]] = {}  # key -> (callback time, drained time)
    stop = threading.Event()

    def drain_loop() -> None:
        while not stop.is_set():
            now = time.monotonic()
            for event in queue.drain():
                if event.message.type == "control_change":
                    drained[event.message.control, event.message.value] = (event.time, now)
            time.sleep(0.001)

    drainer = threading.Thread(target=drain_loop)
    drainer.start()
    sent: dict[tuple[int, int], float] = {}
    try:
        while not drained:  # a new JACK connection takes effect a few periods later: wait for it
            out.send_message([0xB0, 127, 0])  # a control the measured sends never use
            time.sleep(0.02)
        time.sleep(0.1)
        drained.clear()
        queue.put_done.clear()
        start = time.monotonic()
        for i in range(n):
            key = (i % 120, i // 120)  # the same control only every 120 sends: nothing is coalesced
            # Spaced unevenly (a 0.37 ms step on top) so that sends fall at every phase of the JACK period.
            time.sleep(max(0.0, start + i * interval + (i * 0.00037) % 0.005 - time.monotonic()))
            sent[key] = time.monotonic()
            out.send_message([0xB0, *key])
        deadline = time.monotonic() + 5
        while len(drained) < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        drainer.join()
        listener.stop()
        out.close_port()
        out.delete()
    keys = [k for k in sent if k in drained and k in queue.put_done]
    if len(keys) < n:
        print(f"warning: {n - len(keys)} of {n} messages did not arrive", file=sys.stderr)
    ms = 1000.0
    return {
        "send_to_callback_ms": percentiles([(drained[k][0] - sent[k]) * ms for k in keys]),
        "callback_to_queue_ms": percentiles([(queue.put_done[k] - drained[k][0]) * ms for k in keys]),
        "send_to_drained_ms": percentiles([(drained[k][1] - sent[k]) * ms for k in keys]),
        "arrived": {"count": len(keys)},
    }


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    jackd = subprocess.run(["jackd", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"platform": platform.platform(), "cpu": cpu, "cores": str(os.cpu_count()),
            "python": platform.python_version(), "python-rtmidi": importlib.metadata.version("python-rtmidi"),
            "RtMidi": rtmidi.get_rtmidi_version(), "jackd": jackd[0] if jackd else "?",
            "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg")
            else "?"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="CC messages to send (at most 15360)")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between sends")
    parser.add_argument("--period", type=int, default=256, help="JACK period in frames")
    parser.add_argument("--rate", type=int, default=48000, help="JACK sample rate")
    args = parser.parse_args()
    if not 1 <= args.n <= 120 * 128:
        parser.error("--n must be 1..15360 (each message needs its own control and value)")
    server = start_jack(args.period, args.rate)
    try:
        results = measure(args.n, args.interval)
    finally:
        server.terminate()
        server.wait(5)
    period_ms = 1000 * args.period / args.rate
    record = {
        "benchmark": "midi_latency", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "api": "JACK (python-rtmidi, dummy driver, --no-realtime --sync)", "n": args.n,
        "interval_s": args.interval, "jack_period_frames": args.period, "jack_rate": args.rate,
        "jack_period_ms": round(period_ms, 3), "reader_interval_ms": READ_INTERVAL * 1000,
        "machine": machine(), "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "midi_latency.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [f"| {name.removesuffix('_ms').replace('_', ' ')} | {r['p50']:.3f} | {r['p99']:.3f} | "
            f"{r['max']:.3f} |" for name, r in results.items() if name.endswith("_ms")]
    m = record["machine"]
    table = "\n".join(["| span (ms) | p50 | p99 | max |", "|---|---|---|---|", *rows])
    (RESULTS / "midi_latency.md").write_text(
        f"# MIDI input latency\n\n`python benchmarks/midi_latency.py --n {args.n} --interval {args.interval} "
        f"--period {args.period}` on {record['date']}.\n\n"
        f"API: {record['api']}, period {args.period} frames at {args.rate} Hz ({period_ms:.2f} ms). "
        f"{results['arrived']['count']} of {args.n} CC messages arrived.\n"
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}, "
        f"python-rtmidi {m['python-rtmidi']} (RtMidi {m['RtMidi']}), {m['jackd']}; load average "
        f"{m['load average (1 min) at start']} (other work shared the machine).\n\n{table}\n\n"
        "send -> callback is mostly the JACK period (a message waits for the next cycle) plus the JACK "
        f"reader's sweep ({READ_INTERVAL * 1000:.0f} ms); callback -> queue is our parse and put; send -> "
        "drained is the whole path with a 1 kHz drain loop. A render thread drains once per frame, which "
        "adds up to one frame.\n")
    print(table)
    print(f"wrote {RESULTS / 'midi_latency.md'} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
