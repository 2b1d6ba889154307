"""jackd stopped and started again under a running MidiListener, in a process of its own (the test runs it).

    python jack_restart_scenario.py SERVER_NAME

Starts its own JACK server (never the session's: the whole server goes down), a listener with its virtual
port and a sender's port, kills the server, starts it again, and checks that the listener says so, re-creates
the virtual port, and hears both ports again. Prints one JSON object of what it saw; exits 0 (77 when jackd
would not start).

A process of its own, with the sender in another: libjack keeps process-wide state about its server, and a
client of a dead server still open in the process when a new one connects cannot be closed safely after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import rtmidi

from instrument.events import EventQueue
from instrument.midi.listener import MidiListener
from instrument.midi.system import close_client, quiet_stderr

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import wait_for  # noqa: E402

from midi.helpers import SenderProcess  # noqa: E402

CLIENT = "Latent Restart Test"
NO_SERVER = 77  # the exit status when jackd would not start (a machine may run only so many JACK servers)


def start_jackd(name: str, log_file, up) -> subprocess.Popen:
    """jackd under ``name``, its output to ``log_file``; waits until ``up()``."""
    process = subprocess.Popen(["jackd", "--no-realtime", "--sync", "-n", name, "-d", "dummy", "-r", "48000",
                                "-p", "256"], stdout=log_file, stderr=subprocess.STDOUT, text=True)
    if not wait_for(lambda: up() or process.poll() is not None, timeout=20, interval=0.05) or process.poll():
        process.kill()
        log_file.seek(0)
        print(f"jackd did not start ({process.wait()}): {log_file.read()[-1500:]}", file=sys.stderr)
        raise SystemExit(NO_SERVER)
    return process


def accepts_clients() -> bool:
    try:
        with quiet_stderr():
            rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "probe").delete()
    except rtmidi.RtMidiError:
        return False
    return True


def arrives(send, queue: EventQueue, data: list[int], timeout: float = 10.0) -> bool:
    """Send ``data`` until it comes out of ``queue`` (a new connection takes a few periods)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send(data)
        time.sleep(0.05)
        if any(e.message.bytes() == data for e in queue.drain()):
            return True
    return False


def to_virtual_port() -> tuple[rtmidi.MidiOut, bool]:
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "virtual-sender")
    ports = [i for i, n in enumerate(out.get_ports()) if n.startswith(CLIENT)]
    if ports:
        out.open_port(ports[0])
    return out, bool(ports)


def main() -> None:
    name = sys.argv[1]
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    with tempfile.TemporaryFile(mode="w+") as log_file:  # a file, not a pipe: a full pipe stalls the server
        scenario(name, log_file)


def scenario(name: str, log_file) -> None:
    seen: dict[str, object] = {}
    jackd = start_jackd(name, log_file, accepts_clients)
    queue = EventQueue()
    listener = MidiListener(queue, ports=["restart-sender"], api="jack", client_name=CLIENT,
                            poll_interval=0.1)
    listener.start()
    sender = SenderProcess("restart-sender")
    try:
        seen["before"] = arrives(sender.send, queue, [0x90, 60, 1])
        jackd.kill()  # it dies: it leaves its slot in JACK's server registry, which only its name reclaims
        jackd.wait()
        jackd = None
        seen["gone_said"] = wait_for(lambda: "server gone" in listener.status()["midi"], timeout=5)
        seen["status_gone"] = listener.status()
        sender.kill()  # it went with the server (a program of its own would have to reconnect too)
        # Only the listener may open a client now: one opened here while it closes or probes could meet
        # libjack's clean-up of the old server's clients.
        jackd = start_jackd(name, log_file, lambda: "server back" in listener.status()["midi"])
        seen["back_said"] = "server back" in listener.status()["midi"]
        sender = SenderProcess("restart-sender")
        seen["port_reopened"] = wait_for(lambda: listener.status().get("port restart-sender:out") == "open",
                                         timeout=10)
        seen["after"] = arrives(sender.send, queue, [0x90, 61, 2])
        out, seen["virtual_listed"] = to_virtual_port()
        try:
            seen["virtual_after"] = arrives(out.send_message, queue, [0xC0, 7])
        finally:
            close_client(out)
        seen["status_back"] = listener.status()
    finally:
        listener.stop()
        sender.close()
        if jackd is None:  # stopped between the kill and the restart: reclaim the slot
            jackd = start_jackd(name, log_file, accepts_clients)
        jackd.terminate()
        jackd.wait()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
