"""A LoRA fused into a sculpt UNet: SD 1.5 + LCM-LoRA is a 2-4 step model.

The LoRA is read with the package's safe reader (safetensors or ``weights_only``), handed to diffusers (which
understands the diffusers, PEFT and kohya/A1111 key layouts), loaded through PEFT and fused into the UNet's
weights; the adapter layers are then removed, so the UNet runs as fast as one without a LoRA.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from instrument.decoders.autoencoder import ModelLoadError
from instrument.decoders.checkpoints import read_state_dict
from instrument.decoders.loaders import fetch_from_hub, looks_like_path, parse_hub_source

HUB_LORA_FILE = "pytorch_lora_weights.safetensors"  # the name diffusers' training scripts save under


def lora_path(source: str, offline: bool) -> Path:
    """A LoRA's local file: a path, or a hub repo (``owner/name`` or ``owner/name/file.safetensors``)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.exists() or looks_like_path(source):
        raise ModelLoadError(f"{source}: no such LoRA file")
    repo, _, filename, revision = parse_hub_source(source)
    return fetch_from_hub(repo, None, filename or HUB_LORA_FILE, revision, offline)


def fuse_lora(unet: nn.Module, source: str, offline: bool = False) -> Path:
    """Fuse the LoRA at ``source`` into ``unet`` (in place; fp32 weights fuse best). Returns its file."""
    from diffusers import StableDiffusionPipeline

    path = lora_path(source, offline)
    state = read_state_dict(path)
    try:
        found = StableDiffusionPipeline.lora_state_dict(state)
        lora_state, alphas = found[0], found[1]
    except (KeyError, ValueError, RuntimeError) as e:
        raise ModelLoadError(f"{path}: not a LoRA diffusers can read ({type(e).__name__}: {e})") from None
    if not any(k.startswith("unet.") for k in lora_state):
        raise ModelLoadError(f"{path}: a LoRA without UNet weights (first keys: {list(lora_state)[:3]})")
    try:
        unet.load_lora_adapter(lora_state, prefix="unet", network_alphas=alphas, adapter_name="sculpt")
    except (KeyError, ValueError, RuntimeError) as e:
        detail = " ".join(str(e).split())[:200]
        raise ModelLoadError(f"{path}: does not fit this UNet ({type(e).__name__}: {detail})") from None
    unet.fuse_lora()
    unet.unload_lora()
    return path
