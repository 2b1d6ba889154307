"""Settings for a run: groups of fields; each command takes the groups it uses; saved beside its output.

A group is a dataclass of related fields (``ModelSettings``: which decoders, on which device). Every field
becomes a flag (``frame_cache_mb`` -> ``--frame-cache-mb``) whose range or vocabulary is checked when the
command line is read. A command's settings class inherits the groups it uses, so attribute access stays flat
(``config.fps``) and its ``--help`` lists only its own flags:

    play                               Config: every group (the render thread, the rig and audio in read them)
    walk                               AnchorConfig and SculptingSettings
    encode, walk, atlas, curvature     AnchorConfig: model, picture
    doctor                             ModelSettings
    bench                              BenchConfig: family, fps, speed

``add_arguments(parser)`` adds the flags, ``from_args(args)`` reads them back (a field without a flag keeps
its default, so ``Config.from_args`` gives a whole Config from any command's arguments), ``save(folder)``
writes ``config.json`` with what the command used, so that the run can be repeated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

MIN_SIDE, MAX_SIDE = 8, 8192  # pixels, for every size flag
SEED_MAX = 2**32 - 1  # seeds reach torch, numpy and UMAP; all take 32 bits
SWITCH = ("auto", "on", "off")


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """``"512"`` or ``"768x512"`` (or an already parsed (w, h)) -> (width, height), sides from MIN_SIDE to
    MAX_SIDE; argparse.ArgumentTypeError otherwise."""
    if isinstance(text, str):
        try:
            parts = [int(p) for p in text.lower().split("x")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"size {text!r} is not N or WxH (e.g. 512 or 768x512)") from None
    else:
        parts = [int(p) for p in text]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(MIN_SIDE <= p <= MAX_SIDE for p in parts):
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or WxH with sides from {MIN_SIDE} to "
                                         f"{MAX_SIDE} pixels")
    return parts[0], parts[1]


def format_size(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def number(kind: type, low: float, high: float, *, above: bool = False) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) from ``low`` (or, with ``above``, more than
    ``low``) to ``high``. ``--fps 0``, ``--frames -5`` or ``--fps nan`` fail with the range in the message."""
    word = "whole number" if kind is int else "number"
    low_text, high_text = (str(v) if kind is int else f"{v:g}" for v in (low, high))
    span = f"above {low_text} and at most {high_text}" if above else f"from {low_text} to {high_text}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {word}; use a {word} {span}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; use a {word} {span}")
        if not ((value > low if above else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; use a {word} {span}")
        return value

    parse.__name__ = word
    return parse


def listing(item: Callable[[str], Any] | Sequence[str]) -> Callable[[str], str]:
    """An argparse type: a comma-separated list whose entries ``item`` checks (an argparse type, or a
    vocabulary); the text comes back as given."""

    def parse(text: str) -> str:
        for entry in filter(None, (t.strip() for t in text.split(","))):
            if callable(item):
                item(entry)
            elif entry not in item:
                raise argparse.ArgumentTypeError(f"{entry!r} is not one of {', '.join(item)}")
        return text

    parse.__name__ = "list"
    return parse


def device_name(text: str) -> str:
    """An argparse type: ``auto`` or a device present here (``cuda`` on a machine without one fails now,
    not in the render thread)."""
    if text.strip().lower() == "auto":
        return "auto"
    from instrument.devices import DeviceError, resolve_device

    try:
        resolve_device(text)
    except DeviceError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _families() -> tuple[str, ...]:
    from instrument.decoders.families import FAMILIES

    return tuple(FAMILIES)


def _midi_apis() -> tuple[str, ...]:
    from instrument.midi.listener import APIS

    return ("auto", *APIS)


def _compile_modes() -> tuple[str, ...]:
    from instrument.accel import COMPILE_MODES

    return ("auto", *COMPILE_MODES)


def _fits() -> tuple[str, ...]:
    from instrument.latent.anchors import FITS

    return FITS


def _osc_target(text: str) -> str:
    """An argparse type: HOST:PORT, or nothing (off)."""
    from instrument.osc import parse_target

    if text:
        parse_target(text)
    return text


def _sink(name: str) -> None:
    from instrument.sinks import SINKS

    if name not in SINKS:
        raise argparse.ArgumentTypeError(f"{name!r} is not a frame sink; use {', '.join(SINKS)}")


def option(default: Any, help: str, *, parse: Callable[[str], Any] | None = None,
           choices: Sequence[str] | Callable[[], Sequence[str]] | None = None) -> Any:
    """A settings field: its default, its help, and how the command line reads it: ``parse`` (an argparse
    type, range-checking) or ``choices`` (a tuple, or a function giving one, called when the flag is added so
    that importing this module loads neither torch nor rtmidi)."""
    return field(default=default, metadata={"help": help, "parse": parse, "choices": choices})


class Settings:
    """What every settings group and every composition of groups can do (a mixin of the dataclasses below)."""

    TITLE: ClassVar[str] = "settings"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **defaults: Any) -> None:
        """One flag per field, under one heading per group. ``defaults`` replaces field defaults for this
        command (``size=(128, 128)``); --help shows them."""
        for title, fields in _groups(cls):
            group = parser.add_argument_group(title)
            for f in fields:
                _add_flag(group, f, defaults.get(f.name, f.default))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Any:
        """The settings in ``args``; a field without a flag there keeps its default."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` into ``folder``; returns its path."""
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _groups(cls: type) -> list[tuple[str, list[dataclasses.Field]]]:
    """The fields of ``cls`` by the class that declares them, the command's own first, then its groups."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    groups = []
    for klass in cls.__mro__:
        own = [fields.pop(name) for name in klass.__dict__.get("__annotations__", {}) if name in fields]
        if own:
            groups.append((klass.__dict__.get("TITLE", klass.TITLE), own))
    return groups


def _add_flag(group: Any, f: dataclasses.Field, default: Any) -> None:
    flag = "--" + f.name.replace("_", "-")
    meta = f.metadata
    if isinstance(default, bool):
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=meta["help"])
        return
    choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
    parse = meta["parse"] or str
    if parse is parse_size and default is not None:
        default = format_size(default)  # argparse parses a string default with the type: --help shows WxH
    group.add_argument(flag, type=parse, choices=choices, default=default, help=meta["help"])


FPS = number(float, 0, 1000, above=True)


@dataclass(kw_only=True)
class ModelSettings(Settings):
    """Which decoders, in which latent space, on which device; where encoded anchors are kept."""

    TITLE: ClassVar[str] = "model"
    family: str = option("sd15", "latent space of the models and anchors", choices=_families)
    model: str = option("auto", "fast decoder: auto (the family's TAESD, downloaded once), a hub repo id, "
                        "a diffusers folder, a .safetensors/.ckpt VAE or a TAESD .pth")
    full_model: str = option("auto", "full-quality decoder, same forms as --model; none to go without")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps",
                         parse=device_name)
    dtype: str = option("auto", "auto: fp16 on a GPU, fp32 on the CPU",
                        choices=("auto", "fp16", "bf16", "fp32"))
    offline: bool = option(False, "never touch the network; use only models already cached")
    cache_dir: str = option("", "folder for encoded anchor latents (default: the user cache folder)")


@dataclass(kw_only=True)
class PictureSettings(Settings):
    """The decoded picture and the anchors made for it."""

    TITLE: ClassVar[str] = "picture"
    size: tuple[int, int] = option((512, 512), "decode size, N or WxH (rounded to multiples of 8)",
                                   parse=parse_size)
    seed: int = option(0, "seed for seed anchors, random walks and the built-in decoder",
                       parse=number(int, 0, SEED_MAX))
    fit: str = option("crop", "how images meet the size: crop (fill, centre kept) or pad (whole image, "
                      "grey bars)", choices=_fits)


@dataclass(kw_only=True)
class MidiSettings(Settings):
    """The controller: which mapping, which ports, which MIDI system."""

    TITLE: ClassVar[str] = "MIDI"
    mapping: str = option("", "mapping YAML (default: mappings/default.yaml, or keyboard.yaml when no "
                          "MIDI port is found)")
    midi_ports: str = option("", "MIDI inputs to open: comma-separated names, parts of names or numbers; "
                             "none for no MIDI (default: all)")
    midi_api: str = option("auto", "MIDI system (see `latent-instrument ports`)", choices=_midi_apis)
    midi_virtual: bool = option(True, "also open a virtual MIDI input port")


@dataclass(kw_only=True)
class PlaySettings(Settings):
    """Live play: frame rate, window, recording, the lab's banks and atlas, limits for headless runs."""

    TITLE: ClassVar[str] = "play"
    fps: float = option(30.0, "frames per second the render loop aims at", parse=FPS)
    window: tuple[int, int] | None = option(None, "window size, N or WxH (default: as large as fits the "
                                            "screen; a size that does not fit is made smaller)",
                                            parse=parse_size)
    out_size: tuple[int, int] | None = option(None, "size of shown and recorded frames, N or WxH "
                                              "(default: the decode size)", parse=parse_size)
    fullscreen: bool = option(False, "start full screen")
    output_display: int | None = option(None, "also show the picture alone, full screen, on display N "
                                        "(a projector; `latent-instrument doctor` lists the displays); the "
                                        "first window keeps the HUD and help", parse=number(int, 0, 63))
    headless: bool = option(False, "no window: render (and record) only")
    record: str = option("", "record into this folder from the first frame")
    record_root: str = option("recordings", "where takes started while playing, and F12 screenshots, go")
    duration: float = option(0.0, "stop after this many seconds of play (0: never)",
                             parse=number(float, 0, 1e7))
    frames: int = option(0, "stop after this many frames (0: never)", parse=number(int, 0, 10**9))
    atlas: str = option("", "atlas folder (from `latent-instrument atlas`) for atlas mode (default: "
                        "charted from the anchors when turned on)")
    bank_size: int = option(12, "anchors per bank: anchor i of bank b (program change) is anchor b*N+i; "
                            "0: no banks", parse=number(int, 0, 128))


@dataclass(kw_only=True)
class SpeedSettings(Settings):
    """Speed switches (instrument.accel, instrument.framecache). "auto" takes the best measured for the
    device (benchmarks/README.md); each can turn off a default that misbehaves on some machine."""

    TITLE: ClassVar[str] = "speed"
    channels_last: str = option("auto", "channels-last decoder layout", choices=SWITCH)
    subpixel: str = option("auto", "nearest-upsample + 3x3 conv as one 2x2 conv at the low resolution "
                           "(4/9 of the work)", choices=SWITCH)
    compile: str = option("auto", "torch.compile the frame (max-autotune: a slow first start)",
                          choices=_compile_modes)
    cuda_graphs: str = option("auto", "replay a frame as one CUDA graph", choices=SWITCH)
    prefetch: int = option(4, "frames decoded as one batch when filling the cache ahead (1: one at a "
                           "time)", parse=number(int, 1, 64))
    frame_cache_mb: int = option(256, "memory for decoded frames kept for reuse and for in-between "
                                 "frames on slow machines", parse=number(int, 32, 1 << 20))
    read_ahead_ms: float = option(2.0, "read the next frame's controls this long before the decoding "
                                  "frame is done and queue its decode (the device never waits; the "
                                  "controls are that much older); 0: never", parse=number(float, 0, 1000))


@dataclass(kw_only=True)
class SculptingSettings(Settings):
    """The sculpt stage: the UNet that turns a played latent into a new picture in a few steps (the
    ``sculpt`` control; 0 leaves the picture as played)."""

    TITLE: ClassVar[str] = "sculpting"
    sculpt_model: str = option("stabilityai/sd-turbo", "sculpting UNet: hub id, diffusers folder or SD "
                               "1.x/2.x .safetensors, of the decoder's family; none: off")
    sculpt_lora: str = option("", "LoRA fused into it (file or hub repo)")
    prompt: str = option("", 'prompt when no anchor is a prompt:"..." one (default: none)')

    @property
    def sculpting(self) -> bool:
        return self.sculpt_model.strip().lower() not in ("", "none")


@dataclass(kw_only=True)
class RigSettings(Settings):
    """The rest of a rig (instrument.rig): frames to other apps, OSC in and out. All off unless asked for;
    a listener binds to this computer only unless --osc-host names another address."""

    TITLE: ClassVar[str] = "rig"
    sink: str = option("", "send the frames to other apps: syphon (macOS), spout (Windows), ndi (the "
                       "network), virtualcam (OBS, Zoom, browsers); a comma-separated list",
                       parse=listing(_sink))
    ndi_name: str = option("Latent Instrument", "the name --sink ndi announces on the network")
    osc_in: int = option(0, "listen for OSC on this UDP port: /li/<param> value, and the mapping's osc: "
                         "controls (0: off)", parse=number(int, 0, 65535))
    osc_host: str = option("127.0.0.1", "address --osc-in listens on: 127.0.0.1 (this computer only), or "
                           "this computer's address on a network (0.0.0.0: every network) for a phone or "
                           "another computer")
    osc_out: str = option("", "send the state (position, anchor, rates) over OSC to HOST:PORT, e.g. "
                          "127.0.0.1:7000 for TouchDesigner", parse=_osc_target)


@dataclass(kw_only=True)
class AudioSettings(Settings):
    """Sound in, for audio-reactive controls (instrument.audio): a mapping binds its features like CCs."""

    TITLE: ClassVar[str] = "audio"
    audio_in: str = option("", "sound to follow: an input device (a number, a name or part of one, jack "
                           "for the JACK server's, or default) or a sound file played in real time (.wav; "
                           "other formats with soundfile); empty: none")
    audio_monitor: bool = option(True, "play an --audio-in file aloud while it is followed")


@dataclass(kw_only=True)
class Config(ModelSettings, PictureSettings, MidiSettings, PlaySettings, SculptingSettings, SpeedSettings,
             RigSettings, AudioSettings):
    """Every setting: what ``play`` takes and the render thread reads (and a take's sidecar records)."""


@dataclass(kw_only=True)
class AnchorConfig(ModelSettings, PictureSettings):
    """A model and the pictures it encodes and decodes: ``encode``, ``walk``, ``atlas``, ``curvature``."""


@dataclass(kw_only=True)
class BenchConfig(SpeedSettings):
    """``bench``: the speed switches it times, the latent family of its decoders and the rate it plays at.
    (Its live sweep runs the real render thread: ``Config.from_args`` gives it the whole Config.)"""

    TITLE: ClassVar[str] = "timed"
    model: str = option("auto", "fast decoder to time, same forms as play's --model; auto: the TAESD "
                        "architecture with random weights (speed does not depend on them)")
    full_model: str = option("auto", "full decoder to time; auto: the SD 1.5 VAE architecture, random "
                             "weights")
    offline: bool = option(False, "never touch the network; use only models already cached")
    family: str = option("sd15", "latent space of the decoders timed", choices=_families)
    fps: float = option(30.0, "off the GPU, the live sweep renders at twice this (see --live-fps)",
                        parse=FPS)
