"""One configuration object for a run, overridable from the command line and saved beside its output.

Every field becomes a flag (``size`` -> ``--size``); ``Config.from_args`` reads them back. A recording, a
walk or a benchmark writes ``config.json`` beside its files so that the run can be repeated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` or ``"768x512"`` -> (width, height)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or WxH") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 8:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or WxH with sides of at least 8")
    return parts[0], parts[1]


@dataclass
class Config:
    # Models. "auto": the family's default (TAESD for fast, the full VAE for quality), downloaded once;
    # with no network and nothing cached, the built-in procedural decoder.
    model: str = field(default="auto", metadata={"help": "fast decoder: auto, a hub repo id, a diffusers "
                                                 "folder, a .safetensors/.ckpt VAE or a TAESD .pth"})
    full_model: str = field(default="auto", metadata={"help": "full-quality decoder, same forms as --model; "
                                                      "'none' to disable"})
    family: str = field(default="sd15", metadata={"help": "latent space: sd15, sdxl, sd3, flux1, flux2"})
    device: str = field(default="auto", metadata={"help": "auto (cuda, mps, cpu), or a torch device"})
    dtype: str = field(default="auto", metadata={"help": "auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32"})
    offline: bool = field(default=False, metadata={"help": "never touch the network"})
    # Picture.
    size: tuple[int, int] = field(default=(512, 512), metadata={"help": "decode resolution, N or WxH"})
    fps: float = field(default=30.0, metadata={"help": "target frames per second"})
    seed: int = field(default=0, metadata={"help": "seed for seed anchors and random walks"})
    fit: str = field(default="crop", metadata={"help": "how images meet the size: crop (centre) or pad"})
    cache_dir: str = field(default="", metadata={"help": "anchor latent cache (default: the user cache)"})
    # Live play (instrument.play): input, window, recording, limits for headless runs.
    mapping: str = field(default="", metadata={"help": "mapping YAML (default: mappings/default.yaml, or "
                                               "keyboard.yaml when no MIDI port is found)"})
    midi_ports: str = field(default="", metadata={"help": "MIDI inputs to open, comma-separated names, parts "
                                                  "of names or numbers; empty: all; 'none': no MIDI"})
    midi_api: str = field(default="auto", metadata={"help": "MIDI API: auto, coremidi, alsa, jack, winmm"})
    midi_virtual: bool = field(default=True, metadata={"help": "also open a virtual MIDI input port"})
    window: tuple[int, int] = field(default=(960, 960), metadata={"help": "window size, N or WxH"})
    out_size: str = field(default="", metadata={"help": "size of shown and recorded frames, N or WxH "
                                                "(default: the decode size)"})
    fullscreen: bool = field(default=False, metadata={"help": "start full screen"})
    headless: bool = field(default=False, metadata={"help": "no window: render (and record) only"})
    record: str = field(default="", metadata={"help": "record into this folder from the first frame"})
    record_root: str = field(default="recordings", metadata={"help": "where takes started live are written"})
    duration: float = field(default=0.0, metadata={"help": "stop after this many seconds of play (0: never)"})
    frames: int = field(default=0, metadata={"help": "stop after this many frames (0: never)"})
    # Lab in live play (instrument.lab.live): atlas mode and anchor banks.
    atlas: str = field(default="", metadata={"help": "atlas folder (from `latent-instrument atlas`) for "
                                             "atlas mode; default: charted from the anchors when turned on"})
    bank_size: int = field(default=12, metadata={"help": "anchors per bank: anchor i of bank b (program "
                                                 "change) is anchor b*N+i; 0: no banks"})
    # Speed (instrument.accel, instrument.framecache): "auto" takes the best measured for the device
    # (benchmarks/README.md); each switch can turn off a default that misbehaves on some machine.
    channels_last: str = field(default="auto", metadata={"help": "channels-last decoder layout: auto, on, "
                                                     "off"})
    subpixel: str = field(default="auto", metadata={"help": "nearest-upsample + 3x3 conv as one 2x2 conv at "
                                                 "the low resolution (4/9 of the work): auto, on, off"})
    compile: str = field(default="auto", metadata={"help": "torch.compile the frame: auto, off, default, "
                                               "max-autotune (slow first start), reduce-overhead"})
    cuda_graphs: str = field(default="auto", metadata={"help": "replay a frame as one CUDA graph: auto, on, "
                                                   "off"})
    prefetch: int = field(default=4, metadata={"help": "frames decoded as one batch when filling the cache "
                                               "ahead (1: one at a time)"})
    frame_cache_mb: int = field(default=256, metadata={"help": "memory for decoded frames kept for reuse "
                                                       "and for in-between frames on slow machines"})
    read_ahead_ms: float = field(default=2.0, metadata={"help": "behind the clock, read the next frame's "
                                                   "controls this long before the frame decoding is done "
                                                   "and queue its decode (the device never waits; the "
                                                   "controls are that much older); 0: never"})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` into ``folder``; returns its path."""
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one flag per field, with the field's default and help."""
        group = parser.add_argument_group("configuration")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
            if f.type in ("bool", bool):
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                   help=help_text)
            elif f.type in ("tuple[int, int]", tuple[int, int]):
                group.add_argument(flag, type=parse_size, default=f.default, help=help_text)
            else:
                kind = {"int": int, "float": float}.get(str(f.type), str)
                group.add_argument(flag, type=kind, default=f.default, help=help_text)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)})
