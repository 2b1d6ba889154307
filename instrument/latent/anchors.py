"""Anchors: the points in latent space that a performance moves between.

An anchor comes from a *spec*:

- an image file (PNG, JPEG, WebP, TIFF, ...; any size or mode): fitted to the picture size, encoded once and
  cached on disk by content, model, size and fit;
- ``seed:N``: a Gaussian latent with the family's statistics, the same for the same N on every machine
  (N from 0 to 2**63 - 1; a bare ``seed`` takes the run's seed, the next bare one seed + 1, and so on);
- a ``.safetensors`` latent written by ``save_latent`` (``latent-instrument encode`` writes them);
- ``prompt:TEXT`` (``prompt:"a marble statue"``): a prompt anchor for sculpting. Its latent is a seed latent
  drawn from the text (the same text, the same start everywhere); its name is the spec, ``prompt:TEXT``,
  from which the sculpt stage reads the prompt (``prompt_of``);
- a folder: its images and latent files, by name.

Only regular files are read: a FIFO or a device named ``.png`` would block or never end.

Fitting an image to the size (``fit``): ``crop`` scales it to cover the size and cuts the overflow evenly
from both sides (nothing is stretched, the centre is kept); ``pad`` scales it to fit inside and fills the
bars with mid grey (nothing is lost). Transparent parts are laid on the same mid grey, a neutral colour that
pulls the latent neither toward black nor white. Sizes are snapped to the model's downscale factor (8).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs
import torch
from PIL import Image, ImageOps
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from instrument.decoders.families import Family, get_family
from instrument.errors import SNIFF_BYTES, UserError, file_problem, impostor

log = logging.getLogger(__name__)

FITS = ("crop", "pad")
MIN_SIDE = 8  # pixels; below this an image carries too little to be a meaningful anchor
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
LATENT_SUFFIX = ".safetensors"
GREY = 128  # background for transparency and padding (0.5 in [0, 1])
_HIGH_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # single-channel modes beyond 8 bits
_CACHE_FORMAT = 2  # bump when what a cache entry means changes
SEED_MAX = 2**63 - 1  # torch's generators take 64-bit seeds (the run's --seed, 32 bits, plus a few fits)


class AnchorError(UserError):
    """An anchor that cannot be loaded. ``path`` is the file (or spec) it is about; the message names it."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{printable(path)}: {message}")


def printable(path: str | Path) -> str:
    """A path as text that can always be printed, drawn and stored (a terminal, a pygame font, JSON, a
    safetensors header): bytes of a file name that are not UTF-8 (an old archive's Latin-1 name) become
    U+FFFD instead of breaking whatever shows or saves the name."""
    return os.fsencode(str(path)).decode("utf-8", "replace")


@dataclass
class Anchor:
    """A point to play: ``latent`` is a float32 CPU diffusion-space latent [C, h, w]; ``name`` is printable
    text (see ``printable``), ``source`` the spec or path as given."""

    name: str
    latent: torch.Tensor
    source: str
    metadata: dict[str, str] = field(default_factory=dict)


def snap_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(width, height) rounded to the nearest multiple of ``multiple`` (at least one multiple)."""
    return tuple(max(multiple, round(side / multiple) * multiple) for side in size)  # type: ignore[return-value]


# Images ---------------------------------------------------------------------------------------------------


def load_image(path: str | Path, size: tuple[int, int], fit: str = "crop") -> torch.Tensor:
    """An image file -> float32 [3, H, W] in [0, 1], upright (EXIF), fitted to ``size`` = (W, H) by ``fit``.

    Any mode loads: RGBA/LA/palette transparency over mid grey, greyscale and CMYK to RGB, 16-bit greyscale
    (I;16, I) scaled from 0..65535, float (F) clipped to [0, 1]. Raises AnchorError naming the file when it
    is missing, not an image, broken or smaller than MIN_SIDE pixels on a side.
    """
    path = Path(path)
    return _decode_image(_read(path), path, size, fit)


def _check_file(path: Path) -> None:
    problem = file_problem(path)
    if problem is not None:
        raise AnchorError(path, problem)


def _read(path: Path) -> bytes:
    """The bytes of a regular file (AnchorError for anything else)."""
    _check_file(path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise AnchorError(path, f"cannot read: {e.strerror or e}") from None


def _decode_image(data: bytes, path: Path, size: tuple[int, int], fit: str) -> torch.Tensor:
    if fit not in FITS:
        raise ValueError(f"fit {fit!r} is not one of {', '.join(FITS)}")
    if not data:
        raise AnchorError(path, "empty file (0 bytes), not an image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if min(img.size) < MIN_SIDE:
                raise AnchorError(path, f"image is only {img.width}x{img.height} px; an anchor needs at "
                                        f"least {MIN_SIDE} px on each side")
            if img.format == "JPEG":  # let the JPEG decoder shrink big photos (to no less than the size)
                img.draft(None, (max(size), max(size)))
            img.load()
    except AnchorError:
        raise
    except Exception as e:  # Pillow's format plugins raise many kinds of error for broken files
        fake = impostor(data[:SNIFF_BYTES])
        if fake is not None:
            raise AnchorError(path, f"not an image: looks like {fake}; download the real file") from None
        unknown = isinstance(e, Image.UnidentifiedImageError)
        kind = "not an image Pillow can read" if unknown else "broken image"
        raise AnchorError(path, f"{kind} ({type(e).__name__}: {e})") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception as e:  # a damaged EXIF block should not cost the picture
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", path, e)
    try:
        if img.mode in _HIGH_BIT:
            grey = img.convert("F")
            if img.mode != "F":
                grey = grey.point(lambda v: v / 65535)
            array = np.asarray(_fit(grey, size, fit, GREY / 255), dtype=np.float32).clip(0, 1)
            return torch.from_numpy(array.copy())[None].expand(3, -1, -1).contiguous()
        rgb = np.asarray(_fit(_to_rgb(img), size, fit, (GREY,) * 3), dtype=np.uint8)
    except (ValueError, OSError) as e:
        raise AnchorError(path, f"cannot convert its {img.mode} pixels to RGB ({e})") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any 8-bit mode -> RGB, with transparency laid on mid grey."""
    if img.mode == "P" or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", img.size, (GREY, GREY, GREY, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def _fit(img: Image.Image, size: tuple[int, int], fit: str, fill) -> Image.Image:
    """Scale ``img`` to ``size`` by the fit policy (see the module docstring)."""
    if fit == "crop":
        return ImageOps.fit(img, size, Image.Resampling.LANCZOS)
    return ImageOps.pad(img, size, Image.Resampling.LANCZOS, color=fill)


# Seeds and latent files ------------------------------------------------------------------------------------


def seed_latent(seed: int, family: Family | str, size: tuple[int, int]) -> torch.Tensor:
    """A Gaussian latent with the family's statistics: float32 CPU [C, H/f, W/f], std ``family.latent_std``.

    ``size`` is (W, H) in pixels, multiples of the downscale f. A CPU generator makes it the same everywhere.
    """
    family = get_family(family) if isinstance(family, str) else family
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed {seed} is outside 0..{SEED_MAX}")
    f = family.downscale
    width, height = size
    if width % f or height % f:
        raise ValueError(f"size {width}x{height} is not a multiple of {f} ({family.name} latents)")
    generator = torch.Generator().manual_seed(seed)
    shape = (family.latent_channels, height // f, width // f)
    return torch.randn(shape, generator=generator) * family.latent_std


def save_latent(path: str | Path, latent: torch.Tensor, metadata: dict[str, object] | None = None) -> Path:
    """Write ``latent`` [C, h, w] as a ``.safetensors`` file with a "latent" tensor (float32) and string
    metadata (non-strings are stored as JSON). Written atomically: a crash leaves the old file or none."""
    path = Path(path)
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    _write_atomic(path, save({"latent": latent.detach().to("cpu", torch.float32).contiguous()}, text))
    return path


def load_latent(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    """A latent file written by ``save_latent`` -> (float32 [C, h, w], metadata). AnchorError if it is not."""
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            names = list(f.keys())
            latent = f.get_tensor("latent") if "latent" in names else None
    except (SafetensorError, OSError, ValueError) as e:
        raise AnchorError(path, f"not a readable .safetensors file ({e})") from None
    if latent is None:
        raise AnchorError(path, f"no 'latent' tensor (it has: {', '.join(names) or 'nothing'})")
    if latent.ndim == 4 and latent.shape[0] == 1:
        latent = latent[0]
    if latent.ndim != 3 or not latent.is_floating_point():
        raise AnchorError(path, f"'latent' should be a float [C, h, w] tensor, not {latent.dtype} "
                                f"{tuple(latent.shape)}")
    if not bool(torch.isfinite(latent).all()):
        raise AnchorError(path, "'latent' contains NaN or Inf")
    return latent.float(), metadata


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The cache -------------------------------------------------------------------------------------------------


def user_cache_dir() -> Path:
    """Where encoded anchors are kept by default: the platform's user cache folder (``~/.cache`` or
    $XDG_CACHE_HOME on Linux, ``~/Library/Caches`` on a Mac, %LOCALAPPDATA% on Windows)."""
    return platformdirs.user_cache_path("latent-instrument", appauthor=False, opinion=False) / "anchors"


class AnchorCache:
    """Encoded image latents on disk, one ``<key>.safetensors`` each, keyed by the image file's sha256, the
    model (arch, label, source and the source file's size and time), the family, the size and the fit.

    ``hits`` and ``misses`` count lookups. A broken entry counts as a miss and is rewritten; a cache that
    cannot be written only logs a warning.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else user_cache_dir()
        self.hits = 0
        self.misses = 0

    def key(self, digest: str, ae, size: tuple[int, int], fit: str) -> str:
        """The entry name for an image with sha256 ``digest`` encoded by ``ae`` at ``size`` with ``fit``."""
        source = Path(ae.source) if getattr(ae, "source", "") else None
        stamp = None
        if source is not None and source.is_file():
            stat = source.stat()
            stamp = [stat.st_size, stat.st_mtime_ns]
        identity = {
            "format": _CACHE_FORMAT,
            "image": digest,
            "model": [ae.arch, ae.label, str(getattr(ae, "source", "")), stamp],
            "family": ae.family.name,
            "size": list(size),
            "fit": fit,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.root / f"{key}{LATENT_SUFFIX}"

    def get(self, key: str) -> torch.Tensor | None:
        """The cached latent for ``key`` or None (counted as a hit or a miss)."""
        path = self.path(key)
        if path.is_file():
            try:
                latent, _ = load_latent(path)
                self.hits += 1
                return latent
            except AnchorError as e:
                log.warning("ignoring a broken cache entry: %s", e)
        self.misses += 1
        return None

    def put(self, key: str, latent: torch.Tensor, metadata: dict[str, object]) -> None:
        try:
            save_latent(self.path(key), latent, metadata)
        except OSError as e:
            log.warning("cannot write the anchor cache in %s: %s", self.root, e)


# Loading specs ---------------------------------------------------------------------------------------------


def load_anchors(
    specs: list[str],
    ae,
    size: tuple[int, int],
    *,
    cache: AnchorCache | None,
    seed: int = 0,
    fit: str = "crop",
) -> tuple[list[Anchor], list[AnchorError]]:
    """Load every spec (see the module docstring) for ``ae`` (an Autoencoder) at ``size`` = (W, H) pixels,
    snapped to the family's downscale factor. ``cache`` None encodes without caching.

    Returns (anchors in spec order, errors): a bad spec becomes an AnchorError and the rest still load.
    Every anchor has the latent shape [C, H/f, W/f] of the size, so they can be stacked.
    """
    family = ae.family
    size = snap_size(size, family.downscale)
    anchors: list[Anchor] = []
    errors: list[AnchorError] = []
    bare_seeds = 0
    for spec in specs:
        try:
            if spec.strip().lower() in ("seed", "seed:"):
                anchors.append(_seed_anchor(seed + bare_seeds, family, size))
                bare_seeds += 1
                continue
            for item in expand_spec(spec):
                try:
                    anchors.append(_load_one(item, ae, size, cache, fit))
                except AnchorError as e:
                    errors.append(e)
        except AnchorError as e:
            errors.append(e)
    return anchors, errors


def expand_spec(spec: str) -> list[str]:
    """A folder -> its image and latent files by name (AnchorError if none); anything else -> [spec]."""
    path = Path(spec)
    if spec.lower().startswith(("seed:", PROMPT_PREFIX)) or not path.is_dir():
        return [spec]
    known = IMAGE_SUFFIXES | {LATENT_SUFFIX}
    try:
        items = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in known)
    except OSError as e:
        raise AnchorError(path, f"cannot list the folder: {e.strerror or e}") from None
    if not items:
        raise AnchorError(path, "folder has no images or .safetensors latents")
    return [str(p) for p in items]


def _seed_anchor(number: int, family: Family, size: tuple[int, int]) -> Anchor:
    return Anchor(f"seed:{number}", seed_latent(number, family, size), f"seed:{number}",
                  {"kind": "seed", "seed": str(number), "family": family.name})


PROMPT_PREFIX = "prompt:"


def prompt_of(name: str) -> str | None:
    """The prompt of a prompt anchor's name (``prompt:TEXT`` -> TEXT), None for other anchors."""
    if not name.lower().startswith(PROMPT_PREFIX):
        return None
    text = name[len(PROMPT_PREFIX):].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":  # quotes the shell left in
        text = text[1:-1].strip()
    return text


def _prompt_anchor(spec: str, family: Family, size: tuple[int, int]) -> Anchor:
    text = prompt_of(spec)
    if not text:
        raise AnchorError(spec, 'an empty prompt: write prompt:"a marble statue"')
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1  # (within SEED_MAX)
    return Anchor(printable(f"{PROMPT_PREFIX}{text}"), seed_latent(seed, family, size), spec,
                  {"kind": "prompt", "prompt": text, "family": family.name})


def _load_one(spec: str, ae, size: tuple[int, int], cache: AnchorCache | None, fit: str) -> Anchor:
    if prompt_of(spec) is not None:
        return _prompt_anchor(spec, ae.family, size)
    if spec.lower().startswith("seed:"):
        try:
            number = int(spec[5:])
        except ValueError:
            number = -1
        if not 0 <= number <= SEED_MAX:
            raise AnchorError(spec, f"not a seed: write seed:N with a whole number N from 0 to {SEED_MAX}")
        return _seed_anchor(number, ae.family, size)
    path = Path(spec)
    if path.suffix.lower() == LATENT_SUFFIX:
        return _latent_anchor(path, ae, size)
    return _image_anchor(path, ae, size, cache, fit)


def _latent_anchor(path: Path, ae, size: tuple[int, int]) -> Anchor:
    latent, metadata = load_latent(path)
    family = ae.family
    expected = (family.latent_channels, size[1] // family.downscale, size[0] // family.downscale)
    if latent.shape[0] != expected[0]:
        raise AnchorError(path, f"latent has {latent.shape[0]} channels; {family.name} models use "
                                f"{expected[0]}")
    if tuple(latent.shape) != expected:
        h, w = latent.shape[1:]
        f = family.downscale
        raise AnchorError(path, f"latent is for {w * f}x{h * f} px pictures, not {size[0]}x{size[1]}; "
                                f"use --size {w * f}x{h * f} or re-encode the image")
    if metadata.get("family", family.name) != family.name:
        log.warning("%s was made for the %s latent space, not %s", path, metadata["family"], family.name)
    return Anchor(printable(path.stem), latent, str(path), metadata)


def _image_anchor(path: Path, ae, size: tuple[int, int], cache: AnchorCache | None, fit: str) -> Anchor:
    data = _read(path)
    digest = hashlib.sha256(data).hexdigest()
    metadata = {"kind": "image", "image": printable(path.name), "sha256": digest, "model": ae.label,
                "family": ae.family.name, "size": f"{size[0]}x{size[1]}", "fit": fit}
    key = cache.key(digest, ae, size, fit) if cache is not None else ""
    latent = cache.get(key) if cache is not None else None
    if latent is None:
        image = _decode_image(data, path, size, fit)  # decoded only on a miss, but always checked then
        if not ae.can_encode:
            raise AnchorError(path, f"{ae.label} has no encoder, so it cannot turn images into anchors; use "
                                    "seed:N or a latent file, or a model with an encoder")
        try:
            with torch.no_grad():
                latent = ae.encode(image[None])[0].detach().to("cpu", torch.float32)
        except (RuntimeError, ValueError) as e:
            raise AnchorError(path, f"encoding failed: {e}") from None
        if cache is not None:
            cache.put(key, latent, metadata)
    return Anchor(printable(path.stem), latent, str(path), metadata)
