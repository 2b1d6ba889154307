"""Sound as a control source: audio features that enter the event queue like MIDI.

``features`` (sound -> ``events.AudioFeatures`` per hop: level, low/mid/high, onset, beat, tempo), ``files``
(sound files in blocks), ``stream`` (``AudioInput``: a device or a file played in real time, analysed on its
own thread), ``offline`` (``render --audio``: features computed again from a file, the file muxed into the
video). A mapping binds the features like CCs (``{audio: low, param: noise}``); a take logs them, so it
re-renders as played.
"""

from instrument.audio.features import HOP_SECONDS, FeatureExtractor
from instrument.audio.files import AudioError, AudioFile, open_audio

__all__ = ["HOP_SECONDS", "AudioError", "AudioFile", "FeatureExtractor", "open_audio"]
