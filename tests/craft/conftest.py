"""Fixtures and helpers for the performance-craft tests: sound made here (click tracks, tones, noise) and
written as real WAV files; the live tests' taef2 session for stepped renderers."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from live.conftest import SIZE, anchor_latents, session_loader  # noqa: F401 (fixtures used here too)

RATE = 48_000


def click_track(seconds: float, bpm: float, *, rate: int = RATE, first: float = 0.25,
                amplitude: float = 0.8, noise: float = 0.003, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mono samples, click times in seconds): short 6 kHz-ish bursts on every beat over quiet noise."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(0.0, noise, int(seconds * rate))
    times = np.arange(first, seconds - 0.05, 60.0 / bpm)
    burst = np.hanning(192) * np.sin(np.arange(192) * 0.8) * amplitude
    for t in times:
        i = int(round(t * rate))
        samples[i:i + len(burst)] += burst[: len(samples) - i]
    return samples, times


def tone(seconds: float, hz: float, *, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)


def write_wav(path: Path, samples: np.ndarray, *, rate: int = RATE, width: int = 2,
              channels: int = 1) -> Path:
    """A PCM WAV of ``samples`` (mono, [-1, 1]) with ``width`` bytes a sample, copied to ``channels``."""
    data = np.repeat(np.clip(samples, -1, 1)[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        raw = np.round(data * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.round(data * (2 ** 23 - 1)).astype("<i4").view(np.uint8).reshape(-1, 4)
        raw = ints[:, :3].tobytes()
    else:
        raw = np.round(data * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(raw)
    return path
