"""What a sculpt is asked to do (``SculptSettings``) and what it gives back (``SculptResult``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

MAX_STEPS = 8


@dataclass(frozen=True)
class SculptSettings:
    """The controls of one sculpt: hashable and comparable, so that they can key the frame cache, and plain
    JSON (``to_json`` / ``from_json``) for a take's sidecar.

    - ``strength`` (the ``sculpt`` parameter), 0..1: how far the played latent is noised before the steps.
      0 is off (the latent comes back untouched, no UNet call); 1 starts from the model's top noise level.
    - ``steps``, 1..8: denoising steps (UNet calls, twice that with guidance).
    - ``noise_seed`` >= 0 and ``noise_mix`` 0..1: the noise, ``noise.noise_at(noise_seed, noise_mix)``.
    - ``prompts`` and ``prompt_mix`` 0..1: the text conditioning, a slerp path through the prompts' embeddings
      (one prompt: that prompt; the default is the empty prompt, the model unconditioned).
    - ``guidance`` >= 1: classifier-free guidance scale against the empty prompt; 1 is off. Distilled models
      (SD-Turbo, LCM) ignore it; it applies only where the prompt is not empty.
    """

    strength: float = 0.0
    steps: int = 1
    noise_seed: int = 0
    noise_mix: float = 0.0
    prompts: tuple[str, ...] = ("",)
    prompt_mix: float = 0.0
    guidance: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.strength <= 1.0:
            problems.append(f"sculpt strength {self.strength} is not in [0, 1]")
        if not (isinstance(self.steps, int) and 1 <= self.steps <= MAX_STEPS):
            problems.append(f"steps {self.steps!r} is not a whole number in 1..{MAX_STEPS}")
        if not (isinstance(self.noise_seed, int) and self.noise_seed >= 0):
            problems.append(f"noise_seed {self.noise_seed!r} is not a whole number >= 0")
        if not 0.0 <= self.noise_mix <= 1.0:
            problems.append(f"noise_mix {self.noise_mix} is not in [0, 1]")
        if not 0.0 <= self.prompt_mix <= 1.0:
            problems.append(f"prompt_mix {self.prompt_mix} is not in [0, 1]")
        if not self.guidance >= 1.0:
            problems.append(f"guidance {self.guidance} is below 1 (1 is off)")
        if not self.prompts or not all(isinstance(p, str) for p in self.prompts):
            problems.append(f"prompts must be a non-empty tuple of strings, not {self.prompts!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def active(self) -> bool:
        """Does this sculpt call the UNet at all?"""
        return self.strength > 0.0

    @property
    def prompted(self) -> bool:
        """Is any prompt on the path non-empty?"""
        return any(p.strip() for p in self.prompts)

    @classmethod
    def from_params(cls, values: Mapping[str, Any], prompts: tuple[str, ...] = ("",)) -> SculptSettings:
        """From the render side's parameter values (``sculpt``, ``steps``, ``noise_seed``, ``noise_mix``,
        ``prompt_mix``, ``guidance``; missing ones take the defaults), clamped to the valid ranges."""
        def number(name: str, default: float, low: float, high: float) -> float:
            return min(max(float(values.get(name, default)), low), high)

        return cls(
            strength=number("sculpt", 0.0, 0.0, 1.0),
            steps=int(round(number("steps", 1, 1, MAX_STEPS))),
            noise_seed=int(round(number("noise_seed", 0, 0, 2**31 - 1))),
            noise_mix=number("noise_mix", 0.0, 0.0, 1.0),
            prompts=tuple(prompts) or ("",),
            prompt_mix=number("prompt_mix", 0.0, 0.0, 1.0),
            guidance=number("guidance", 1.0, 1.0, 30.0),
        )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "prompts": list(self.prompts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SculptSettings:
        """The inverse of ``to_json``; unknown keys are an error (a take from a newer version says so)."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown sculpt settings {sorted(unknown)}")
        return cls(**{**data, "prompts": tuple(data.get("prompts", ("",)))})

    def key(self) -> str:
        """A stable text form (for file names and caches outside this process)."""
        return json.dumps(self.to_json(), sort_keys=True)


@dataclass(frozen=True, eq=False)
class SculptResult:
    """A finished sculpt. Tensors are float32 on the sculptor's device, shaped by the input latent S
    ([C, h, w], or [B, C, h, w] for a batch):

    - ``latent`` S: the sculpted latent (the input itself when the settings are not ``active``).
    - ``x0s`` [k, *S]: each step's predicted clean latent (the last one is ``latent``).
    - ``xts`` [k, *S]: the noisy latent each step started from (``xts[0]`` is the noised input).
    k = ``settings.steps`` (0 when not active).
    """

    latent: torch.Tensor
    x0s: torch.Tensor
    xts: torch.Tensor
    settings: SculptSettings

    def view(self, step: int = 0, noisy: bool = False) -> torch.Tensor:
        """What the screen shows for ``step_view`` = ``step``: 0 is the result; 1..k that step's predicted
        clean latent (``noisy``: the noisy latent it started from); steps beyond k show step k."""
        if step <= 0 or self.x0s.shape[0] == 0:
            return self.latent
        index = min(step, self.x0s.shape[0]) - 1
        return (self.xts if noisy else self.x0s)[index]
