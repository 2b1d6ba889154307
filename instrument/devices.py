"""Where tensors live and in what precision: CUDA, then MPS, then the CPU; fp16 on GPUs, fp32 on CPU."""

from __future__ import annotations

import torch

from instrument.errors import UserError

DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


class DeviceError(UserError, ValueError):
    """A device or dtype that does not exist, or is not available on this machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> the best device present (cuda, mps, cpu); anything else is parsed by torch.

    An explicit device that is not available (``"cuda"`` on a Mac) raises DeviceError saying so, rather than
    failing later inside a kernel.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but this torch build sees no CUDA GPU; use auto or "
                          "cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} asked for, but there are {torch.cuda.device_count()} CUDA GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} asked for, but MPS is not available here; use auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {name!r}: the instrument runs on cpu, cuda or mps")
    return device


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """``"auto"`` -> fp16 on cuda/mps, fp32 on cpu; otherwise fp16 / bf16 / fp32 (and their torch names)."""
    name = (name or "auto").strip().lower().removeprefix("torch.")
    if name == "auto":
        return torch.float16 if torch.device(device).type in ("cuda", "mps") else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise DeviceError(f"unknown dtype {name!r}; use auto, fp16, bf16 or fp32") from None
