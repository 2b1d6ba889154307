"""Sculpt models: a UNet, its noise schedule and its text side, from wherever a user keeps them.

``load_sculpt_model(source, lora=None)`` takes, by the decoders' rules (safetensors or ``weights_only``,
offline once cached, one ModelLoadError naming the file):

- a Hugging Face repo id, ``owner/name[@revision]`` (default ``stabilityai/sd-turbo``): its UNet, text
  encoder, tokenizer and scheduler config, downloaded once (``hub.py``);
- ``owner/name/file.safetensors``: a single file from the hub;
- a local diffusers pipeline folder (``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``);
- a single-file SD 1.x / 2.x checkpoint, ``.safetensors`` (or ``.ckpt``) (``single_file.py``);
- plus ``lora``: a LoRA file or repo fused into the UNet (SD 1.5 + ``latent-consistency/lcm-lora-sdv1-5``).

SD 1.x and 2.x (SD-Turbo) denoise the SD VAE's latents scaled by 0.18215: the ``sd15`` family's diffusion
space, the space every latent of the instrument is in, so a sculpt needs no conversion at either end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from instrument.decoders.autoencoder import ModelLoadError
from instrument.decoders.families import Family, get_family
from instrument.decoders.loaders import fetch_from_hub, looks_like_path, parse_hub_source
from instrument.devices import resolve_device, resolve_dtype
from instrument.sculpt import single_file
from instrument.sculpt.hub import fetch_pipeline
from instrument.sculpt.lora import fuse_lora
from instrument.sculpt.prompts import TextSide
from instrument.sculpt.schedule import NoiseSchedule
from instrument.sculpt.sources import load_checkpoint, load_pipeline_folder

log = logging.getLogger(__name__)

DEFAULT_MODEL = "stabilityai/sd-turbo"
# Words in a model's or LoRA's name that mark a few-step distilled model: guidance off.
DISTILLED_HINTS = ("turbo", "lcm", "lightning", "hyper")
UNET_FAMILY = "sd15"  # SD 1.x and 2.x UNets both work in the SD VAE's latent space


@dataclass
class SculptModel:
    """A loaded sculpt model. ``unet``: diffusers ``UNet2DConditionModel`` on ``device`` in ``dtype``, no
    gradients. ``schedule``: its training noise schedule. ``sampler``: "ddim" or "lcm". ``distilled``: a
    few-step model that ignores guidance. ``family``: the latent space it denoises. ``text``: how prompts
    become embeddings. ``label``: for people ("SD-Turbo (hub)"); ``source`` and ``lora``: where it came from
    (what a take's re-render loads again)."""

    unet: nn.Module
    schedule: NoiseSchedule
    sampler: str
    distilled: bool
    family: Family
    text: TextSide
    label: str
    source: str
    device: torch.device
    dtype: torch.dtype
    lora: str | None = None

    def __repr__(self) -> str:
        return f"SculptModel({self.label!r}, {self.sampler}, {self.device} {self.dtype})"


def load_sculpt_model(
    source: str = DEFAULT_MODEL,
    *,
    lora: str | None = None,
    family: str | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    offline: bool = False,
) -> SculptModel:
    """Load the sculpt model at ``source`` (see the module docstring) onto ``device`` in ``dtype``.

    ``family``, if given, must be the model's (ModelLoadError otherwise). ``offline`` (or HF_HUB_OFFLINE=1)
    never touches the network.
    """
    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, device)
    path = Path(source).expanduser()
    if path.is_dir():
        parts = load_pipeline_folder(path, "local folder")
    elif path.is_file():
        parts = load_checkpoint(path, offline)
    elif path.exists() or looks_like_path(source):
        raise ModelLoadError(f"{source}: no such file or folder")
    else:
        repo, sub, filename, revision = parse_hub_source(source)
        if filename:
            parts = load_checkpoint(fetch_from_hub(repo, sub, filename, revision, offline), offline)
        else:
            parts = load_pipeline_folder(fetch_pipeline(repo, revision, offline), "hub", name=repo)
    unet, schedule, scheduler_class, text, label = parts
    found = unet_family(unet, family, source)
    if lora:
        label += f" + LoRA {fuse_lora(unet, lora, offline).name}"
    names = f"{source} {lora or ''}".lower()
    lcm = scheduler_class == "LCMScheduler" or "lcm" in names
    # (nn.Module.to: diffusers' own override warns about fp32 modules even when a model has none)
    nn.Module.to(unet.eval().requires_grad_(False), device, dtype)
    model = SculptModel(
        unet=unet, schedule=schedule, sampler="lcm" if lcm else "ddim",
        distilled=lcm or any(word in names for word in DISTILLED_HINTS), family=found, text=text, label=label,
        source=source, device=device, dtype=dtype, lora=lora or None,
    )  # fmt: skip
    log.info("sculpt model: %s (%s sampler%s)", label, model.sampler, ", distilled" * model.distilled)
    return model


def unet_family(unet: nn.Module, family: str | None, source: str) -> Family:
    """The latent family a UNet denoises; ModelLoadError when ``family`` is given and is not it."""
    config = unet.config
    if config.get("addition_embed_type") == "text_time":
        raise ModelLoadError(f"{source}: an SDXL UNet; sculpting takes SD 1.x and SD 2.x (SD-Turbo) models")
    if config.get("time_cond_proj_dim"):
        raise ModelLoadError(f"{source}: an LCM-distilled UNet (guidance embedded); use SD 1.5 + an LCM-LoRA")
    found = get_family(UNET_FAMILY)
    if config.in_channels != found.latent_channels:
        raise ModelLoadError(f"{source}: a UNet for {config.in_channels}-channel latents; sculpting takes "
                             f"{found.latent_channels}-channel SD 1.x / 2.x latents")
    if family is not None and get_family(family) != found:
        raise ModelLoadError(f"{source}: this UNet works in the {found.name} latent space, not {family}")
    return found


def require_family(model: SculptModel, family: Family | str) -> None:
    """Refuse (ModelLoadError) to sculpt for a decoder of another latent family."""
    name = family if isinstance(family, str) else family.name
    if name != model.family.name:
        wanted = model.family.name
        raise ModelLoadError(
            f"sculpt model {model.label} works in the {wanted} latent space, but the decoder plays {name} "
            f"latents; use a decoder of the {wanted} family (--family {wanted}) or leave sculpt at 0"
        )


def random_sculpt_model(arch: str = "sd21", *, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", seed: int = 0, tiny: bool = False) -> SculptModel:
    """The real SD 2.x (SD-Turbo, ``arch`` "sd21") or SD 1.x ("sd15") UNet with random weights, beside a
    one-layer random text encoder of the real width (only the empty prompt: no vocabulary): for benchmarks.
    ``tiny``: a two-level 32/64-channel UNet of the same kind, for smoke runs."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, device)
    configs = single_file.arch_config(arch)
    unet_config, text_config = configs["unet"], {**configs["text_encoder"], "num_hidden_layers": 1}
    if tiny:
        unet_config = {**unet_config, "block_out_channels": [32, 64], "layers_per_block": 1,
                       "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                       "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 64,
                       "attention_head_dim": [1, 1] if arch == "sd21" else 8}  # fmt: skip
        text_config.update(hidden_size=64, intermediate_size=128, num_attention_heads=1)
    text_config.pop("architectures", None)

    def text_encoder() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            return CLIPTextModel(CLIPTextConfig(**text_config))

    def no_tokenizer():
        raise ModelLoadError("a model with random weights has no vocabulary: only the empty prompt")

    ids = configs["tokenizer"]
    text = TextSide(
        identity=f"random {arch} seed {seed}{' tiny' if tiny else ''}",
        special_ids=(ids["bos_token_id"], ids["eos_token_id"], ids["pad_token_id"]),
        length=text_config["max_position_embeddings"], hidden_size=text_config["hidden_size"],
        load_tokenizer=no_tokenizer, load_encoder=text_encoder,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(unet_config)
    nn.Module.to(unet.eval().requires_grad_(False), device, dtype)
    return SculptModel(
        unet=unet, schedule=NoiseSchedule.from_config(configs["scheduler"]), sampler="ddim",
        distilled=arch == "sd21", family=get_family(UNET_FAMILY), text=text,
        label=f"{configs['label']} (random weights{', tiny' * tiny})", source="random", device=device,
        dtype=dtype,
    )  # fmt: skip
