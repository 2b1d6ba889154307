"""Reading weight files safely and turning single-file SD VAEs into diffusers ``AutoencoderKL`` models.

Files are read with safetensors or ``torch.load(weights_only=True)``: never an arbitrary unpickle. A
single-file VAE comes in one of two key layouts: diffusers (``encoder.down_blocks.0.resnets.0...``) or the
original LDM one (``encoder.down.0.block.0...``, often under ``first_stage_model.`` inside a whole SD
checkpoint); the latter is converted with diffusers' own ``convert_ldm_vae_checkpoint``. The model's shape
is read off the weights, starting from the SD 1.5 VAE config shipped beside this file, so nothing needs the
network.
"""

from __future__ import annotations

import contextlib
import json
import math
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from instrument.decoders.autoencoder import ModelLoadError
from instrument.errors import file_problem, impostor, read_head

SD15_VAE_CONFIG = Path(__file__).with_name("sd15_vae_config.json")
LDM_PREFIXES = ("first_stage_model.", "vae.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in a ``.safetensors``, ``.pth``, ``.pt``, ``.ckpt`` or ``.bin`` file: name -> CPU tensor.

    A Lightning-style ``{"state_dict": {...}}`` wrapper is unwrapped. Raises ModelLoadError naming the file
    for a missing, empty, truncated or unsafe file, and for one that is not a checkpoint at all (a web page
    or a Git LFS pointer saved under the checkpoint's name).
    """
    check_weights_file(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(f"{path}: unreadable safetensors (truncated or corrupt?): {e}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "Unsupported operand" in str(e):  # not a pickle at all
                raise ModelLoadError(
                    f"{path}: not a PyTorch checkpoint (truncated or corrupt?); download it again"
                ) from None
            raise ModelLoadError(
                f"{path}: holds Python objects besides tensors, so it was not loaded (only plain state dicts "
                "are read, with torch.load(weights_only=True), because unpickling can run arbitrary code). "
                "If you trust the file, re-save its state dict, ideally as .safetensors"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError) as e:
            first = (str(e) or type(e).__name__).splitlines()[0].split(". ")[0]
            raise ModelLoadError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): "
                                 f"{first}; download it again") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: expected a state dict (name -> tensor), not a {type(state).__name__}")
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path}: holds no tensors")
    return tensors


def check_weights_file(path: Path) -> None:
    """ModelLoadError unless ``path`` is a regular, non-empty file that starts like binary weights."""
    problem = file_problem(path)
    if problem is None:
        head = read_head(path)
        fake = impostor(head)
        if fake is not None:
            problem = f"not a checkpoint: looks like {fake}; download the real file"
        elif b"\0" not in head and _is_utf8(head):
            problem = f"not a checkpoint: a text file (it starts {head[:40].decode().strip()!r}); " \
                      "download the real file"
    if problem is not None:
        raise ModelLoadError(f"{path}: {problem}")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start > len(data) - 4  # a character cut at the end of the sample still counts as text
    return True


# What building a model from a file's contents raises when the contents are not what their names promise
# (a tensor of the wrong rank, a config value of the wrong type, a key the converter needs missing).
MALFORMED = (KeyError, IndexError, ValueError, TypeError, AttributeError, RuntimeError, OSError,
             SafetensorError)


@contextlib.contextmanager
def made_from(path: Path | str, what: str) -> Iterator[None]:
    """Turn any MALFORMED error inside into a ModelLoadError naming ``path``: a model built from a file
    that does not hold what it claims is the file's fault, whichever line finds out."""
    try:
        yield
    except ModelLoadError:
        raise
    except MALFORMED as e:
        detail = " ".join((str(e) or type(e).__name__).split())[:200]
        raise ModelLoadError(f"{path}: not a usable {what} ({type(e).__name__}: {detail})") from None


def key_layout(state: dict[str, torch.Tensor]) -> str:
    """Which key naming a state dict uses: "taesd" (``<index>.<path>``), "diffusers" (AutoencoderKL),
    "ldm" (the original SD VAE), "tiny" (diffusers AutoencoderTiny) or "unknown"."""
    keys = list(state)
    if all(re.match(r"\d+\.", k) for k in keys):
        return "taesd"
    if any(".layers." in k and k.startswith(("encoder.", "decoder.")) for k in keys):
        return "tiny"
    if any(k.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for k in keys):
        return "diffusers"
    if any(re.match(r"(first_stage_model\.|vae\.)?(encoder\.down|decoder\.up)\.\d+\.", k) for k in keys):
        return "ldm"
    return "unknown"


def ldm_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original-layout (LDM) VAE state dict to diffusers' names, using diffusers' converter."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    # A whole SD checkpoint carries the VAE under a prefix: keep only those keys, the converter wants a VAE.
    prefix = next((p for p in LDM_PREFIXES if any(k.startswith(p + "encoder.") for k in state)), "")
    vae = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    levels = 1 + max(int(m.group(1)) for k in vae if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    config = {
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
    }
    return convert_ldm_vae_checkpoint(vae, config)


def kl_config_from_weights(state: dict[str, torch.Tensor], scaling_factor: float) -> dict:
    """An ``AutoencoderKL`` config matching a diffusers-layout state dict: the SD 1.5 VAE's, with every size
    read off the weights. GroupNorm's group count leaves no trace in the weights: it is taken as
    min(32, gcd of the channel widths), which gives SD's 32."""
    config = json.loads(SD15_VAE_CONFIG.read_text())
    widths = []
    while f"encoder.down_blocks.{len(widths)}.resnets.0.conv1.weight" in state:
        widths.append(int(state[f"encoder.down_blocks.{len(widths)}.resnets.0.conv1.weight"].shape[0]))
    layers = len({k.split(".")[4] for k in state if k.startswith("encoder.down_blocks.0.resnets.")})
    config.update(
        block_out_channels=widths,
        down_block_types=["DownEncoderBlock2D"] * len(widths),
        up_block_types=["UpDecoderBlock2D"] * len(widths),
        layers_per_block=layers,
        in_channels=int(state["encoder.conv_in.weight"].shape[1]),
        out_channels=int(state["decoder.conv_out.weight"].shape[0]),
        latent_channels=int(state["decoder.conv_in.weight"].shape[1]),
        norm_num_groups=min(32, math.gcd(*widths)),
        use_quant_conv="quant_conv.weight" in state,
        use_post_quant_conv="post_quant_conv.weight" in state,
        mid_block_add_attention=any(k.startswith("encoder.mid_block.attentions.") for k in state),
        scaling_factor=scaling_factor,
    )
    return config


def kl_from_state_dict(state: dict[str, torch.Tensor], path: Path, scaling_factor: float):
    """A diffusers ``AutoencoderKL`` (fp32, CPU) holding a single-file VAE's weights in either key layout."""
    from diffusers import AutoencoderKL

    layout = key_layout(state)
    if layout == "ldm":
        state = ldm_to_diffusers(state)
    elif layout != "diffusers":
        raise ModelLoadError(f"{path}: not an SD-style VAE (its keys look like the {layout!r} layout)")
    try:
        vae = AutoencoderKL.from_config(kl_config_from_weights(state, scaling_factor))
    except KeyError as e:
        raise ModelLoadError(f"{path}: VAE weights incomplete, {e.args[0]!r} is missing") from None
    fit_state_dict(vae, state, path, "an AutoencoderKL")
    return vae


def fit_state_dict(module: nn.Module, state: dict, path: Path, what: str) -> None:
    """Load ``state`` into ``module`` exactly, or raise ModelLoadError with a short account of the misfit."""
    expected, found = set(module.state_dict()), set(state)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"{path}: does not fit {what}: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    try:
        module.load_state_dict(state)
    except RuntimeError as e:  # shapes
        mismatch = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise ModelLoadError(f"{path}: does not fit {what}: {mismatch[:300]}") from None
