"""Tiny randomly initialised sculpt models built from configs, saved the ways users keep real ones.

``arch`` "sd15" is shaped like SD 1.x (convolutional attention projections, CLIP with quick_gelu), "sd21"
like SD 2.x / SD-Turbo (linear projections, OpenCLIP-style text encoder with gelu). The text encoders keep
CLIP's vocabulary size, so that the real special token ids (49406, 49407) are valid, and a tiny tokenizer
spells a few words with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

BOS, EOS = 49406, 49407
WORDS_MERGES = ["m a", "ma r", "mar b", "marb l", "marbl e</w>",
                "s t", "st a", "sta t", "stat u", "statu e</w>"]  # "marble", "statue"


def tiny_vocab() -> dict[str, int]:
    """Letters, a few merges, and CLIP's special tokens at their real ids."""
    vocab = {"!": 0}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    for merge in WORDS_MERGES:
        vocab[merge.replace(" ", "")] = len(vocab)
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = BOS, EOS
    return vocab


def tiny_tokenizer(arch: str = "sd15"):
    """A CLIPTokenizer over ``tiny_vocab``; pads with <|endoftext|> (sd15) or "!" (sd21, id 0) as SD's do."""
    from transformers import CLIPTokenizer

    merges = [tuple(m.split()) for m in WORDS_MERGES]
    pad = "!" if arch == "sd21" else "<|endoftext|>"
    return CLIPTokenizer(vocab=tiny_vocab(), merges=merges, pad_token=pad, model_max_length=77)


def write_vocab_files(folder: Path) -> None:
    """``vocab.json`` and ``merges.txt``: a tokenizer folder as SD repos on the hub keep it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(tiny_vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(WORDS_MERGES) + "\n")


def tiny_text_encoder(arch: str = "sd15", seed: int = 1):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=EOS + 1, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
        max_position_embeddings=77, hidden_act="gelu" if arch == "sd21" else "quick_gelu", bos_token_id=BOS,
        eos_token_id=EOS, pad_token_id=0 if arch == "sd21" else EOS, projection_dim=32,
    )  # fmt: skip
    return CLIPTextModel(config).eval()


def tiny_unet(arch: str = "sd15", seed: int = 0):
    """Two levels (32, 64 channels), cross-attention at the first, 64-wide text conditioning."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(1, 1) if arch == "sd21" else 8,
        use_linear_projection=arch == "sd21", norm_num_groups=32,
    ).eval()  # fmt: skip


def tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(2)
    return AutoencoderKL(block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",),
                         up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=8).eval()


def scheduler(kind: str = "euler"):
    from diffusers import EulerDiscreteScheduler, LCMScheduler

    common = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    if kind == "lcm":
        return LCMScheduler(**common)
    return EulerDiscreteScheduler(timestep_spacing="trailing", **common)


def save_pipeline(folder: Path, arch: str = "sd15", kind: str = "euler", unet=None) -> Path:
    """A StableDiffusionPipeline of the tiny parts, saved with diffusers' own save_pretrained."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=tiny_vae(), text_encoder=tiny_text_encoder(arch), tokenizer=tiny_tokenizer(arch),
        unet=unet if unet is not None else tiny_unet(arch), scheduler=scheduler(kind), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder


# ---- the original (LDM) single-file layout, the inverse of diffusers' converter


RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
          "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}  # fmt: skip


def ldm_unet_key(key: str, layers: int, levels: int) -> str:
    """A diffusers UNet key in the original layout (``layers`` resnets per down level)."""
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}  # fmt: skip
    head, _, leaf = key.rpartition(".")
    if head in fixed:
        return f"{fixed[head]}.{leaf}"
    parts = key.split(".")

    def resnet(rest: list[str]) -> str:
        return ".".join([RESNET.get(rest[0], rest[0]), *rest[1:]])

    if parts[0] == "down_blocks":
        level = int(parts[1])
        if parts[2] == "downsamplers":
            return f"input_blocks.{(level + 1) * (layers + 1)}.0.op.{parts[-1]}"
        block = 1 + level * (layers + 1) + int(parts[3])
        which = "0." + resnet(parts[4:]) if parts[2] == "resnets" else "1." + ".".join(parts[4:])
        return f"input_blocks.{block}.{which}"
    if parts[0] == "mid_block":
        index = {("resnets", "0"): 0, ("attentions", "0"): 1, ("resnets", "1"): 2}[(parts[1], parts[2])]
        rest = resnet(parts[3:]) if parts[1] == "resnets" else ".".join(parts[3:])
        return f"middle_block.{index}.{rest}"
    level = int(parts[1])  # up_blocks
    if parts[2] == "upsamplers":
        has_attention = level >= 1  # (the tiny UNet's up levels: attention in all but the first)
        return f"output_blocks.{level * (layers + 1) + layers}.{2 if has_attention else 1}.conv.{parts[-1]}"
    block = level * (layers + 1) + int(parts[3])
    which = "0." + resnet(parts[4:]) if parts[2] == "resnets" else "1." + ".".join(parts[4:])
    return f"output_blocks.{block}.{which}"


def open_clip_state(text_state: dict, prefix: str) -> dict:
    """A CLIPTextModel state dict in OpenCLIP's layout (one extra final block, which SD 2.x skips)."""
    out = {prefix + "token_embedding.weight": text_state["text_model.embeddings.token_embedding.weight"],
           prefix + "positional_embedding": text_state["text_model.embeddings.position_embedding.weight"],
           prefix + "ln_final.weight": text_state["text_model.final_layer_norm.weight"],
           prefix + "ln_final.bias": text_state["text_model.final_layer_norm.bias"],
           prefix + "text_projection": torch.zeros(64, 32)}  # fmt: skip
    layers = 1 + max(int(k.split(".")[3]) for k in text_state if k.startswith("text_model.encoder.layers."))
    for i in range(layers + 1):
        source = i if i < layers else layers - 1  # the extra block: any weights, it is never used
        src, dst = f"text_model.encoder.layers.{source}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [text_state[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv)
            out[f"{dst}attn.out_proj.{kind}"] = text_state[f"{src}self_attn.out_proj.{kind}"]
            out[f"{dst}ln_1.{kind}"] = text_state[f"{src}layer_norm1.{kind}"]
            out[f"{dst}ln_2.{kind}"] = text_state[f"{src}layer_norm2.{kind}"]
            out[f"{dst}mlp.c_fc.{kind}"] = text_state[f"{src}mlp.fc1.{kind}"]
            out[f"{dst}mlp.c_proj.{kind}"] = text_state[f"{src}mlp.fc2.{kind}"]
    return out


def save_single_file(path: Path, arch: str = "sd15", unet=None, text_encoder=None) -> Path:
    """A whole checkpoint in the original layout (UNet, text encoder and a VAE), as A1111/ComfyUI keep it."""
    unet = unet if unet is not None else tiny_unet(arch)
    text_encoder = text_encoder if text_encoder is not None else tiny_text_encoder(arch)
    state = {"model.diffusion_model." + ldm_unet_key(k, 1, 2): v for k, v in unet.state_dict().items()}
    # (as real checkpoints name them: transformers 5.6 dropped CLIPTextModel's "text_model." level)
    text_state = {k if k.startswith("text_model.") else "text_model." + k: v
                  for k, v in text_encoder.state_dict().items()}
    if arch == "sd15":
        state.update({"cond_stage_model.transformer." + k: v for k, v in text_state.items()})
    else:
        state.update(open_clip_state(text_state, "cond_stage_model.model."))
    state.update({"first_stage_model." + k: v for k, v in tiny_vae().state_dict().items()})
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(path))
    return path


def save_tiny_taesd(folder: Path) -> Path:
    """A tiny randomly initialised diffusers AutoencoderTiny (TAESD, SD 1.x latents), saved as a folder:
    the decoder a sculpting session plays through, loaded by the user's path."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(3)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(folder)
    return folder
