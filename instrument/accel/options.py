"""The speed switches of a ``FastDecoder`` and the measured best of them for each device.

Why each default (measured in benchmarks/results/bench-cuda-h100.md and the probe in benchmarks/README.md):

- ``torch.compile`` fuses the decoder's elementwise work (GroupNorm+SiLU in the KL VAE) and the picture's
  conversion; with a hand-captured CUDA graph the launch gaps between kernels go too. "max-autotune" is a
  little faster again but compiles for minutes on first start, so it is a switch, not the default.
- channels_last helps TAESD eagerly but slows the KL VAE eagerly (its GroupNorms); inside a compiled graph
  the layout is the compiler's to choose.
- Sub-pixel upsampling (``decoders.subpixel``) speeds up the KL VAE, whose upsampling convolutions are a large
  share of its work; TAESD gains nothing measurable, so it is on for the KL VAE only.
- On a CPU, a background decode thread lets the render thread show in-between frames while a frame decodes;
  compile is off there because its first start takes minutes on a small CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

COMPILE_MODES = ("off", "default", "max-autotune", "reduce-overhead")
DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


@dataclass(frozen=True)
class AccelOptions:
    """Resolved speed switches (no "auto" left)."""

    channels_last: bool = False
    subpixel: bool = False  # upsample + 3x3 conv as one low-resolution 2x2 conv (decoders.subpixel)
    compile: str = "off"  # one of COMPILE_MODES
    cuda_graphs: bool = False  # our own capture of the whole frame (CUDA only)
    prefetch: int = 1  # batch size of decode_batch's fixed-shape pipeline
    background: bool = False  # CPU: decode in a thread of its own so that launch() returns at once

    def describe(self) -> str:
        parts = []
        if self.channels_last:
            parts.append("channels_last")
        if self.subpixel:
            parts.append("subpixel")
        if self.compile != "off":
            parts.append(f"compile={self.compile}")
        if self.cuda_graphs:
            parts.append("cuda_graph")
        return " ".join(parts) or "eager"


def default_options(device: torch.device | str, arch: str = "taesd") -> AccelOptions:
    """The measured best for a device type and decoder architecture ("taesd", "kl", ...).

    CUDA: compile (default mode) + our CUDA graph; channels_last for TAESD (the compiler picks the KL
    VAE's layout); sub-pixel upsampling for the KL VAE. MPS: eager, channels_last off: torch.compile on MPS
    is young and was not measured faster (run ``latent-instrument bench --devices mps`` and set the switches
    if it is on your Mac). CPU: eager fp32 with channels_last for TAESD (oneDNN), sub-pixel upsampling for
    the KL VAE (it slows channels_last TAESD), a background decode thread.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return AccelOptions(channels_last=arch == "taesd", subpixel=arch != "taesd", compile="default",
                            cuda_graphs=True, prefetch=4)
    if kind == "mps":
        return AccelOptions(prefetch=1)
    return AccelOptions(channels_last=arch == "taesd", subpixel=arch != "taesd", prefetch=1, background=True)


def _switch(value: Any, default: bool, name: str) -> bool:
    text = str(value).strip().lower()
    if text == "auto":
        return default
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"config {name}: {value!r} is not auto, on or off")


def options_from_config(config: Any, device: torch.device | str, arch: str) -> AccelOptions:
    """Read the speed switches of a ``Config`` (missing fields count as "auto") for a device and arch."""
    best = default_options(device, arch)
    mode = str(getattr(config, "compile", "auto")).strip().lower()
    if mode == "auto":
        mode = best.compile
    if mode not in COMPILE_MODES:
        raise ValueError(f"config compile: {mode!r} is not one of auto, {', '.join(COMPILE_MODES)}")
    is_cuda = torch.device(device).type == "cuda"
    graphs = _switch(getattr(config, "cuda_graphs", "auto"), best.cuda_graphs, "cuda_graphs") and is_cuda
    if mode == "reduce-overhead":
        graphs = False  # the compiler captures its own graphs then
    return replace(
        best,
        channels_last=_switch(getattr(config, "channels_last", "auto"), best.channels_last, "channels_last"),
        subpixel=_switch(getattr(config, "subpixel", "auto"), best.subpixel, "subpixel"),
        compile=mode,
        cuda_graphs=graphs,
        prefetch=max(1, int(getattr(config, "prefetch", best.prefetch) or 1)),
    )
