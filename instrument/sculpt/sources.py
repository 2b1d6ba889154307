"""The two shapes a sculpt model comes in on disk: a diffusers pipeline folder, and a single-file checkpoint.

Each loader gives ``Parts``: the UNet (fp32, CPU), its noise schedule and scheduler class, the text side
(tokenizer and encoder loaded when a prompt first needs them) and a label for people.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from instrument.decoders.autoencoder import ModelLoadError
from instrument.decoders.checkpoints import read_state_dict
from instrument.decoders.loaders import fetch_from_hub, parse_hub_source
from instrument.sculpt import single_file
from instrument.sculpt.prompts import TextSide
from instrument.sculpt.schedule import NoiseSchedule


class Parts(NamedTuple):
    unet: nn.Module
    schedule: NoiseSchedule
    scheduler_class: str
    text: TextSide
    label: str


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file (a pipeline folder needs it)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: unreadable: {e}") from None


def file_identity(path: Path) -> str:
    """A file's name, size and time: what the prompt cache keys an encoder's weights by."""
    stat = path.stat()
    return json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns])


def weights_file(folder: Path, stem: str) -> tuple[Path, str | None]:
    """The weights in a diffusers model folder and their variant: ``<stem>.safetensors`` (None), else
    ``<stem>.fp16.safetensors`` ("fp16"), else ``<stem>.bin`` (read with weights_only)."""
    for suffix, variant in ((".safetensors", None), (".fp16.safetensors", "fp16"), (".bin", None)):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix), variant
    raise ModelLoadError(f"{folder}: no {stem}.safetensors (nor .fp16.safetensors, .bin)")


def schedule_from(config: dict, where: Path) -> NoiseSchedule:
    try:
        return NoiseSchedule.from_config(config)
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{where}: {e}") from None


def load_pipeline_folder(folder: Path, origin: str, name: str | None = None) -> Parts:
    """A diffusers pipeline folder's UNet, scheduler config, tokenizer and (lazily) text encoder."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    unet_dir, text_dir, tokenizer_dir = folder / "unet", folder / "text_encoder", folder / "tokenizer"
    if not (unet_dir / "config.json").is_file():
        raise ModelLoadError(f"{folder}: not a diffusers pipeline folder (no unet/config.json)")
    class_name = read_json(unet_dir / "config.json").get("_class_name")
    if class_name != "UNet2DConditionModel":
        raise ModelLoadError(f"{unet_dir}/config.json: _class_name {class_name!r}, not UNet2DConditionModel")
    _, variant = weights_file(unet_dir, "diffusion_pytorch_model")
    try:
        unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", variant=variant,
                                                    local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        detail = " ".join(str(e).split())[:300]
        raise ModelLoadError(f"{unet_dir}: could not load the UNet: {detail}") from None
    scheduler = read_json(folder / "scheduler" / "scheduler_config.json")
    schedule = schedule_from(scheduler, folder / "scheduler" / "scheduler_config.json")
    text_config = read_json(text_dir / "config.json")
    if not text_config.get("hidden_size"):
        raise ModelLoadError(f"{text_dir}/config.json: no hidden_size; not a CLIP text encoder config")
    encoder_file, encoder_variant = weights_file(text_dir, "model")
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(f"{tokenizer_dir}: could not load the tokenizer: {e}") from None

    def load_encoder() -> nn.Module:
        from safetensors import SafetensorError
        from transformers import CLIPTextModel

        try:
            return CLIPTextModel.from_pretrained(str(text_dir), variant=encoder_variant,
                                                 local_files_only=True)
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:
            detail = " ".join(str(e).split())[:300]
            raise ModelLoadError(f"{encoder_file}: could not load the text encoder: {detail}") from None

    text = TextSide(
        identity=file_identity(encoder_file),
        special_ids=(tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id),
        length=int(text_config.get("max_position_embeddings", 77)),
        hidden_size=int(text_config.get("hidden_size", 0)),
        load_tokenizer=lambda: tokenizer, load_encoder=load_encoder,
    )  # fmt: skip
    label = f"{name or folder.name} ({origin})"
    return Parts(unet, schedule, str(scheduler.get("_class_name", "")), text, label)


def load_checkpoint(path: Path, offline: bool) -> Parts:
    """A single-file SD 1.x / 2.x checkpoint's UNet and (lazily) its text encoder; see ``single_file``."""
    state = read_state_dict(path)
    arch = single_file.checkpoint_arch(state, path)
    unet = single_file.load_unet(state, path, arch)
    text_config = single_file.text_config_from_weights(state, path, arch)
    del state  # the text encoder reads the file again if a prompt needs it
    configs = single_file.arch_config(arch)
    ids = configs["tokenizer"]
    text = TextSide(
        identity=file_identity(path),
        special_ids=(ids["bos_token_id"], ids["eos_token_id"], ids["pad_token_id"]),
        length=text_config["max_position_embeddings"], hidden_size=text_config["hidden_size"],
        load_tokenizer=lambda: hub_tokenizer(ids["hub"], ids["pad_token_id"], offline),
        load_encoder=lambda: single_file.load_text_encoder(path, arch, text_config),
    )  # fmt: skip
    schedule = schedule_from(configs["scheduler"], single_file.CONFIGS / f"{arch}.json")
    return Parts(unet, schedule, "", text, f"{configs['label']} (single file {path.name})")


def hub_tokenizer(source: str, pad_token_id: int, offline: bool) -> Any:
    """An architecture's CLIP tokenizer from the hub (``owner/name/subfolder``), fetched once: what a prompt
    needs beside a single-file checkpoint, which has no vocabulary."""
    from transformers import CLIPTokenizer

    repo, sub, _, revision = parse_hub_source(source)
    try:
        vocab = fetch_from_hub(repo, None, f"{sub}/vocab.json", revision, offline)
        fetch_from_hub(repo, None, f"{sub}/merges.txt", revision, offline)
    except ModelLoadError as e:
        raise ModelLoadError(f"a prompt needs the model's tokenizer ({e}); the empty prompt works without it"
                             ) from None
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab.parent), local_files_only=True)
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_token_id)
    return tokenizer
