"""Single-file SD checkpoints (the ``.safetensors`` ComfyUI and A1111 users keep): UNet and text encoder.

A whole checkpoint in the original (LDM) layout holds the UNet under ``model.diffusion_model.``, the text
encoder under ``cond_stage_model.`` (SD 1.x: Hugging Face CLIP names; SD 2.x: OpenCLIP's) and the VAE under
``first_stage_model.``. The architecture is read off the weights (SD 2.x's UNet projects attention with
linear layers, SD 1.x's with 1x1 convolutions), starting from the configs shipped in ``configs/``, so nothing
is fetched; diffusers' own converters rename the keys. No tokenizer is in the file: the empty prompt needs
none, other prompts fetch the architecture's tokenizer from the hub once (``configs/<arch>.json``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import torch

from instrument.decoders.autoencoder import ModelLoadError
from instrument.decoders.checkpoints import fit_state_dict, read_state_dict

CONFIGS = Path(__file__).with_name("configs")
UNET_PREFIX = "model.diffusion_model."
CLIP_PREFIX = "cond_stage_model.transformer."  # SD 1.x: Hugging Face CLIP key names after it
OPEN_CLIP_PREFIX = "cond_stage_model.model."  # SD 2.x: OpenCLIP key names after it
# Text encoder keys a checkpoint may hold that CLIPTextModel has no place for (a buffer, a projection)
UNUSED_TEXT_KEYS = ("text_model.embeddings.position_ids", "text_projection.weight")
HEAD_WIDTH = 64  # channels per attention head: SD 2.x's UNet and both text encoders


def arch_config(arch: str) -> dict:
    """The shipped configs of an architecture ("sd15" or "sd21"): unet, text_encoder, tokenizer, scheduler."""
    return json.loads((CONFIGS / f"{arch}.json").read_text())


def checkpoint_arch(state: dict[str, torch.Tensor], path: Path) -> str:
    """"sd15" or "sd21" for a single-file checkpoint; ModelLoadError for anything else."""
    unet_keys = [k for k in state if k.startswith(UNET_PREFIX)]
    if not unet_keys:
        raise ModelLoadError(
            f"{path}: no UNet in this file (no {UNET_PREFIX}* keys): not a whole SD checkpoint "
            "(a VAE, a LoRA or a UNet alone in diffusers layout?)"
        )
    if UNET_PREFIX + "label_emb.0.0.weight" in state:
        raise ModelLoadError(f"{path}: an SDXL-style checkpoint; sculpting takes SD 1.x and 2.x (SD-Turbo)")
    proj_in = next((state[k] for k in unet_keys if k.endswith(".1.proj_in.weight")), None)
    if proj_in is None:
        raise ModelLoadError(f"{path}: a UNet without cross-attention; not an SD text-to-image checkpoint")
    return "sd21" if proj_in.ndim == 2 else "sd15"


def unet_config_from_weights(unet: dict[str, torch.Tensor], base: dict, arch: str) -> dict:
    """A ``UNet2DConditionModel`` config fitting LDM-layout UNet weights (keys without the prefix): ``base``
    with every size read off the weights. Attention head counts leave no trace in the weights: SD 1.x uses 8
    heads, SD 2.x heads of 64 channels."""
    levels = 1 + sum(1 for k in unet if re.fullmatch(r"input_blocks\.\d+\.0\.op\.weight", k))
    blocks = 1 + max(int(m.group(1)) for k in unet if (m := re.match(r"input_blocks\.(\d+)\.", k)))
    per_level = (blocks - 1) // levels  # resnets per level (each level but the last adds a downsampler)
    first = [1 + level * (per_level + 1) for level in range(levels)]
    widths = [int(unet[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0]) for i in first]
    attention = [any(k.startswith(f"input_blocks.{i}.1.") for k in unet) for i in first]
    up_attention = [any(k.startswith(f"output_blocks.{j * (per_level + 1)}.1.proj_in") for k in unet)
                    for j in range(levels)]
    to_k = next(v for k, v in unet.items() if k.endswith("attn2.to_k.weight"))
    block = rf"input_blocks\.{first[attention.index(True)]}\.1\.transformer_blocks\.(\d+)\."
    depth = 1 + max(int(m.group(1)) for k in unet if (m := re.match(block, k)))
    config = copy.deepcopy(base)
    config.update(
        block_out_channels=widths,
        layers_per_block=per_level,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attention],
        in_channels=int(unet["input_blocks.0.0.weight"].shape[1]),
        out_channels=int(unet["out.2.weight"].shape[0]),
        cross_attention_dim=int(to_k.shape[1]),
        norm_num_groups=min(32, math.gcd(*widths)),
        transformer_layers_per_block=depth,
    )
    if arch == "sd21":
        config["attention_head_dim"] = [max(1, w // HEAD_WIDTH) for w in widths]
    return config


def load_unet(state: dict[str, torch.Tensor], path: Path, arch: str):
    """The checkpoint's UNet as a diffusers ``UNet2DConditionModel`` (fp32, CPU)."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet_state = {k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    try:
        config = unet_config_from_weights(unet_state, arch_config(arch)["unet"], arch)
        converted = convert_ldm_unet_checkpoint(state, config)
        unet = UNet2DConditionModel.from_config(config)
    except (KeyError, StopIteration, ValueError) as e:
        detail = f"{type(e).__name__}: {e}"[:200]
        raise ModelLoadError(f"{path}: UNet weights incomplete or not SD-shaped ({detail})") from None
    fit_state_dict(unet, converted, path, "an SD UNet")
    return unet


def text_config_from_weights(state: dict[str, torch.Tensor], path: Path, arch: str) -> dict:
    """A ``CLIPTextConfig`` dict fitting the checkpoint's text encoder (SD 2.x: all but OpenCLIP's last layer,
    the "penultimate" layer SD 2.x conditions on)."""
    config = arch_config(arch)["text_encoder"]
    if arch == "sd15":
        layer = CLIP_PREFIX + "text_model.encoder.layers.{}.mlp.fc1.weight"
        embedding = state.get(CLIP_PREFIX + "text_model.embeddings.token_embedding.weight")
        positions = state.get(CLIP_PREFIX + "text_model.embeddings.position_embedding.weight")
    else:
        layer = OPEN_CLIP_PREFIX + "transformer.resblocks.{}.mlp.c_fc.weight"
        embedding = state.get(OPEN_CLIP_PREFIX + "token_embedding.weight")
        positions = state.get(OPEN_CLIP_PREFIX + "positional_embedding")
    if embedding is None or positions is None or layer.format(0) not in state:
        raise ModelLoadError(f"{path}: no {arch} text encoder in this checkpoint (cond_stage_model.* keys)")
    layers = 0
    while layer.format(layers) in state:
        layers += 1
    hidden = int(embedding.shape[1])
    config.update(
        vocab_size=int(embedding.shape[0]),
        hidden_size=hidden,
        max_position_embeddings=int(positions.shape[0]),
        num_hidden_layers=layers - 1 if arch == "sd21" else layers,
        num_attention_heads=max(1, hidden // HEAD_WIDTH),
        intermediate_size=int(state[layer.format(0)].shape[0]),
    )
    return config


def load_text_encoder(path: Path, arch: str, config: dict):
    """The checkpoint's text encoder as a ``CLIPTextModel`` (fp32, CPU): reads the file again (it runs only
    for a prompt that is not cached, so the UNet's load need not hold these weights)."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    state = read_state_dict(path)
    model = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in config.items() if k != "architectures"}))
    if arch == "sd15":
        converted = convert_ldm_clip_checkpoint(state)
    else:
        last = config["num_hidden_layers"]  # OpenCLIP's final block, which SD 2.x skips
        skipped = f"{OPEN_CLIP_PREFIX}transformer.resblocks.{last}."
        kept = {k: v for k, v in state.items() if not k.startswith(skipped)}
        converted = convert_open_clip_checkpoint(model, kept, prefix=OPEN_CLIP_PREFIX)
    converted = {k: v for k, v in converted.items() if k not in UNUSED_TEXT_KEYS}
    if not hasattr(model, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    fit_state_dict(model, converted, path, "the text encoder")
    return model
