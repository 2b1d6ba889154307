"""Finding and loading autoencoders from every place a user keeps them.

``load_autoencoder(source)`` takes:

- ``"procedural"``: the built-in decoder (no weights);
- a TAESD-family ``.pth`` (either half; the other is found beside it) or a folder holding a pair;
- a diffusers folder (``config.json`` says ``AutoencoderKL``, ``AutoencoderKLFlux2`` or ``AutoencoderTiny``),
  or a pipeline folder with such a ``vae/``;
- a single-file SD VAE: ``.safetensors``, ``.ckpt``, ``.pt`` (diffusers or original key names);
- a Hugging Face repo: ``owner/name``, ``owner/name/subfolder`` or ``owner/name/file.safetensors``, each
  optionally ``@revision``; downloaded once into the standard cache, then used offline.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from instrument.decoders import procedural, taesd
from instrument.decoders.autoencoder import Autoencoder, ModelLoadError
from instrument.decoders.checkpoints import (
    SD15_VAE_CONFIG,
    check_weights_file,
    fit_state_dict,
    key_layout,
    kl_from_state_dict,
    made_from,
    read_state_dict,
)
from instrument.decoders.families import FAMILIES, Family, family_from_name, get_family
from instrument.devices import resolve_device, resolve_dtype

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
HUB_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
# FLUX.2's VAE is a KL VAE like the others; its latent normalisation (batch norm over 2x2 patches) belongs to
# the pipeline, so its raw latents are the flux2 family's (taef2's) space as they are.
DIFFUSERS_CLASSES = ("AutoencoderKL", "AutoencoderKLFlux2", "AutoencoderTiny")
DEFAULT_FAST = {
    "sd15": "madebyollin/taesd",
    "sdxl": "madebyollin/taesdxl",
    "sd3": "madebyollin/taesd3",
    "flux1": "madebyollin/taef1",
}
DEFAULT_FULL = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5/vae",
    "sdxl": "madebyollin/sdxl-vae-fp16-fix",
    "flux1": "black-forest-labs/FLUX.1-schnell/vae",
}


class KLDecoder(nn.Module):
    """An ``AutoencoderKL``'s decoding half: raw latents [B, C, h, w] -> pixels [B, 3, 8h, 8w] in [-1, 1]."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)


class KLEncoder(nn.Module):
    """An ``AutoencoderKL``'s encoding half: pixels in [-1, 1] -> the posterior mean, raw latents."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moments = self.encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return moments.chunk(2, dim=1)[0]


def load_autoencoder(
    source: str,
    *,
    family: str | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    subfolder: str | None = None,
    revision: str | None = None,
    offline: bool = False,
) -> Autoencoder:
    """Load the autoencoder at ``source`` (see the module docstring) onto ``device`` in ``dtype``.

    ``family`` names the latent space; left out, it is read from the file or repo name and the channel
    count. A family that does not fit the weights, and every unreadable file, raise ModelLoadError naming
    the file. ``offline`` (or HF_HUB_OFFLINE=1) never touches the network.
    """
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, device)
    where = dict(device=device, dtype=dtype)
    if source == "procedural":
        return procedural_autoencoder(**where)
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir():
            folder = path / subfolder if subfolder else path
            pipeline = not (path / "config.json").exists() and (path / "vae" / "config.json").exists()
            if pipeline and not subfolder:
                folder = path / "vae"  # a whole diffusers pipeline folder: use its VAE
            if (folder / "config.json").is_file():
                return load_diffusers_folder(folder, family, str(path), "local folder", **where)
            decoder = find_taesd_decoder(folder, family)
            with made_from(decoder, "TAESD checkpoint"):
                return load_taesd(decoder, family, **where)
        return load_file(path, family, **where)
    if looks_like_path(source):
        raise ModelLoadError(f"{source}: no such file or folder")
    repo, sub, filename, rev = parse_hub_source(source)
    local = fetch_from_hub(repo, subfolder or sub, filename, revision or rev, offline)
    if filename:
        return load_file(local, family or hint_family(repo), **where)
    return load_diffusers_folder(local, family or hint_family(repo), source, "hub", **where)


def looks_like_path(source: str) -> bool:
    """A source that can only be a path (so a missing one is 'no such file', not a repo lookup)."""
    return (
        source.startswith((".", "/", "~", "\\"))
        or os.path.isabs(source)
        or (source.lower().endswith(WEIGHT_SUFFIXES) and source.count("/") < 2)
        or not re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?(@[\w./-]+)?", source)
    )


def check_sources(config) -> None:
    """Fail now, in the caller's thread, on a named model that cannot load: a path that does not exist, or
    a file that is not weights (a web page, an LFS pointer, empty). ``play`` calls it before it starts."""
    for flag, source in (("--model", config.model), ("--full-model", config.full_model)):
        if source in ("auto", "none", "", "procedural"):
            continue
        path = Path(source).expanduser()
        if not path.exists() and looks_like_path(source):
            raise ModelLoadError(f"{source}: no such file or folder (given as {flag})")
        if path.suffix in WEIGHT_SUFFIXES and path.exists():
            check_weights_file(path)


def parse_hub_source(source: str) -> tuple[str, str | None, str | None, str | None]:
    """``owner/name[/sub/folder | /file.safetensors][@revision]`` -> (repo, subfolder, filename, revision)."""
    source, _, revision = source.partition("@")
    parts = source.split("/")
    repo, rest = "/".join(parts[:2]), "/".join(parts[2:])
    if rest.lower().endswith(WEIGHT_SUFFIXES):
        return repo, None, rest, revision or None
    return repo, rest or None, None, revision or None


def hint_family(name: str) -> str | None:
    found = family_from_name(name)
    return found.name if found else None


# ---- files and folders


def load_file(path: Path, family: str | None, **where) -> Autoencoder:
    """A single weight file: one half of a TAESD pair, or a whole SD-style VAE."""
    state = read_state_dict(path)
    layout = key_layout(state)
    if layout == "taesd":
        with made_from(path, "TAESD checkpoint"):
            return load_taesd(path, family, state=state, **where)
    if layout in ("ldm", "diffusers"):
        with made_from(path, "VAE checkpoint"):
            return load_single_file_vae(path, state, family, **where)
    if layout == "tiny":
        raise ModelLoadError(
            f"{path}: an AutoencoderTiny state dict on its own; point at its folder (with config.json), "
            "or use the TAESD .pth pair"
        )
    raise ModelLoadError(f"{path}: not a VAE or TAESD checkpoint (first keys: {list(state)[:3]})")


def check_family(family: str | None, channels: int, name: str, path: Path | str) -> Family:
    """The family for weights with ``channels`` latent channels: ``family`` (ModelLoadError if it misfits)
    or, left out, the one the name hints at, else the first with that many channels."""
    fitting = [f.name for f in FAMILIES.values() if f.latent_channels == channels and f.name != "procedural"]
    if family is not None:
        chosen = get_family(family)
        if chosen.latent_channels != channels:
            raise ModelLoadError(
                f"{path}: these weights have {channels} latent channels, but family {chosen.name} has "
                f"{chosen.latent_channels}; use a family with {channels} channels: "
                + (", ".join(f"--family {name}" for name in fitting) or "none is known")
            )
        hinted = family_from_name(name)
        if hinted and hinted.name != chosen.name and hinted.latent_channels == channels:
            log.warning("%s looks like a %s model but is used as %s", path, hinted.name, chosen.name)
        return chosen
    hinted = family_from_name(name)
    if hinted and hinted.latent_channels == channels:
        return hinted
    if not fitting:
        raise ModelLoadError(f"{path}: no known model family has {channels} latent channels")
    return get_family(fitting[0])


def find_taesd_decoder(folder: Path, family: str | None) -> Path:
    """The ``*_decoder.pth`` in ``folder`` (the family's, if given)."""
    if family is not None and get_family(family).taesd_prefix:
        prefix = get_family(family).taesd_prefix
        candidates = [p for p in folder.glob(f"{prefix}_decoder.*") if p.suffix in WEIGHT_SUFFIXES]
    else:
        candidates = sorted(p for p in folder.glob("*_decoder.*") if p.suffix in WEIGHT_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelLoadError(
            f"{folder}: neither a diffusers folder (config.json) nor one holding a TAESD *_decoder.pth"
            + (f" for family {family}" if family else "")
        )
    names = ", ".join(p.name for p in candidates)
    raise ModelLoadError(f"{folder}: several TAESD decoders ({names}); pick one file or pass --family")


def partner(name: str) -> str:
    """The other half of a TAESD pair: ``taesd_decoder.pth`` <-> ``taesd_encoder.pth``."""
    if "_encoder." in name:
        return name.replace("_encoder.", "_decoder.")
    return name.replace("_decoder.", "_encoder.")


def load_taesd(path: Path, family: str | None, *, device, dtype, state: dict | None = None) -> Autoencoder:
    """A TAESD-family pair from either of its files; the encoder is optional (decoder-only works)."""
    name = path.name
    if "_encoder." in name:
        decoder_path, encoder_path = path.with_name(partner(name)), path
        state = None
    else:
        decoder_path, encoder_path = path, path.with_name(partner(name))
    if not decoder_path.is_file():
        raise ModelLoadError(f"{decoder_path}: no such file (the decoder half of {path.name}'s pair)")
    decoder_state = state if state is not None else read_state_dict(decoder_path)
    channels = taesd_channels(decoder_state, "decoder", decoder_path)
    chosen = check_family(family, channels, name, decoder_path)
    decoder = build_taesd(decoder_state, "decoder", decoder_path, channels)
    encoder = None
    if encoder_path != decoder_path and encoder_path.is_file():
        encoder = build_taesd(read_state_dict(encoder_path), "encoder", encoder_path, channels)
    kind = (family_from_name(name) or chosen).taesd_prefix or chosen.name
    return Autoencoder(
        decoder, encoder, family=chosen, arch="taesd", source=str(decoder_path),
        label=f"TAESD ({kind}, local file{'' if encoder else ', decoder only'})", device=device, dtype=dtype,
    )  # fmt: skip


def taesd_channels(state: dict, part: str, path: Path) -> int:
    try:
        return taesd.checkpoint_info(state, part)[0]
    except (KeyError, IndexError):
        key = "14.weight" if part == "encoder" else "1.weight"
        raise ModelLoadError(f"{path}: not a TAESD {part} (no conv weight {key})") from None


def build_taesd(state: dict, part: str, path: Path, channels: int) -> nn.Sequential:
    """The TAESD ``part`` ("encoder" or "decoder") for ``channels`` latent channels, holding ``state``."""
    found = taesd_channels(state, part, path)
    if found != channels:
        raise ModelLoadError(f"{path}: a {found}-channel {part}, but its partner has {channels} channels")
    pooled = taesd.checkpoint_info(state, part)[1]
    module = (taesd.Encoder if part == "encoder" else taesd.Decoder)(channels, pooled)
    fit_state_dict(module, state, path, f"the TAESD {part} layout")
    return module.float()


def load_single_file_vae(path: Path, state: dict, family: str | None, *, device, dtype) -> Autoencoder:
    """A whole SD-style VAE from one file, shaped like the SD 1.5 VAE config shipped in the package."""
    conv_in = [v for k, v in state.items() if k.endswith("decoder.conv_in.weight") and v.ndim == 4]
    if not conv_in:
        raise ModelLoadError(f"{path}: VAE weights without a decoder (no conv weight decoder.conv_in.weight)")
    channels = int(conv_in[0].shape[1])
    chosen = check_family(family, channels, path.name, path)
    vae = kl_from_state_dict(state, path, chosen.scale)
    label = f"VAE ({chosen.name}, single file {path.name})"
    return kl_autoencoder(vae, chosen, label, str(path), device, dtype)


def kl_autoencoder(vae, family: Family, label: str, source: str, device, dtype) -> Autoencoder:
    downscale = 2 ** (len(vae.config.block_out_channels) - 1)
    if downscale != family.downscale:
        log.warning("%s: downscale %d, not %s's %d", label, downscale, family.name, family.downscale)
    return Autoencoder(
        KLDecoder(vae), KLEncoder(vae), family=family, arch="kl", label=label, source=source,
        latent_scale=family.scale, latent_shift=family.shift, pixel_range=family.pixel_range,
        downscale=downscale, device=device, dtype=dtype,
    )  # fmt: skip


def load_diffusers_folder(
    folder: Path, family: str | None, source: str, origin: str, *, device, dtype
) -> Autoencoder:
    """A diffusers model folder: ``config.json`` + weights of one of DIFFUSERS_CLASSES."""
    import diffusers

    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{config_path}: unreadable: {e}") from None
    class_name = config.get("_class_name") if isinstance(config, dict) else None
    if class_name not in DIFFUSERS_CLASSES:
        raise ModelLoadError(
            f"{config_path}: _class_name is {class_name!r}, not one of {', '.join(DIFFUSERS_CLASSES)}"
        )
    channels = config.get("latent_channels", 4)
    if not isinstance(channels, int) or isinstance(channels, bool):
        raise ModelLoadError(f"{config_path}: latent_channels is {channels!r}, not a whole number")
    chosen = check_family(family, channels, source, folder)
    for weights in folder.glob("diffusion_pytorch_model*"):
        if weights.suffix in WEIGHT_SUFFIXES:  # (not a sharded model's index.json)
            check_weights_file(weights)
    with made_from(folder, f"{class_name} folder"):
        vae = getattr(diffusers, class_name).from_pretrained(str(folder), local_files_only=True)
    if class_name == "AutoencoderTiny":
        label = f"TAESD ({Path(source).name or source}, diffusers {origin})"
        levels = len(vae.config.decoder_block_out_channels) - 1
        return Autoencoder(
            vae.decoder, vae.encoder, family=chosen, arch="tiny", label=label, source=source,
            pixel_range=(-1.0, 1.0), downscale=vae.config.upsampling_scaling_factor**levels,
            device=device, dtype=dtype,
        )  # fmt: skip
    scale = config.get("scaling_factor")
    if isinstance(scale, (int, float)) and abs(scale - chosen.scale) > 1e-4:
        log.warning("%s: config scaling_factor %s differs from family %s's %s; using the family's",
                    folder, scale, chosen.name, chosen.scale)  # fmt: skip
    return kl_autoencoder(vae, chosen, f"VAE ({source}, {origin})", source, device, dtype)


def procedural_autoencoder(*, device, dtype, seed: int = 0, notice: str | None = None) -> Autoencoder:
    """The built-in weightless decoder (and its fixed-projection encoder); see ``procedural.py``."""
    return Autoencoder(
        procedural.ProceduralDecoder(seed), procedural.ProceduralEncoder(seed), family=FAMILIES["procedural"],
        arch="procedural", label="built-in procedural decoder (no weights)", source="procedural",
        device=device, dtype=dtype, notice=notice,
    )  # fmt: skip


# ---- the Hugging Face hub


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch_from_hub(
    repo: str, subfolder: str | None, filename: str | None, revision: str | None, offline: bool
) -> Path:
    """The local path of a repo folder (``subfolder``'s config and safetensors) or of one file (with its
    TAESD partner, if the repo has one), from the cache if there, else downloaded once with progress bars
    unless offline."""
    import huggingface_hub

    cache = hub_cache()
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    needed = [filename] if filename else [prefix + f for f in HUB_FILES]
    patterns = needed + [partner(filename)] if filename and partner(filename) != filename else needed
    what = f"{repo}/{filename or prefix}".rstrip("/") + (f"@{revision}" if revision else "")

    def fetch(local_only: bool) -> Path:
        folder = huggingface_hub.snapshot_download(
            repo, revision=revision, cache_dir=cache, allow_patterns=patterns, local_files_only=local_only
        )
        missing = [p for p in needed if not (Path(folder) / p).is_file()]
        if missing:
            hint = "" if prefix or filename else f"; for a pipeline repo name its VAE folder: {repo}/vae"
            raise FileNotFoundError(f"the repo has no {', '.join(missing)}{hint}")
        return Path(folder) / (filename or prefix or ".")

    try:
        return fetch(local_only=True)
    except OSError:  # not cached, or cached without the files needed (the hub's errors are OSErrors)
        pass
    if offline or hub_offline():
        raise ModelLoadError(f"{what}: not in the Hugging Face cache ({cache}) and the network is off")
    log.info("Downloading %s (%s) into %s; once there, it is used offline", repo, ", ".join(needed), cache)
    try:
        return fetch(local_only=False)
    except (OSError, ValueError) as e:  # the hub's HTTP errors are OSErrors
        problem = download_problem(e)
        raise ModelLoadError(f"{what}: not in the Hugging Face cache ({cache}); {problem}") from None


def download_problem(error: Exception) -> str:
    """Why a hub download failed, and what to do, in a few words."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, GatedRepoError):
        return "the repo is gated: accept its terms on huggingface.co and log in (`hf auth login`)"
    if isinstance(error, RepositoryNotFoundError):
        return "no such repo on the hub (check the id; a private one needs `hf auth login`)"
    if isinstance(error, RevisionNotFoundError):
        return "the repo has no such revision"
    if isinstance(error, LocalEntryNotFoundError):
        return ("the hub could not be reached (no network?); connect once, or pass --model with a local "
                "file, or --offline to use only what is cached")
    if isinstance(error, EntryNotFoundError):
        return f"the repo has no such file ({error})"
    if type(error) is FileNotFoundError:  # downloaded, but without the files a model needs
        return str(error)
    detail = " ".join(str(error).split())
    return f"the download failed ({type(error).__name__}: {detail[:120]})"


# ---- the pair the instrument plays


def fallback_notice(reason: str) -> str:
    """What the user reads when the built-in decoder stands in for real weights."""
    return (
        "Using the BUILT-IN PROCEDURAL DECODER (no weights): generated patterns, not a trained image model. "
        f"Why: {reason}. For real weights, run `latent-instrument doctor --download` once while online "
        "(about 10 MB into the Hugging Face cache), or pass --model with a TAESD .pth pair, a diffusers "
        "folder or a .safetensors VAE."
    )


def load_models(config) -> tuple[Autoencoder, Autoencoder | None]:
    """The (fast, full) decoders a Config asks for. ``"auto"`` means the family's defaults (TAESD from the
    hub, the full VAE from the family's public repo); with those not cached and no network, the fast one is
    the built-in procedural decoder (``notice`` says so and how to get real weights) and full is None.
    An explicitly named model that fails raises ModelLoadError; an automatic full decoder that fails is None.
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    family = get_family(config.family)
    hinted = family_from_name(config.model) if config.model not in ("auto", "") else None
    if hinted and hinted != family and config.family == type(config)().family:
        # An explicit model whose name gives its family away (taef2_decoder.pth) overrides the default family.
        log.info("%s: using family %s (from its name)", config.model, hinted.name)
        family = hinted
    where = dict(device=device, dtype=dtype, offline=config.offline)
    if config.model in ("auto", ""):
        repo = DEFAULT_FAST.get(family.name)
        try:
            if repo is None:
                raise ModelLoadError(f"family {family.name} has no default fast decoder")
            fast = load_autoencoder(repo, family=family.name, **where)
        except ModelLoadError as e:
            notice = fallback_notice(str(e))
            log.warning("%s", notice)
            return procedural_autoencoder(device=device, dtype=dtype, seed=config.seed, notice=notice), None
    else:
        fast = load_autoencoder(config.model, family=family.name, **where)
    if fast.arch == "procedural" or config.full_model in ("none", ""):
        return fast, None
    if config.full_model != "auto":
        return fast, load_autoencoder(config.full_model, family=fast.family.name, **where)
    repo = DEFAULT_FULL.get(fast.family.name)
    if repo is None:
        log.info("no default full decoder for %s; pass --full-model for quality renders", fast.family.name)
        return fast, None
    try:
        return fast, load_autoencoder(repo, family=fast.family.name, **where)
    except ModelLoadError as e:
        log.warning("no full-quality decoder (%s); renders use the fast one", e)
        return fast, None


def random_autoencoder(
    arch: str, family: str = "sd15", device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
    seed: int = 0,
) -> Autoencoder:  # fmt: skip
    """The real architectures ("taesd" or "kl", full size) with random weights: for benchmarks only."""
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, device)
    chosen = get_family(family)
    if arch not in ("taesd", "kl"):
        raise ValueError(f"unknown arch {arch!r}; use 'taesd' or 'kl'")
    with torch.random.fork_rng(devices=[]):  # seeded weights without disturbing the caller's generator
        torch.manual_seed(seed)
        if arch == "taesd":
            pooled = chosen.name == "flux2"
            return Autoencoder(
                taesd.Decoder(chosen.latent_channels, pooled), taesd.Encoder(chosen.latent_channels, pooled),
                family=chosen, arch="taesd", label=f"TAESD ({chosen.name}, random weights)", source="random",
                device=device, dtype=dtype,
            )  # fmt: skip
        from diffusers import AutoencoderKL

        config = json.loads(SD15_VAE_CONFIG.read_text())
        config.update(latent_channels=chosen.latent_channels, scaling_factor=chosen.scale)
        vae = AutoencoderKL.from_config(config)
    return kl_autoencoder(vae, chosen, f"VAE ({chosen.name}, random weights)", "random", device, dtype)
