"""Live audio in: an input device (PortAudio through ``sounddevice``: Core Audio, WASAPI, ALSA, JACK) or a
sound file played in real time, analysed on a thread of its own into control events.

The device's callback only copies its block into a bounded buffer (never blocks, never allocates much); the
``audio`` thread runs the ``FeatureExtractor`` and puts one ``ControlEvent(time, "audio:<source>",
AudioFeatures)`` per hop on the event queue, stamped with the time the hop's last sample arrived (the stream's
sample clock, kept on ``time.monotonic`` by its earliest arrivals, so callback jitter does not shake it). A
file is read in hops, each event put at its own time from the moment the file starts; ``monitor`` also plays
it on the default output (best effort: an instrument without a sound card still analyses it).

The render thread never waits for sound: a buffer overrun (the machine too busy) drops the oldest blocks and
counts them. ``start``, then ``stop`` and ``join`` (in a ``finally``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from instrument.audio.features import FeatureExtractor
from instrument.audio.files import AudioError, one_line, open_audio
from instrument.events import ControlEvent, EventQueue

log = logging.getLogger(__name__)

BUFFER_SECONDS = 2.0  # sound waiting for the analysis thread; beyond it the oldest is dropped
CLOCK_SLEW = 0.002  # how fast the sample clock follows later arrivals (a drifting sound card)
# A source named like a sound file is one, even when it is not there (then that is the error, not "no such
# input device").
SOUND_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".caf"})


def list_inputs() -> list[str]:
    """The input devices PortAudio finds, as "index: name (host API)"."""
    import sounddevice as sd

    apis = sd.query_hostapis()
    return [f"{i}: {d['name']} ({apis[d['hostapi']]['name']})" for i, d in enumerate(sd.query_devices())
            if d["max_input_channels"] > 0]


def find_input(spec: str) -> int:
    """The PortAudio input device named by ``spec``: a number, a name or part of one, or of its host API
    (``jack``: the JACK server's inputs), any case, or ``default``. AudioError listing the inputs when none
    fits."""
    import sounddevice as sd

    apis = sd.query_hostapis()
    devices = sd.query_devices()
    inputs = [i for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    text = spec.strip().lower()
    if text == "default" and sd.default.device[0] in inputs:
        return int(sd.default.device[0])
    if text.isdigit() and int(text) in inputs:
        return int(text)
    named = [i for i in inputs
             if text in f"{devices[i]['name']} ({apis[devices[i]['hostapi']]['name']})".lower()]
    if named:
        return named[0]
    found = "; ".join(list_inputs()) or "none"
    raise AudioError(f"no audio input {spec!r}; inputs here: {found}")


class AudioInput:
    """Analyses ``source`` (a device spec, or the path of a sound file) into ``queue``.

    ``ready()`` is polled before the sound starts (the session waits for its first frame: a file's first
    beat should not play into the loading screen). ``clock`` is the events' clock (time.monotonic)."""

    def __init__(self, queue: EventQueue, source: str, *, monitor: bool = True,
                 ready: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self.spec = source
        self.monitor = monitor
        self.ready = ready
        self.clock = clock
        as_file = Path(source).exists() or Path(source).suffix.lower() in SOUND_SUFFIXES
        self.file = open_audio(source) if as_file else None
        self.device: int | None = None if self.file is not None else find_input(source)
        self.name = f"audio:file:{Path(source).name}" if self.file is not None else f"audio:{source}"
        self.state = "starting"
        self.overruns = 0  # blocks dropped because the analysis fell behind
        self.error: str | None = None
        self._stop = threading.Event()
        self._blocks: collections.deque[tuple[np.ndarray, float]] = collections.deque()  # (samples, arrival)
        self._buffered = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)

    # -- the session's side ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def status(self) -> str:
        """One line for the HUD."""
        if self.error:
            return f"error: {self.error}"
        return self.state + (f" ({self.overruns} blocks dropped: machine busy)" if self.overruns else "")

    # -- the thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self.ready():
                if self._stop.wait(0.01):
                    return
            if self.file is not None:
                self._play_file()
            else:
                self._listen()
            self.state = "stopped" if self._stop.is_set() else "ended"
        except Exception as exc:  # the instrument plays on without sound; the HUD says why
            self.error = one_line(exc)
            log.error("audio in stopped: %s", self.error)

    def _emit(self, extractor: FeatureExtractor, samples: np.ndarray, zero: float) -> None:
        """Analyse ``samples``; each hop's event is stamped with its last sample's time (``zero``: the clock's
        time at the stream's sample 0)."""
        for features in extractor.feed(samples):
            self.queue.put(ControlEvent(zero + features.at, self.name, features))

    def _play_file(self) -> None:
        audio = self.file
        extractor = FeatureExtractor(audio.rate)
        player = self._monitor(audio) if self.monitor else None
        try:
            begun = self.clock()
            self.state = f"playing {audio.path.name}"
            done = 0
            for block in audio.blocks(extractor.hop):
                done += len(block)
                if not self._sleep_until(begun + done / audio.rate):
                    return
                self._emit(extractor, block, begun)
        finally:
            if player is not None:
                player.stop()

    def _monitor(self, audio):
        """Play the file on the default output while it is analysed; None when there is no output."""
        try:
            import sounddevice as sd

            data = np.concatenate(list(audio.blocks())).astype(np.float32)
            sd.play(data, audio.rate)
            return sd
        except Exception as exc:  # no sound card, no PortAudio: analysing goes on in silence
            log.warning("%s: not played aloud (%s)", audio.path.name, one_line(exc))
            return None

    def _sleep_until(self, t: float) -> bool:
        wait = t - self.clock()
        return not (wait > 0 and self._stop.wait(wait)) and not self._stop.is_set()

    def _listen(self) -> None:
        import sounddevice as sd

        info = sd.query_devices(self.device)
        rate = int(info["default_samplerate"])
        extractor = FeatureExtractor(rate)
        limit = int(BUFFER_SECONDS * rate)

        def callback(indata, frames, timing, status) -> None:  # PortAudio's thread: copy and go
            block = indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0].copy()
            with self._cond:
                self._blocks.append((block, self.clock()))
                self._buffered += frames
                while self._buffered > limit:
                    old, _ = self._blocks.popleft()
                    self._buffered -= len(old)
                    self.overruns += 1
                self._cond.notify()

        channels = max(1, min(2, int(info["max_input_channels"])))
        with sd.InputStream(device=self.device, channels=channels, samplerate=rate, dtype="float32",
                            blocksize=extractor.hop, callback=callback):
            self.state = f"listening to {info['name']}"
            zero: float | None = None  # the clock's time at sample 0 (what the earliest arrivals say)
            dropped = heard = 0
            while not self._stop.is_set():
                with self._cond:
                    self._cond.wait_for(lambda: self._blocks or self._stop.is_set(), timeout=0.5)
                    blocks, self._buffered = list(self._blocks), 0
                    self._blocks.clear()
                    if self.overruns != dropped:  # sound was lost: the sample count no longer tells time
                        dropped, zero = self.overruns, None
                for block, arrived in blocks:
                    heard += len(block)
                    guess = arrived - heard / rate
                    zero = guess if zero is None or guess < zero else zero + CLOCK_SLEW * (guess - zero)
                    self._emit(extractor, block, zero)
