"""The MIDI systems python-rtmidi can talk to (CoreMIDI, ALSA, JACK, Windows MM): which work here, opening
a client on one, and port names without the numbers a system appends.

Ports are named as the MIDI API lists them. ALSA appends ``client:port`` numbers ("nanoKONTROL2:nanoKONTROL2
MIDI 1 20:0") and Windows MM a port number ("nanoKONTROL2 1") that can change when a device is plugged in
again, so ports are matched and events are labelled by the name without them (``base_name``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator

import rtmidi

INSTRUMENT_NAME = "Latent Instrument"

# Our names for rtmidi's APIs; the first that works on a platform is used unless one is asked for.
APIS: dict[str, int] = {
    "coremidi": rtmidi.API_MACOSX_CORE,
    "alsa": rtmidi.API_LINUX_ALSA,
    "jack": rtmidi.API_UNIX_JACK,
    "winmm": rtmidi.API_WINDOWS_MM,
}
PLATFORM_APIS: dict[str, list[str]] = {"darwin": ["coremidi"], "linux": ["alsa", "jack"], "win32": ["winmm"]}
VIRTUAL_APIS = {"coremidi", "alsa", "jack"}  # Windows MM has no virtual ports

# Messages rtmidi may hold for a reader that polls it (it drops and warns beyond that): seconds of a flood.
RTMIDI_QUEUE = 1 << 16
# Seconds to wait after closing a JACK client (see close_client).
JACK_SETTLE = 0.05

_PORT_NUMBERS = {"alsa": re.compile(r"\s+\d+:\d+$"), "winmm": re.compile(r"\s+\d+$")}


class MidiUnavailable(RuntimeError):
    """No MIDI API could be opened; the message says why for each one tried."""


def base_name(port_name: str, api: str | None = "alsa") -> str:
    """A port's name without the numbers ``api`` appends (ALSA ``client:port``, Windows MM an index), which
    change between plug-ins."""
    pattern = _PORT_NUMBERS.get(api or "")
    return port_name if pattern is None else pattern.sub("", port_name)


def api_names() -> list[str]:
    """The APIs this python-rtmidi was built with, by our names, in the platform's order of preference."""
    compiled = set(rtmidi.get_compiled_api())
    preferred = PLATFORM_APIS.get(sys.platform, list(APIS))
    ordered = preferred + [name for name in APIS if name not in preferred]
    return [name for name in ordered if APIS[name] in compiled]


def api_label(api: str) -> str:
    return rtmidi.get_api_display_name(APIS[api])


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr: ALSA and libjack print several lines when their system is missing, and the
    exception says it better."""
    sys.stderr.flush()  # what Python has buffered still belongs on the real stderr
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _why(api: str, error: Exception) -> str:
    text = str(error)
    if api == "alsa" and "sequencer" in text:
        return "no ALSA sequencer (/dev/snd/seq; is the snd-seq kernel module loaded?)"
    if api == "jack" and "not running" in text:
        return "no JACK server running"
    return text or type(error).__name__


def open_client(api: str, client_name: str = INSTRUMENT_NAME) -> rtmidi.MidiIn:
    """An rtmidi input client on ``api`` ("alsa", "jack", ...); raises MidiUnavailable saying why not."""
    if api not in APIS:
        raise MidiUnavailable(f"unknown MIDI API {api!r}; choose from auto, {', '.join(APIS)}")
    if APIS[api] not in rtmidi.get_compiled_api():
        raise MidiUnavailable(f"{api}: python-rtmidi was built without it (built with: "
                              f"{', '.join(api_names()) or 'nothing'})")
    try:
        with quiet_stderr():
            return rtmidi.MidiIn(APIS[api], client_name, RTMIDI_QUEUE)
    except rtmidi.RtMidiError as error:
        raise MidiUnavailable(f"{api_label(api)}: {_why(api, error)}") from None


def choose_api(api: str | None = None, client_name: str = INSTRUMENT_NAME) -> tuple[str, rtmidi.MidiIn]:
    """The first working API (``api`` None or "auto": in platform order) and a client on it. "off": none.

    Raises MidiUnavailable naming every API tried and why it failed.
    """
    if api == "off":
        raise MidiUnavailable("turned off (--midi-api off)")
    names = api_names() if api in (None, "auto") else [api]
    reasons = []
    for name in names:
        try:
            return name, open_client(name, client_name)
        except MidiUnavailable as error:
            reasons.append(str(error))
    raise MidiUnavailable("no MIDI system works: " + "; ".join(reasons or ["python-rtmidi has no API"]))


def close_client(midi: rtmidi.MidiIn | rtmidi.MidiOut) -> None:
    """Close an rtmidi client's port and the client, quietly (libjack complains at length when its server
    has gone). On JACK, then wait JACK_SETTLE: closing makes the server tell every other client about the
    new graph, and libjack crashes a client that unregisters a port while its notification thread is still
    handling that news (a race inside libjack), so the next close in this process waits for it to pass."""
    jack = midi.get_current_api() == rtmidi.API_UNIX_JACK
    with quiet_stderr():
        midi.close_port()
        midi.delete()
    if jack:
        time.sleep(JACK_SETTLE)
