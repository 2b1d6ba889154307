"""A controller in a process of its own, to be killed: ``python sender_process.py CLIENT``.

Opens a JACK output port ``CLIENT:out``, prints "ready", then sends each line read from stdin (bytes as
decimal numbers) until stdin closes. The JACK server is the one ``JACK_DEFAULT_SERVER`` names.
"""

from __future__ import annotations

import sys

import rtmidi


def main() -> None:
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, sys.argv[1])
    out.open_virtual_port("out")
    print("ready", flush=True)
    for line in sys.stdin:
        out.send_message([int(byte) for byte in line.split()])


if __name__ == "__main__":
    main()
