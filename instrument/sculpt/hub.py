"""A diffusion pipeline from the Hugging Face hub: the parts sculpting uses, downloaded once, then offline.

The same rules as the decoders' (``decoders.loaders.fetch_from_hub``): the standard cache, the cache first,
one clear ModelLoadError when the files are neither cached nor downloadable. Only the UNet, text encoder,
tokenizer and scheduler config are fetched (the VAE is the decoder's business), and a download takes the
half-size fp16 weights where the repo has them; weights already cached in either form are used as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path

from instrument.decoders.autoencoder import ModelLoadError
from instrument.decoders.loaders import hub_cache, hub_offline

log = logging.getLogger(__name__)

VARIANTS = ("", ".fp16")  # weight file infixes, in the order a cache is searched


class Incomplete(LookupError):
    """A snapshot lacks some of the files (e.g. the repo has no fp16 weights): try the other variant."""


def pipeline_files(variant: str) -> list[str]:
    """The files a sculpting pipeline needs, with ``variant`` ("" or ".fp16") weights."""
    return [
        "unet/config.json", f"unet/diffusion_pytorch_model{variant}.safetensors",
        "text_encoder/config.json", f"text_encoder/model{variant}.safetensors",
        "scheduler/scheduler_config.json",
    ]  # fmt: skip


def fetch_pipeline(repo: str, revision: str | None, offline: bool) -> Path:
    """The local snapshot folder of ``repo``'s sculpting parts (``pipeline_files`` and ``tokenizer/``)."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cache = hub_cache()
    what = repo + (f"@{revision}" if revision else "")

    def fetch(variant: str, local_only: bool) -> Path:
        needed = pipeline_files(variant)
        folder = Path(huggingface_hub.snapshot_download(
            repo, revision=revision, cache_dir=cache, local_files_only=local_only,
            allow_patterns=[*needed, "tokenizer/*", "model_index.json"],
        ))  # fmt: skip
        missing = [p for p in needed if not (folder / p).is_file()]
        if not any((folder / "tokenizer" / name).is_file() for name in ("vocab.json", "tokenizer.json")):
            missing.append("tokenizer/vocab.json")
        if missing:
            raise Incomplete(f"no {', '.join(missing)} in {folder}")
        return folder

    for variant in VARIANTS:
        try:
            return fetch(variant, local_only=True)
        except (Incomplete, LocalEntryNotFoundError, FileNotFoundError, OSError):
            continue
    if offline or hub_offline():
        raise ModelLoadError(f"{what}: not in the Hugging Face cache ({cache}) and the network is off")
    log.info("Downloading %s (UNet, text encoder, tokenizer) into %s; once there, it is used offline",
             repo, cache)
    failure: Exception | None = None
    for variant in reversed(VARIANTS):  # the fp16 weights first: half the download
        try:
            return fetch(variant, local_only=False)
        except Incomplete as e:
            failure = e
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
            failure = e  # the network or the repo itself: another variant would fail the same way
            break
    detail = " ".join(str(failure).split())
    detail = detail[:160] + "..." if len(detail) > 160 else detail
    raise ModelLoadError(
        f"{what}: not in the Hugging Face cache ({cache}) and the download failed ({type(failure).__name__}: "
        f"{detail})"
    )
