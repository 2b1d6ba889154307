"""Prompt anchors: text embeddings computed once, kept on disk by model and text, moved like latents.

A prompt's embedding is the text encoder's last hidden state, float32 [L, D] (SD 1.x: [77, 768], SD 2.x:
[77, 1024]). It is computed on the CPU in float32 (the same numbers on every machine, and no GPU memory for
the encoder), once: the ``PromptBook`` keeps it in memory and on disk, keyed by the encoder's identity and
the text, and loads the tokenizer and encoder only for a text it has never seen. Prompts move with the
latent geometry's slerp (``mixed``), over the whole [L, D] tensor as latents do.

The empty prompt needs no tokenizer: its tokens are [bos, eos, pad, ...] (what CLIP's tokenizer gives), so
a single-file checkpoint, which carries no vocabulary, plays unprompted without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instrument.latent.anchors import AnchorError, load_latent, save_latent, user_cache_dir
from instrument.latent.geometry import slerp

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when what a cache entry means changes


@dataclass(frozen=True)
class TextSide:
    """How a sculpt model turns text into embeddings; its loaders run only when a text is not cached.

    ``identity``: names the encoder's weights (path, size, time) for the disk cache. ``special_ids``:
    (bos, eos, pad) token ids. ``length``: tokens per prompt (77). ``hidden_size``: D. ``load_tokenizer``:
    () -> a transformers CLIP tokenizer (may raise ModelLoadError, e.g. offline). ``load_encoder``: () -> a
    ``CLIPTextModel`` on the CPU in float32.
    """

    identity: str
    special_ids: tuple[int, int, int]
    length: int
    hidden_size: int
    load_tokenizer: Callable[[], Any]
    load_encoder: Callable[[], nn.Module]


def default_cache_dir() -> Path:
    """Where prompt embeddings are kept by default: beside the anchor cache, in the user cache folder."""
    return user_cache_dir().with_name("prompts")


class PromptBook:
    """Text -> embedding float32 CPU [L, D], through memory, then disk, then the encoder.

    ``hits`` / ``misses`` count disk lookups; ``encoded`` counts texts run through the encoder. A broken
    disk entry is a miss and is rewritten; a cache that cannot be written only logs a warning.
    """

    def __init__(self, text: TextSide, cache_dir: str | Path | None = None) -> None:
        self.text = text
        self.root = Path(cache_dir) if cache_dir else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.encoded = 0
        self._memory: dict[str, torch.Tensor] = {}
        self._tokenizer: Any = None
        self._encoder: nn.Module | None = None

    @property
    def encoder_loaded(self) -> bool:
        return self._encoder is not None

    def embedding(self, prompt: str) -> torch.Tensor:
        """The embedding of ``prompt`` (surrounding white space ignored): float32 CPU [L, D]."""
        prompt = prompt.strip()
        found = self._memory.get(prompt)
        if found is None:
            found = self._from_disk(prompt)
            if found is None:
                found = self._encode(prompt)
                self._to_disk(prompt, found)
            self._memory[prompt] = found
        return found

    def mixed(self, prompts: tuple[str, ...], mix: float) -> torch.Tensor:
        """The point ``mix`` (0..1) along the slerp path through ``prompts``' embeddings: float32 CPU
        [L, D]."""
        if len(prompts) == 1:
            return self.embedding(prompts[0])
        x = min(max(mix, 0.0), 1.0) * (len(prompts) - 1)
        i = min(int(x), len(prompts) - 2)
        return slerp(self.embedding(prompts[i]), self.embedding(prompts[i + 1]), x - i)

    def token_ids(self, prompt: str) -> list[int]:
        """The ``length`` token ids of ``prompt``, padded: the encoder's input."""
        bos, eos, pad = self.text.special_ids
        if not prompt.strip():
            return [bos, eos] + [pad] * (self.text.length - 2)
        if self._tokenizer is None:
            self._tokenizer = self.text.load_tokenizer()
        tokens = self._tokenizer(prompt, padding="max_length", max_length=self.text.length, truncation=True)
        return list(tokens.input_ids)

    # -- memory, disk, encoder -----------------------------------------------------------------------------

    def _key(self, prompt: str) -> str:
        identity = {"format": CACHE_FORMAT, "encoder": self.text.identity, "text": prompt}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:40]

    def _path(self, prompt: str) -> Path:
        return self.root / f"{self._key(prompt)}.safetensors"

    def _from_disk(self, prompt: str) -> torch.Tensor | None:
        path = self._path(prompt)
        if path.is_file():
            try:
                stored, _ = load_latent(path)
                if tuple(stored.shape) == (1, self.text.length, self.text.hidden_size):
                    self.hits += 1
                    return stored[0]
                log.warning("ignoring a prompt cache entry of the wrong shape: %s", path)
            except AnchorError as e:
                log.warning("ignoring a broken prompt cache entry: %s", e)
        self.misses += 1
        return None

    def _to_disk(self, prompt: str, embedding: torch.Tensor) -> None:
        try:  # (stored as a one-channel latent file: the same safe, atomic format as anchors)
            save_latent(self._path(prompt), embedding[None], {"text": prompt, "encoder": self.text.identity})
        except OSError as e:
            log.warning("cannot write the prompt cache in %s: %s", self.root, e)

    def _encode(self, prompt: str) -> torch.Tensor:
        ids = torch.tensor([self.token_ids(prompt)], dtype=torch.long)
        if self._encoder is None:
            log.info("loading the text encoder for the prompt %r", prompt)
            self._encoder = self.text.load_encoder().eval().requires_grad_(False).float()
        with torch.no_grad():
            hidden = self._encoder(input_ids=ids)[0][0]
        self.encoded += 1
        return hidden.float().contiguous()
