"""Tempo and beat position from MIDI clock: 24 pulses per quarter note, start/stop/continue, song position.

Fed from the render thread with each message and its arrival time (``ControlEvent.time``, monotonic
seconds). USB and scheduler jitter of a few milliseconds moves single pulse intervals by a quarter (a pulse
is 21 ms at 120 BPM), so the tempo comes from the last ``window`` pulse times: the median of the spans
across half the window (pulse i to pulse i + window/2), each divided by its pulse count. Jitter shrinks by
the span's length and a single late pulse moves few of the spans, so the median ignores it.
"""

from __future__ import annotations

from collections import deque

import mido

PULSES_PER_BEAT = 24
PULSES_PER_SONGPOS = 6  # song position counts sixteenth notes
MAX_INTERVAL = 0.5  # seconds between pulses: slower than 5 BPM is a pause in the clock, not a tempo


class MidiClock:
    """Follows a MIDI clock source.

    ``tempo_bpm``: the smoothed tempo, None until two pulses came. ``running``: between start/continue and
    stop. ``beat(now)``: the position in beats (quarter notes) since start, as a float whose fraction is the
    phase within the beat; between pulses it moves on at the current tempo, never past the next pulse.
    Pulses keep the tempo up to date while stopped (many devices send clock all the time) but move the
    position only while running.
    """

    def __init__(self, window: int = 48):
        self._times: deque[float] = deque(maxlen=window)  # arrival times of recent unbroken pulses
        self.running = False
        self._pulse = 0  # position, in pulses, of the last pulse while running
        self._pulse_time: float | None = None  # its arrival time; None until a pulse since start/songpos
        self._next_pulse = 0  # where the next pulse lands

    def feed(self, msg: mido.Message, time: float) -> None:
        """Take one clock, start, stop, continue or songpos message (others are ignored)."""
        kind = msg.type
        if kind == "clock":
            if self._times and not 0 < time - self._times[-1] <= MAX_INTERVAL:
                self._times.clear()  # a pause: spans across it would say nothing about the tempo
            self._times.append(time)
            if self.running:
                self._pulse, self._pulse_time = self._next_pulse, time
                self._next_pulse += 1
        elif kind == "start":
            self.running = True
            self._next_pulse, self._pulse_time = 0, None  # the next pulse is beat 0
        elif kind == "continue":
            self.running = True
        elif kind == "stop":
            self.running = False
            self._pulse_time = None
        elif kind == "songpos":
            self._next_pulse, self._pulse_time = msg.pos * PULSES_PER_SONGPOS, None

    @property
    def interval(self) -> float | None:
        """Seconds per pulse, None before two pulses."""
        times = self._times
        if len(times) < 2:
            return None
        span = len(times) // 2
        estimates = sorted((times[i + span] - times[i]) / span for i in range(len(times) - span))
        return estimates[len(estimates) // 2]

    @property
    def tempo_bpm(self) -> float | None:
        interval = self.interval
        return None if interval is None else 60.0 / (interval * PULSES_PER_BEAT)

    def beat(self, now: float) -> float:
        """Position in beats at time ``now`` (same clock as the fed times)."""
        if not self.running or self._pulse_time is None:
            return self._next_pulse / PULSES_PER_BEAT
        interval = self.interval
        ahead = 0.0 if interval is None else min(1.0, max(0.0, (now - self._pulse_time) / interval))
        return (self._pulse + ahead) / PULSES_PER_BEAT
