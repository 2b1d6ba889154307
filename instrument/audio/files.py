"""Sound files read in blocks of mono samples: WAV with the standard library, every other format (FLAC, OGG,
MP3, AIFF ...) and float WAV with ``soundfile`` (``pip install 'latent-instrument[audio]'``) when installed.

``open_audio(path)`` checks the file at once (a missing, empty, damaged or non-sound file is an ``AudioError``
naming it, before anything plays) and returns an ``AudioFile`` whose ``blocks(n)`` yields float64 mono
blocks in [-1, 1]: channels are averaged, so a stereo mix is heard whole.
"""

from __future__ import annotations

import contextlib
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from instrument.errors import UserError, file_problem

BLOCK = 1 << 14  # samples read at a time: a long song never needs to fit in memory


class AudioError(UserError):
    """A sound source that cannot be used; the message names it."""


class AudioFile:
    """A sound file's ``rate`` (Hz), ``frames`` (samples per channel), ``channels`` and mono ``blocks``."""

    def __init__(self, path: Path, rate: int, frames: int, channels: int, reader: str) -> None:
        self.path, self.rate, self.frames, self.channels, self.reader = path, rate, frames, channels, reader

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Mono float64 blocks of ``size`` samples (the last one shorter), in order."""
        try:
            if self.reader == "soundfile":
                import soundfile

                with soundfile.SoundFile(str(self.path)) as f:
                    for block in f.blocks(blocksize=size, dtype="float64", always_2d=True):
                        yield block.mean(axis=1)
                return
            with contextlib.closing(wave.open(str(self.path), "rb")) as f:
                width = f.getsampwidth()
                while raw := f.readframes(size):
                    yield _pcm(raw, width).reshape(-1, self.channels).mean(axis=1)
        except (OSError, EOFError, wave.Error, RuntimeError, ValueError) as exc:
            raise AudioError(f"{self.path}: {exc}") from None


def _pcm(raw: bytes, width: int) -> np.ndarray:
    """Little-endian PCM samples of ``width`` bytes -> float64 in [-1, 1)."""
    usable = len(raw) - len(raw) % width
    data = np.frombuffer(raw[:usable], dtype=np.uint8)
    if width == 1:  # 8-bit WAV is unsigned
        return (data.astype(np.float64) - 128.0) / 128.0
    if width == 3:  # 24-bit: widen to 32 bits
        data = data.reshape(-1, 3)
        data = np.concatenate([np.zeros((len(data), 1), np.uint8), data], axis=1).reshape(-1)
        width = 4
    kind = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(data.tobytes(), dtype=kind).astype(np.float64) / float(2 ** (8 * width - 1))


def open_audio(path: str | Path) -> AudioFile:
    """The sound file at ``path``, checked; AudioError naming it and what to do when it cannot be read."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise AudioError(f"{path}: {problem}")
    try:
        import soundfile
    except ImportError:  # (also when its libsndfile is missing)
        soundfile = None
    if soundfile is not None:
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, OSError, ValueError) as exc:
            raise AudioError(f"{path}: not a sound file soundfile reads ({one_line(exc)})") from None
        return _checked(AudioFile(path, int(info.samplerate), int(info.frames), int(info.channels),
                                  "soundfile"))
    try:
        with contextlib.closing(wave.open(str(path), "rb")) as f:
            audio = AudioFile(path, f.getframerate(), f.getnframes(), f.getnchannels(), "wave")
            if f.getsampwidth() not in (1, 2, 3, 4):
                raise wave.Error(f"{8 * f.getsampwidth()}-bit samples")
    except (wave.Error, EOFError, OSError) as exc:
        hint = "" if path.suffix.lower() == ".wav" else " (other formats than PCM WAV need soundfile: pip " \
                                                        "install 'latent-instrument[audio]')"
        raise AudioError(f"{path}: not a PCM WAV file: {one_line(exc)}{hint}") from None
    return _checked(audio)


def _checked(audio: AudioFile) -> AudioFile:
    if audio.frames <= 0 or audio.channels <= 0:
        raise AudioError(f"{audio.path}: holds no sound")
    if not 1000 <= audio.rate <= 768_000:
        raise AudioError(f"{audio.path}: a sample rate of {audio.rate} Hz is not one of sound")
    return audio


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
