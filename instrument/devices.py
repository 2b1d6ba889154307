"""Where tensors live and in what precision: CUDA, then MPS, then the CPU; fp16 on GPUs, fp32 on CPU."""

from __future__ import annotations

import torch

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


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> the best device present (cuda, mps, cpu); anything else is parsed by torch.

    An explicit device that is not available (``"cuda"`` on a Mac) raises ValueError saying so, rather than
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
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch build sees no CUDA GPU")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for, but MPS is not available here")
    return device


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """``"auto"`` -> fp16 on cuda/mps, fp32 on cpu; otherwise fp16 / bf16 / fp32 (and their torch names)."""
    name = (name or "auto").strip().lower().removeprefix("torch.")
    if name == "auto":
        return torch.float16 if torch.device(device).type in ("cuda", "mps") else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use auto, fp16, bf16 or fp32") from None
