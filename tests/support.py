"""Helpers that more than one test folder uses (pytest puts ``tests/`` on the path: ``import support``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class Sender:
    """A JACK client with one virtual output port ``<client>:out`` that a listener can open by name,
    standing in for a controller."""

    def __init__(self, client: str) -> None:
        import rtmidi

        self.client = client
        self.port_name = f"{client}:out"
        self.midi = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
        self.midi.open_virtual_port("out")

    def send(self, data: list[int]) -> None:
        self.midi.send_message(data)

    def close(self) -> None:
        self.midi.close_port()
        self.midi.delete()


def as_played(rendered: list[dict], live: list[dict]) -> tuple[dict, dict]:
    """(the re-render's coordinates at the frames the take played, the take's own), by frame number: a
    re-render also draws the frames the live loop skipped, so lists of frames do not line up by index."""
    again = {line["n"]: line["coords"] for line in rendered}
    played = {line["n"]: line["coords"] for line in live}
    return {n: again.get(n) for n in played}, played


def assert_as_played(result, rendered: list[dict], live: list[dict]) -> None:
    """A re-render of a take played on a real (busy) clock: the frames played before any stall are exactly
    as played, and each one that differs after it is counted as following a stall (an event the live loop
    applied late, which the re-render puts at its own time)."""
    again, played = as_played(rendered, live)
    differ = sum(again[n] != played[n] for n in played)
    assert result.mismatches == 0 and differ == result.after_stall, (result.mismatches, differ,
                                                                     result.after_stall)
