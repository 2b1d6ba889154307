"""``latent-instrument ports``: which MIDI APIs work here and which ports each one sees."""

from __future__ import annotations

import argparse

import rtmidi

from instrument.midi.system import (
    APIS,
    INSTRUMENT_NAME,
    VIRTUAL_APIS,
    MidiUnavailable,
    api_label,
    api_names,
    open_client,
    quiet_stderr,
)


def configure_ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", choices=["auto", *APIS], default="auto",
                        help="list only this MIDI API (default: every API this build has)")


def run_ports(args: argparse.Namespace) -> int:
    """Print each API with its input and output ports; 1 (and why) when no MIDI API works."""
    names = api_names() if args.api == "auto" else [args.api]
    working = 0
    for api in names:
        try:
            midi_in = open_client(api, f"{INSTRUMENT_NAME} ports")
        except MidiUnavailable as error:
            print(str(error).replace(": ", ": not available: ", 1) + "\n")
            continue
        working += 1
        try:
            inputs = midi_in.get_ports()
        finally:
            midi_in.delete()
        outputs = _outputs(api)
        print(f"{api_label(api)} (--midi-api {api})")
        print("  inputs, which the instrument can listen to (--midi-ports NAME, PART OF A NAME or INDEX):")
        print("\n".join(f"    {i}: {name}" for i, name in enumerate(inputs)) or "    none")
        if outputs is not None:
            print("  outputs:")
            print("\n".join(f"    {i}: {name}" for i, name in enumerate(outputs)) or "    none")
        if api in VIRTUAL_APIS:
            print(f"  virtual input: while playing, other programs can send to {INSTRUMENT_NAME!r}")
        else:
            print(f"  virtual input: not supported by {api_label(api)} (a loopback driver such as loopMIDI "
                  "does the job)")
        print()
    if not working:
        print("No MIDI system works here" + ("" if names else " (python-rtmidi was built without one)")
              + ". The instrument still plays with the computer keyboard and mouse.")
        return 1
    return 0


def _outputs(api: str) -> list[str] | None:
    try:
        with quiet_stderr():
            midi_out = rtmidi.MidiOut(APIS[api], f"{INSTRUMENT_NAME} ports")
    except rtmidi.RtMidiError:
        return None
    try:
        return midi_out.get_ports()
    finally:
        midi_out.delete()
