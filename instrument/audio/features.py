"""Sound to control values, one hop at a time: level, band energies, onsets, beat phase and tempo.

``FeatureExtractor(rate).feed(samples)`` takes mono float samples (any block size) and returns one
``events.AudioFeatures`` per completed hop of ``HOP_SECONDS``. The same samples give the same features
whatever the blocks, so a file analysed live and again by ``render --audio`` agrees.

- **level**: RMS of the hop; **low/mid/high**: mean power below ``LOW_HZ``, up to ``HIGH_HZ``, above it,
  from a Hann-windowed FFT of the last ``window`` samples. Each in dB full scale, -60..0 dB -> 0..1 (a
  full-scale sine is -3 dB).
- **onset**: spectral flux (the rise of log magnitude, summed over bins) above an adaptive threshold (a
  multiple of its recent mean plus a floor), while it rises, at most one per ``MIN_ONSET_GAP`` seconds, and
  only above ``GATE_DB``.
- **beat, tempo**: ``BeatTracker`` autocorrelates the last ``HISTORY_SECONDS`` of flux (with a soft
  preference for tempos near ``PREFERRED_BPM``) every ``UPDATE_SECONDS``, then finds the beat's phase by
  comb-summing the flux at that period. The phase runs on between updates; tempo is 0 until enough onsets
  were heard.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from instrument.events import AudioFeatures

HOP_SECONDS = 0.01
LOW_HZ, HIGH_HZ = 250.0, 4000.0
FLOOR_DB = -60.0  # dB full scale that reads as 0
GATE_DB = -50.0  # quieter than this, nothing is an onset
FLUX_GAIN = 100.0  # log(1 + gain * magnitude): compresses loud partials, so quiet attacks count
ONSET_RATIO = 1.5  # an onset's flux is this many times the recent mean ...
ONSET_FLOOR = 0.02  # ... plus this (flux per bin)
ONSET_MEMORY = 0.5  # seconds of flux that the threshold follows
MIN_ONSET_GAP = 0.05  # seconds
HISTORY_SECONDS = 6.0
UPDATE_SECONDS = 0.5
MIN_BPM, MAX_BPM, PREFERRED_BPM = 60.0, 200.0, 120.0
PREFERENCE_OCTAVES = 1.0  # width of the preference for PREFERRED_BPM (a log-normal weight)
MIN_ONSETS = 4  # onsets in the history before a tempo is said


def unit_db(power: float) -> float:
    """A mean-square power -> [0, 1] over FLOOR_DB..0 dB full scale."""
    db = 10.0 * math.log10(power) if power > 0 else FLOOR_DB
    return min(max((db - FLOOR_DB) / -FLOOR_DB, 0.0), 1.0)


class BeatTracker:
    """Tempo and beat phase from a stream of onset strengths, one per hop of ``hop_seconds``."""

    def __init__(self, hop_seconds: float) -> None:
        self.hop_seconds = hop_seconds
        self.flux: collections.deque[float] = collections.deque(maxlen=round(HISTORY_SECONDS / hop_seconds))
        self.onsets: collections.deque[int] = collections.deque()  # hop numbers of the onsets in history
        self.hops = 0
        self.period = 0.0  # hops per beat (0: unknown)
        self.last_beat = 0.0  # hop number of a beat
        self._every = max(1, round(UPDATE_SECONDS / hop_seconds))

    def feed(self, flux: float, onset: bool) -> tuple[float, float]:
        """One hop's flux and onset -> (beat phase in [0, 1), tempo in BPM or 0)."""
        self.flux.append(flux)
        if onset:
            self.onsets.append(self.hops)
        while self.onsets and self.onsets[0] <= self.hops - self.flux.maxlen:
            self.onsets.popleft()
        if self.hops % self._every == 0 and len(self.onsets) >= MIN_ONSETS:
            self._estimate()
        self.hops += 1
        if self.period <= 0:
            return 0.0, 0.0
        phase = float((self.hops - 1 - self.last_beat) / self.period) % 1.0
        return (0.0 if phase > 1.0 - 1e-6 else phase), float(60.0 / (self.period * self.hop_seconds))

    def _estimate(self) -> None:
        env = np.asarray(self.flux, dtype=np.float64)
        n = len(env)
        shortest = max(1, int(60.0 / (MAX_BPM * self.hop_seconds)))
        longest = min(n // 2, int(math.ceil(60.0 / (MIN_BPM * self.hop_seconds))))
        if longest <= shortest + 2:
            return
        centred = env - env.mean()
        lags = np.arange(shortest, longest + 1)
        ac = np.array([np.dot(centred[lag:], centred[:-lag]) / (n - lag) for lag in lags])
        preferred = 60.0 / (PREFERRED_BPM * self.hop_seconds)
        weight = np.exp(-0.5 * (np.log2(lags / preferred) / PREFERENCE_OCTAVES) ** 2)
        score = ac * weight
        best = int(np.argmax(score))
        if ac[best] <= 0:
            return
        offset = 0.0
        if 0 < best < len(lags) - 1:  # the peak between two lags (a parabola through three)
            a, b, c = ac[best - 1], ac[best], ac[best + 1]
            offset = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
        period = float(lags[best]) + offset
        beats = np.arange(0, n, period)
        phases = np.arange(int(math.ceil(period)))
        sums = [env[np.clip(np.round(n - 1 - p - beats).astype(int), 0, n - 1)].sum() for p in phases]
        self.period = period
        self.last_beat = self.hops - float(phases[int(np.argmax(sums))])


class FeatureExtractor:
    """Mono samples at ``rate`` Hz -> AudioFeatures every ``hop`` samples (HOP_SECONDS, rounded)."""

    def __init__(self, rate: int, hop_seconds: float = HOP_SECONDS) -> None:
        if not 1000 <= rate <= 768_000:
            raise ValueError(f"sample rate {rate} Hz is not one of sound (1 kHz..768 kHz)")
        self.rate = int(rate)
        self.hop = max(16, round(rate * hop_seconds))
        self.window_size = 1 << (2 * self.hop - 1).bit_length()
        self._window = np.hanning(self.window_size)
        self._norm = 2.0 / (self.window_size * float(np.sum(self._window ** 2)))
        freqs = np.fft.rfftfreq(self.window_size, 1.0 / rate)
        self._bands = (freqs < LOW_HZ, (freqs >= LOW_HZ) & (freqs < HIGH_HZ), freqs >= HIGH_HZ)
        self._peak = float(np.sum(self._window)) / 2  # a unit sine's magnitude
        self._recent = np.zeros(self.window_size)
        self._carry = np.zeros(0)
        self._magnitude = np.zeros(len(freqs))
        self._flux: collections.deque[float] = collections.deque(maxlen=max(1, round(ONSET_MEMORY * rate
                                                                                     / self.hop)))
        self._last_flux = 0.0
        self._since_onset = math.inf
        self.samples = 0  # samples analysed (whole hops)
        self.beats = BeatTracker(self.hop / rate)

    def feed(self, samples: np.ndarray) -> list[AudioFeatures]:
        """The features of every hop completed by ``samples`` (mono; NaN and infinities read as silence)."""
        block = np.nan_to_num(np.asarray(samples, dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0,
                              neginf=0.0)
        data = np.concatenate([self._carry, np.clip(block, -1.0, 1.0)])
        out = []
        start = 0
        while len(data) - start >= self.hop:
            out.append(self._hop(data[start:start + self.hop]))
            start += self.hop
        self._carry = data[start:]
        return out

    def _hop(self, hop: np.ndarray) -> AudioFeatures:
        recent = self._recent
        recent[:-len(hop)] = recent[len(hop):]
        recent[-len(hop):] = hop
        self.samples += len(hop)
        spectrum = np.fft.rfft(recent * self._window)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        magnitude = np.log1p(FLUX_GAIN * np.sqrt(power) / self._peak)
        flux = float(np.maximum(magnitude - self._magnitude, 0.0).mean())
        self._magnitude = magnitude
        rms_power = float(np.mean(hop ** 2))
        bands = [unit_db(float(power[mask].sum()) * self._norm) for mask in self._bands]
        onset = self._onset(flux, rms_power)
        beat, tempo = self.beats.feed(flux, onset)
        return AudioFeatures(self.samples / self.rate, unit_db(rms_power), *bands, onset, beat, tempo)

    def _onset(self, flux: float, rms_power: float) -> bool:
        threshold = ONSET_RATIO * (sum(self._flux) / len(self._flux) if self._flux else 0.0) + ONSET_FLOOR
        rising = flux > self._last_flux
        self._flux.append(flux)
        self._last_flux = flux
        self._since_onset += self.hop / self.rate
        loud = rms_power > 10 ** (GATE_DB / 10)
        if flux > threshold and rising and loud and self._since_onset >= MIN_ONSET_GAP:
            self._since_onset = 0.0
            return True
        return False
