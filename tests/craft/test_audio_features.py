"""Audio features from real WAV files: onsets on the clicks, tempo and phase, band energies, silence, and
the same features whatever the blocks; hostile files give one-line errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from instrument.audio import FeatureExtractor, open_audio
from instrument.audio.files import AudioError

from .conftest import RATE, click_track, tone, write_wav


def analyse(path, block: int = 4096):
    audio = open_audio(path)
    extractor = FeatureExtractor(audio.rate)
    out = []
    for samples in audio.blocks(block):
        out += extractor.feed(samples)
    return out


def phase_distance(phase: float) -> float:
    """How far a beat phase in [0, 1) is from a beat (0 or 1)."""
    return min(phase, 1.0 - phase)


@pytest.mark.parametrize("width, channels", [(2, 1), (3, 2), (1, 1), (4, 2)])
def test_onsets_land_on_the_clicks_and_nowhere_else(tmp_path, width, channels):
    samples, clicks = click_track(8.0, 120)
    features = analyse(write_wav(tmp_path / "clicks.wav", samples, width=width, channels=channels))
    onsets = np.array([f.at for f in features if f.onset])
    hop = features[0].at
    assert len(onsets) == len(clicks), (onsets, clicks)
    late = onsets - clicks
    assert (late >= 0).all() and (late <= hop + 0.005).all(), late  # in the hop the click came in


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_tempo_and_beat_phase_follow_the_clicks(tmp_path, bpm):
    samples, clicks = click_track(10.0, bpm, first=0.3)
    features = analyse(write_wav(tmp_path / "clicks.wav", samples))
    settled = [f for f in features if f.at > 5.0]
    assert all(abs(f.tempo - bpm) < 0.02 * bpm for f in settled), {round(f.tempo, 1) for f in settled}
    assert all(f.tempo == 0 for f in features if f.at < 1.0)  # not said before enough onsets
    on_clicks = [f.beat for f in settled if f.onset]
    assert on_clicks and max(phase_distance(p) for p in on_clicks) < 0.05, on_clicks
    halfway = [f.beat for f in settled if any(abs(f.at - (c + 30 / bpm)) < 0.005 for c in clicks)]
    assert halfway and all(abs(p - 0.5) < 0.06 for p in halfway), halfway


def test_band_energies_and_level_tell_bass_from_treble(tmp_path):
    def mean_bands(hz: float, amplitude: float = 0.5):
        path = write_wav(tmp_path / f"{hz}.wav", tone(1.0, hz, amplitude=amplitude))
        features = analyse(path)[10:]  # past the first window
        return {name: float(np.mean([getattr(f, name) for f in features])) for name in
                ("level", "low", "mid", "high")}

    bass, voice, hiss = mean_bands(80), mean_bands(1000), mean_bands(9000)
    assert bass["low"] > 0.8 and bass["mid"] < 0.3 and bass["high"] < 0.2
    assert voice["mid"] > 0.8 and voice["low"] < 0.4 and voice["high"] < 0.3
    assert hiss["high"] > 0.8 and hiss["low"] < 0.3 and hiss["mid"] < 0.3
    # A sine at half scale is 9 dB below full scale: 51/60 of the way up from -60 dB.
    assert bass["level"] == pytest.approx(51 / 60, abs=0.01)
    quieter = mean_bands(80, amplitude=0.05)
    assert quieter["level"] == pytest.approx(31 / 60, abs=0.01) and quieter["low"] < bass["low"] - 0.3


def test_silence_and_steady_sound_start_once_and_then_say_nothing(tmp_path):
    silent = analyse(write_wav(tmp_path / "silence.wav", np.zeros(RATE * 2)))
    assert not any(f.onset for f in silent) and all(f.level == 0 and f.low == 0 for f in silent)
    assert all(f.tempo == 0 for f in silent)
    rng = np.random.default_rng(3)
    for name, samples in (("tone", tone(3.0, 440)), ("noise", rng.normal(0, 0.2, RATE * 3))):
        onsets = [f.at for f in analyse(write_wav(tmp_path / f"{name}.wav", samples)) if f.onset]
        assert len(onsets) <= 1 and all(t < 0.05 for t in onsets), (name, onsets)


def test_the_same_sound_gives_the_same_features_in_any_blocks(tmp_path):
    samples, _ = click_track(4.0, 128, noise=0.05)
    path = write_wav(tmp_path / "clicks.wav", samples)
    assert analyse(path, 4096) == analyse(path, 333) == analyse(path, 100_000)


def test_broken_samples_read_as_silence():
    extractor = FeatureExtractor(RATE)
    block = np.full(RATE // 10, np.nan)
    block[::7] = np.inf
    features = extractor.feed(block) + extractor.feed(np.full(RATE // 10, -np.inf))
    assert len(features) == 20 and not any(f.onset for f in features)
    assert all(np.isfinite([f.level, f.low, f.mid, f.high, f.beat, f.tempo]).all() for f in features)
    with pytest.raises(ValueError, match="sample rate"):
        FeatureExtractor(10)


def test_float_wav_and_other_formats_through_soundfile(tmp_path):
    soundfile = pytest.importorskip("soundfile", reason="soundfile (the [audio] extra) is not installed")
    samples, clicks = click_track(4.0, 120)
    soundfile.write(str(tmp_path / "clicks.flac"), samples, RATE)
    soundfile.write(str(tmp_path / "float.wav"), samples.astype(np.float32), RATE, subtype="FLOAT")
    pcm = write_wav(tmp_path / "pcm.wav", samples)
    for path in (tmp_path / "clicks.flac", tmp_path / "float.wav", pcm):
        onsets = [f.at for f in analyse(path) if f.onset]
        assert len(onsets) == len(clicks), path


def test_without_soundfile_pcm_wav_still_reads_and_others_say_what_to_install(tmp_path, monkeypatch):
    import sys

    samples, clicks = click_track(3.0, 120)
    pcm = write_wav(tmp_path / "pcm.wav", samples)
    (tmp_path / "song.flac").write_bytes(b"fLaC" + bytes(200))
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if not installed
    assert open_audio(pcm).reader == "wave"
    assert len([f for f in analyse(pcm) if f.onset]) == len(clicks)
    with pytest.raises(AudioError, match=r"song.flac: not a PCM WAV file.*latent-instrument\[audio\]"):
        open_audio(tmp_path / "song.flac")


@pytest.mark.parametrize("use_soundfile", [True, False])
def test_hostile_files_are_one_line_errors_naming_the_file(tmp_path, monkeypatch, use_soundfile):
    import sys

    if not use_soundfile:
        monkeypatch.setitem(sys.modules, "soundfile", None)
    elif "soundfile" not in sys.modules:
        pytest.importorskip("soundfile")
    good = write_wav(tmp_path / "good.wav", tone(0.5, 440))
    cases = {
        "missing.wav": None,
        "empty.wav": b"",
        "text.wav": b"this is not a sound file\n" * 20,
        "page.wav": b"<!doctype html><html>404</html>",
        "header.wav": good.read_bytes()[:30],
        "zero-rate.wav": good.read_bytes()[:24] + bytes(4) + good.read_bytes()[28:],
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(AudioError) as caught:
            open_audio(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(str(tmp_path / name)) and "\n" not in message, message
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError, match="folder"):
        open_audio(tmp_path / "folder.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(AudioError, match="FIFO"):
        open_audio(tmp_path / "pipe.wav")


def test_a_truncated_file_reads_what_is_there(tmp_path):
    samples, clicks = click_track(4.0, 120)
    data = write_wav(tmp_path / "clicks.wav", samples).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2 + 1])  # half the samples, and half a sample
    onsets = [f.at for f in analyse(cut) if f.onset]
    assert len(onsets) == sum(clicks < 2.0)
