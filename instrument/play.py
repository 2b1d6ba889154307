"""``latent-instrument play``: the live instrument.

Threads (see DESIGN.md): the MIDI callbacks and the audio thread (``--audio-in``) put control events on the
queue; the render thread (render.py) loads the decoder and the anchors, applies the events and renders frames
into the mailbox; the main thread runs the window (display.py), or with ``--headless`` just waits. Esc, Q,
closing the window, Ctrl-C or SIGTERM stop it cleanly: the render thread is joined, the recording finished,
the MIDI ports closed and the audio thread joined.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from instrument.config import Config
from instrument.errors import UserError
from instrument.events import EventQueue
from instrument.loop.controls import Controls
from instrument.loop.parts import out_size
from instrument.mailbox import Mailbox
from instrument.render import TAKE_GRACE_SECONDS, Renderer

log = logging.getLogger(__name__)

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
DEFAULT_SEEDS = 4  # seed anchors when none are given
DECODE_GRACE = 0.2  # seconds a decode in flight may take at the end, once the takes are written


def configure_play(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("anchors", nargs="*", metavar="ANCHOR",
                        help='image files, seed:N, prompt:"a marble statue" (for sculpting), or saved '
                             "latents (.safetensors); default: four seeds")
    Config.add_arguments(parser)


def run_play(args: argparse.Namespace) -> int:
    """Play until the performer stops; then end the process with the session's exit status."""
    from instrument.decoders.loaders import check_sources

    config = Config.from_args(args)
    check_sources(config)  # a missing or fake model file fails here, before a window opens
    status = Session(config, args.anchors).run()
    # Everything is joined, closed and written: leave without the interpreter's own exit. With torch loaded
    # that exit takes seconds on a busy machine (its libraries and thread pools are torn down) after the
    # window has gone, and after a SIGTERM torch's thread pool can abort it ("terminate called without an
    # active exception", seen with torch 2.13 on Linux): a service manager would not see a clean stop.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def default_mapping(midi_found: bool) -> Path:
    """The mapping to use when none is named: the controller one, or the keyboard one without MIDI."""
    try:
        from instrument.mapping import DEFAULT_MAPPING, KEYBOARD_MAPPING

        default, keyboard = Path(DEFAULT_MAPPING), Path(KEYBOARD_MAPPING)
    except ImportError:
        default, keyboard = MAPPINGS / "default.yaml", MAPPINGS / "keyboard.yaml"
    return default if midi_found or not keyboard.exists() else keyboard


def load_session(config: Config, specs: list[str], say) -> tuple:
    """In the render thread: the decoders, then the anchors (encoded once, cached on disk), then the sculpt
    model.

    Returns (fast, full, anchors [N, C, h, w] float32 on the decoders' device, names, problems, sculpt model
    or None). Anchors that fail are reported in ``problems``; with none left, seed anchors stand in. A sculpt
    model that cannot be loaded, or works in another latent family, is a problem too: the instrument plays
    unsculpted.
    """
    from instrument.decoders import load_models
    from instrument.latent.anchors import AnchorCache, load_anchors

    say("loading the decoder")
    fast, full = load_models(config)
    say(f"encoding anchors with {fast.label}")
    cache = AnchorCache(Path(config.cache_dir) if config.cache_dir else None)
    seeds = [f"seed:{config.seed + i}" for i in range(DEFAULT_SEEDS)]
    size = tuple(config.size)
    where = dict(cache=cache, seed=config.seed, fit=config.fit)
    anchors, errors = load_anchors(list(specs) or seeds, fast, size, **where)
    problems = [str(e) for e in errors]
    if not anchors:
        problems.append("no anchor could be loaded; playing on seed anchors")
        anchors, _ = load_anchors(seeds, fast, size, **where)
    latents = torch.stack([a.latent for a in anchors]).to(fast.device, torch.float32)
    return fast, full, latents, [a.name for a in anchors], problems, load_sculpt(config, fast, say, problems)


def load_sculpt(config: Config, fast, say, problems: list[str]):
    """The sculpt model of ``config`` on the decoder's device, or None (off, or a problem said why)."""
    if not config.sculpting:
        return None
    from instrument.sculpt import load_sculpt_model

    say(f"loading the sculpt model {config.sculpt_model}")
    try:
        return load_sculpt_model(config.sculpt_model, lora=config.sculpt_lora or None,
                                 family=fast.family.name, device=fast.device, dtype=config.dtype,
                                 offline=config.offline)
    except Exception as exc:  # the instrument plays on unsculpted; the HUD says why
        told = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        problems.append(f"sculpting off: {told} (--sculpt-model none to play without it)")
        return None


class Session:
    """One run of the instrument: ``run()`` blocks until the performer stops it; returns the exit status.

    ``load`` replaces ``load_session`` (tests pass prepared decoders). After ``run``: ``renderer`` (its
    ``takes`` and ``frames``) and ``display`` (None when headless) stay for inspection.
    """

    def __init__(self, config: Config, anchors: list[str] | None = None, *, load=None) -> None:
        self.config = config
        self.anchors = list(anchors or [])
        self.queue = EventQueue()
        self.mailbox = Mailbox()
        self.listener = None
        self.rig = None  # frames to other apps, OSC, lights (instrument.rig)
        self.audio = None  # instrument.audio.stream.AudioInput, with --audio-in
        self.display = None
        self.renderer: Renderer | None = None
        self.display_failed = False
        self._load = load or (lambda say: load_session(config, self.anchors, say))

    def run(self) -> int:
        previous = _on_sigterm()
        mask = _signal_mask()
        try:
            with _signals_to_main_thread():
                self._start()
            if self.config.headless:
                self._wait_headless()
            else:
                self._show()
        except KeyboardInterrupt:
            log.info("stopping (interrupted)")
        finally:
            self._shutdown()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if mask is not None:
                # libjack restores, when its last client closes, the mask of the thread that opened its first
                # one: inside ``_signals_to_main_thread`` that is SIGINT and SIGTERM blocked, and a process
                # that goes on (a notebook, the tests; their children inherit it) could not be stopped.
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return self._report()

    def _start(self) -> None:
        self.listener = self._start_midi()
        ports = self.listener.open_ports() if self.listener is not None else []
        mapping, problem, origin = self._mapping(ports)
        from instrument.rig import start_rig
        from instrument.scenes import scenes_path

        rig = self.rig = start_rig(self.config, self.queue, self.mailbox, self.listener)
        midi = self.listener.status if self.listener is not None else lambda: {"midi": "off"}
        scenes = scenes_path(self.config.mapping or mapping.path)
        unheard = self._start_audio()
        self.renderer = Renderer(
            self.config,
            queue=self.queue,
            mailbox=self.mailbox,
            load=self._load,
            controls=lambda: Controls(mapping, queue=self.queue, watch_path=self.config.mapping or None,
                                      problem=problem, origin=origin, scenes=scenes),
            record=self.config.record or None,
            feedback=lambda: rig.feedback,
            midi_status=lambda: {**midi(), **rig.status(), **self._audio_status()},
            problems=[unheard] if unheard else [],
        )
        self.renderer.start()

    def _start_midi(self):
        ports = [p.strip() for p in self.config.midi_ports.split(",") if p.strip()]
        if ports == ["none"]:
            return None
        try:
            from instrument.midi.listener import MidiListener

            listener = MidiListener(self.queue, ports or None, api=self.config.midi_api,
                                    virtual=self.config.midi_virtual)
            return listener if listener.start() else None
        except Exception as exc:  # no MIDI system at all: the keyboard and mouse still play
            log.warning("MIDI off: %s", exc)
            return None

    def _start_audio(self) -> str | None:
        """Start following ``--audio-in`` once the first frame is out; returns why it cannot, or None."""
        if not self.config.audio_in:
            return None
        from instrument.audio.stream import AudioInput

        try:
            self.audio = AudioInput(self.queue, self.config.audio_in, monitor=self.config.audio_monitor,
                                    ready=lambda: self.renderer is not None and self.renderer.frames > 0)
        except Exception as exc:  # no such device or file, no PortAudio: play on without sound
            log.error("audio in off: %s", exc)
            return f"audio in off: {exc}"
        self.audio.start()
        return None

    def _audio_status(self) -> dict[str, str]:
        """The audio input's state, for the HUD (nothing without --audio-in)."""
        return {"audio": self.audio.status()} if self.audio is not None else {}

    def _mapping(self, ports: list[str]) -> tuple:
        """(the mapping to start on, a problem to show or None, why it plays in words). ``--mapping`` if it
        reads (else the fallback, with the problem); without it, the preset made for a connected controller
        (``ports: [nanoKONTROL2]`` in the preset), else ``default.yaml`` with MIDI and ``keyboard.yaml``
        without."""
        from instrument.loop.interim import match_preset
        from instrument.mapping import MappingError, load_mapping

        # A controller plugged in, or named with --midi-ports (it may come later): the controller mapping.
        fallback = default_mapping(bool(ports or (self.listener is not None and self.config.midi_ports)))
        origin = "" if ports else "no MIDI port found"
        if self.config.mapping:
            try:
                return load_mapping(self.config.mapping), None, ""
            except MappingError as exc:
                log.error("%s", exc)
                return (load_mapping(fallback), f"{exc}; playing on {fallback.name} until the file is fixed",
                        f"instead of {Path(self.config.mapping).name}")
        preset = match_preset(ports) if ports else None
        if preset is not None:
            port = next(p for p in ports if match_preset([p]) == preset)
            log.info("MIDI port %s: playing on its preset %s", port, Path(preset).name)
            return load_mapping(preset), None, f"the preset for port {port}"
        return load_mapping(fallback), None, origin

    def _wait_headless(self) -> None:
        renderer = self.renderer
        next_log = time.monotonic() + 5
        while renderer.is_alive():
            renderer.join(0.1)
            if time.monotonic() >= next_log:
                status = renderer.status
                exact = "" if status.exact_fps is None else f" (exact {status.exact_fps:.1f})"
                log.info("%s: %d frames, %.1f fps%s%s", status.phase, status.frames, status.render_fps, exact,
                         f"; {status.recording}" if status.recording else "")
                next_log += 5

    def _show(self) -> None:
        import pygame

        from instrument.display import Display

        renderer, config = self.renderer, self.config
        self.display = Display(self.mailbox, self.queue, lambda: renderer.status, window_size=config.window,
                               picture_size=out_size(config), fullscreen=config.fullscreen,
                               screenshots=config.record_root, output_display=config.output_display)
        try:
            # After a failure the window stays, saying why, until the performer closes it.
            self.display.run(should_stop=lambda: renderer.finished and renderer.failure is None)
        except pygame.error as exc:  # no window could open (no display): say what to do instead
            log.error("no window: %s. Without a display, run with --headless (and --record DIR).", exc)
            self.display_failed = True

    def _shutdown(self) -> None:
        began = time.monotonic()
        if self.renderer is not None:
            self.renderer.stop()
            # The takes' writers finish what is queued. Wait on the thread's own flags: a join that SIGTERM's
            # KeyboardInterrupt broke into can leave is_alive() False (and later joins returning at once)
            # while the thread still runs, and the process would exit mid-take. Once the takes are written,
            # a decode still in flight (a second or more on a busy CPU) has nothing to keep: the process
            # leaves without it after DECODE_GRACE. A render thread still loading a model (no stages yet) is
            # left behind after 5 s.
            renderer = self.renderer
            deadline = time.monotonic() + (5.0 if renderer.parts is None else 5.0 + TAKE_GRACE_SECONDS)
            written, told = None, False
            while not renderer.finished and time.monotonic() < deadline:
                if renderer.written:
                    written = written or time.monotonic()
                    if time.monotonic() - written > DECODE_GRACE:
                        log.debug("leaving a decode in flight behind")
                        break
                if not told and time.monotonic() - began > 1.0 and renderer.takes:
                    log.info("finishing the take…")
                    told = True
                time.sleep(0.02)
            renderer.join(0.1)
            if not renderer.written:
                log.warning("the render thread is still busy (loading a model?); leaving it behind")
        if self.listener is not None:
            self.listener.stop()
        if self.rig is not None:
            self.rig.close()
        if self.audio is not None:
            self.audio.stop()
            self.audio.join(5.0)
        log.debug("stopped in %.2f s", time.monotonic() - began)

    def _report(self) -> int:
        renderer = self.renderer
        if renderer is None:
            return 1
        if renderer.parts is not None:
            takes = renderer.parts.takes
            for recorder in takes.finished:
                if recorder.error:
                    log.error("take failed: %s", recorder.status())
                else:
                    log.info("take written: %s", recorder.status())
            for recorder in takes.closing:
                log.error("take unfinished (its writer was still busy): %s", recorder.folder)
        if self.display_failed:
            return 2
        if renderer.failure is not None:
            return 2 if isinstance(renderer.failure, UserError) else 1
        return 0


@contextlib.contextmanager
def _signals_to_main_thread():
    """Threads started inside (ours, and the MIDI system's own, e.g. JACK's) never receive SIGINT/SIGTERM.

    A signal may otherwise land on a JACK client thread and interrupt it mid-call, which aborts the process
    ("terminate called without an active exception"); blocked there, it always reaches the main thread.
    """
    signals = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _signal_mask() -> set[signal.Signals] | None:
    """This thread's blocked signals, where the platform has them (None elsewhere)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


def _on_sigterm():
    """Make SIGTERM stop the session like Ctrl-C (servers, CI). Returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)
