"""Models and anchors for the library: load an autoencoder, encode pictures or seeds, decode latents.

The same loaders as the command line (``decoders.load_autoencoder`` / ``load_models``, ``latent.anchors``):
a source that fails raises the same one-line ``UserError`` (``ModelLoadError``, ``AnchorError``) that
``latent-instrument`` prints.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from instrument.config import AnchorConfig
from instrument.decoders import Autoencoder, load_autoencoder, load_models
from instrument.decoders.families import Family
from instrument.latent.anchors import AnchorCache, AnchorError, load_anchors, printable, snap_size
from instrument.pixels import pixels_to_uint8

log = logging.getLogger(__name__)

# What ``encode`` takes: a spec (an image file, ``seed:N``, a ``.safetensors`` latent, a folder) or a picture
# in memory (PIL image, uint8 array [H, W, 3] or [H, W], float tensor [3, H, W] in [0, 1]).
Source = str | Path | Image.Image | np.ndarray | torch.Tensor
Size = int | Sequence[int]


def load(source: str | Path = "auto", *, family: str | None = None, device: str | torch.device = "auto",
         dtype: str | torch.dtype = "auto", offline: bool = False) -> Autoencoder:
    """Load one autoencoder, as ``--model`` does: ``"auto"`` (the family's TAESD from the Hugging Face
    cache, downloaded once; the built-in procedural decoder when it cannot be had, with ``notice`` saying
    why), a hub id (``"madebyollin/taesd"``, ``owner/name/subfolder@revision``), a diffusers folder, a
    single-file VAE, a TAESD-family ``.pth`` (its partner is found beside it) or ``"procedural"``.

    ``family``: the latent space (``sd15``, ``sdxl``, ``sd3``, ``flux1``, ``flux2``); left out, it is read
    from the name and the weights. ``device``: auto (cuda, mps, cpu) or a torch device; ``dtype``: auto
    (fp16 on a GPU, fp32 on the CPU), fp16, bf16, fp32. ``offline`` never touches the network.

    Returns an ``Autoencoder``: ``decode(latents [B, C, h, w]) -> [B, 3, 8h, 8w]`` in [0, 1] and
    ``encode`` the reverse (see ``li.encode`` / ``li.decode`` for pictures). Raises ``ModelLoadError``.
    """
    if source in ("auto", ""):
        config = AnchorConfig(model="auto", full_model="none", family=family or "sd15", device=str(device),
                              dtype=_dtype_name(dtype), offline=offline)
        model = load_models(config)[0]
        if model.notice:
            log.warning("%s", model.notice)
        return model
    return load_autoencoder(str(source), family=family, device=device, dtype=dtype, offline=offline)


def _dtype_name(dtype: str | torch.dtype) -> str:
    return str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else dtype


@dataclasses.dataclass
class Anchors:
    """Encoded anchors: ``latents`` float32 [N, C, h, w] (diffusion space, on the model's device), one
    ``name`` and ``source`` each, the picture ``size`` (W, H) they were made for and their ``family``.

    ``anchors[i]`` or ``anchors["dog"]`` is one latent [C, h, w]; ``anchors[1:]`` and ``anchors[[0, 2]]``
    are Anchors; ``len(anchors)`` and iteration go over the latents.
    """

    latents: torch.Tensor
    names: list[str]
    sources: list[str]
    size: tuple[int, int]
    family: Family

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.latents)

    def __getitem__(self, key: int | str | slice | Sequence[int]) -> Any:
        if isinstance(key, str):
            if key not in self.names:
                raise KeyError(f"no anchor called {key!r}; the anchors are {', '.join(self.names)}")
            return self.latents[self.names.index(key)]
        if isinstance(key, int):
            return self.latents[key]
        index = list(range(len(self)))[key] if isinstance(key, slice) else [int(k) for k in key]
        return dataclasses.replace(self, latents=self.latents[index], names=[self.names[k] for k in index],
                                   sources=[self.sources[k] for k in index])

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.latents.shape[1:])
        return f"Anchors({', '.join(self.names)}; {shape} {self.family.name} latents for " \
               f"{self.size[0]}x{self.size[1]} px)"


def latents_of(anchors: Anchors | torch.Tensor) -> torch.Tensor:
    """The [N, C, h, w] latents of ``Anchors``, or the tensor itself."""
    return anchors.latents if isinstance(anchors, Anchors) else anchors


def picture_size(size: Size) -> tuple[int, int]:
    """512 or (768, 512) -> (width, height)."""
    if isinstance(size, int):
        return size, size
    width, height = (int(s) for s in size)
    return width, height


def encode(model: Autoencoder, sources: Source | Sequence[Source], size: Size = 512, *, fit: str = "crop",
           seed: int = 0, cache: bool | str | Path = True, strict: bool = True) -> Anchors:
    """Anchors for ``sources``: image files, ``seed:N`` (a Gaussian latent, the same on every machine;
    a bare ``seed`` takes ``seed``, the next ``seed + 1``...), ``.safetensors`` latents, folders, or
    pictures in memory (PIL images, uint8 arrays [H, W, 3], float tensors [3, H, W] in [0, 1]).

    Pictures are fitted to ``size`` (N or (W, H) pixels, snapped to multiples of 8) by ``fit`` ("crop":
    cover and centre-crop; "pad": fit inside, mid-grey bars) and encoded by ``model``, as ``play`` and
    ``encode`` do. ``cache``: True keeps encoded files in the user cache folder, a path keeps them there,
    False encodes afresh. ``strict``: raise the first ``AnchorError`` (naming the file); else skip the
    anchors that fail, with a warning each (an error if none loads).
    """
    items = [sources] if isinstance(sources, (str, Path, Image.Image, np.ndarray, torch.Tensor)) else sources
    size = snap_size(picture_size(size), model.family.downscale)
    store = None if cache is False else AnchorCache(None if cache is True else Path(cache))
    with tempfile.TemporaryDirectory(prefix="latent-instrument-") as scratch:
        specs, shown = [], {}
        for k, item in enumerate(items):
            if isinstance(item, (str, Path)):
                specs.append(str(item))
                continue
            # A picture in memory goes through the same fitting and encoding as a file: as a lossless PNG.
            path = Path(scratch) / f"image {k}.png"
            as_picture(item).save(path)
            specs.append(str(path))
            shown[str(path)] = f"<image {k}>"
        found, errors = load_anchors(specs, model, size, cache=store, seed=seed, fit=fit)
    errors = [_named(error, shown) for error in errors]
    if errors and strict:
        for error in errors[1:]:
            log.warning("%s", error)
        raise errors[0]
    for error in errors:
        log.warning("%s", error)
    if not found:
        raise AnchorError(", ".join(specs) or "(nothing)", "no anchor could be loaded")
    latents = torch.stack([a.latent for a in found]).to(model.device, torch.float32)
    return Anchors(latents, [a.name for a in found], [shown.get(a.source, a.source) for a in found], size,
                   model.family)


def _named(error: AnchorError, shown: dict[str, str]) -> AnchorError:
    """``error`` about a picture in memory, naming it as the caller knows it (not its scratch file)."""
    if error.path not in shown:
        return error
    return AnchorError(shown[error.path], str(error).removeprefix(f"{printable(error.path)}: "))


def as_picture(picture: Image.Image | np.ndarray | torch.Tensor) -> Image.Image:
    """A picture in memory -> PIL image: PIL as it is; uint8 arrays [H, W, 3] or [H, W]; float tensors or
    arrays [3, H, W] (or [H, W, 3]) in [0, 1]."""
    if isinstance(picture, Image.Image):
        return picture
    if isinstance(picture, torch.Tensor):
        if picture.dim() != 3 or picture.shape[0] != 3:
            raise ValueError(f"a picture tensor is [3, H, W] in [0, 1], not {tuple(picture.shape)}")
        return Image.fromarray(pixels_to_uint8(picture.detach().float()).cpu().numpy(), "RGB")
    array = np.asarray(picture)
    if array.dtype != np.uint8:
        if array.ndim == 3 and array.shape[0] == 3:
            return as_picture(torch.from_numpy(np.ascontiguousarray(array)).float())
        array = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(np.ascontiguousarray(array))
    raise ValueError(f"a picture array is [H, W, 3] or [H, W], not {array.shape}")


def decode(model: Autoencoder, latents: Anchors | torch.Tensor, *, size: Size | None = None, batch: int = 8,
           output: str = "pil") -> Any:
    """Pictures of ``latents`` decoded by ``model``, ``batch`` at a time (as ``walk`` does).

    ``latents``: one [C, h, w] or a batch [B, C, h, w] (or ``Anchors``). ``size``: N or (W, H) pixels to
    resize to (default: the decoder's, 8 per latent cell). ``output``: "pil" (a PIL image, or a list of
    them for a batch) or "array" (uint8 [H, W, 3], or [B, H, W, 3]). For float pictures in [0, 1] call
    ``model.decode`` itself.
    """
    if output not in ("pil", "array"):
        raise ValueError(f"output must be pil or array, not {output!r}")
    stack = latents_of(latents)
    single = stack.dim() == 3
    stack = stack[None] if single else stack
    if stack.dim() != 4 or len(stack) == 0:
        raise ValueError(f"decode takes latents [C, h, w] or [B, C, h, w] (B >= 1), not {tuple(stack.shape)}")
    out_size = picture_size(size) if size is not None else None
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(stack), max(1, batch)):
            chunks.append(pixels_to_uint8(model.decode(stack[start:start + batch].float()), out_size).cpu())
    arrays = torch.cat(chunks).numpy()
    if output == "array":
        return arrays[0] if single else arrays
    pictures = [Image.fromarray(a, "RGB") for a in arrays]
    return pictures[0] if single else pictures
