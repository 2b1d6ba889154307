"""MIDI input: ports through python-rtmidi (listener), tempo and beat from MIDI clock, message decoders."""
