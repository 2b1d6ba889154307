"""The sampler's numbers: which timesteps a strength and a step count visit, and each step's coefficients.

The whole denoising loop is one step function applied k times (``steps.denoise_step``); everything that
differs between steps, samplers and prediction types is a row of ``COEFFICIENTS`` computed here, on the CPU in
float64, once per (strength, steps, guidance). Fixed shapes on the device follow: the same captured step runs
every step of every frame.

One step, with ``out`` the UNet's output at timestep t (alpha_bar = ``ab``):

    x_t  = keep * x + inject * noise          (step 0: the played latent noised to t; later steps: x)
    x0   = x0_x * x_t + x0_out * out           (the clean latent the model predicts)
    eps  = eps_x * x_t + eps_out * out         (the noise it predicts)
    den  = skip * x_t + x0_in * x0             (LCM's consistency boundary; plain x0 for the others)
    next = next_den * den + next_eps * eps + next_noise * noise

- "ddim" (deterministic, eta = 0): next = sqrt(ab') den + sqrt(1 - ab') eps. For epsilon prediction this is
  the Euler step SD-Turbo's scheduler takes, written in x rather than x / sqrt(ab).
- "lcm": next = sqrt(ab') den + sqrt(1 - ab') noise, the consistency sampler; re-noising with the same seeded
  noise (as StreamDiffusion does) keeps it deterministic.
- The last step's "next" is ``den`` itself (ab' = 1): the sculpted latent.

Timesteps: ``strength`` s in (0, 1] starts the walk at ``s * T`` (T = num_train_timesteps) and spaces k steps
evenly down from there, "trailing" like SD-Turbo's scheduler: s = 1, k = 4 gives 999, 749, 499, 249.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

COEFFICIENTS = ("keep", "inject", "x0_x", "x0_out", "eps_x", "eps_out", "skip", "x0_in",
                "next_den", "next_eps", "next_noise", "guidance")  # fmt: skip
SAMPLERS = ("ddim", "lcm")
PREDICTIONS = ("epsilon", "v_prediction")
LCM_SIGMA_DATA = 0.5
LCM_TIMESTEP_SCALING = 10.0


@dataclass(frozen=True)
class NoiseSchedule:
    """A scheduler config's training noise schedule (the fields every SD ``scheduler_config.json`` has)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"

    @classmethod
    def from_config(cls, config: dict) -> NoiseSchedule:
        """From a ``scheduler_config.json`` dict; missing fields take SD's values, others are ignored."""
        fields = {k: config[k] for k in cls.__dataclass_fields__ if config.get(k) is not None}
        schedule = cls(**fields)
        if schedule.beta_schedule not in ("scaled_linear", "linear"):
            raise ValueError(f"beta_schedule {schedule.beta_schedule!r} is not one of scaled_linear, linear")
        if schedule.prediction_type not in PREDICTIONS:
            raise ValueError(f"prediction_type {schedule.prediction_type!r} is not one of {PREDICTIONS}")
        return schedule

    def alphas_cumprod(self) -> torch.Tensor:
        """alpha_bar_t for t = 0 .. T-1, computed in float32 as diffusers' schedulers do (so that the numbers
        match theirs), returned as float64."""
        n = self.num_train_timesteps
        if self.beta_schedule == "scaled_linear":
            betas = torch.linspace(self.beta_start**0.5, self.beta_end**0.5, n, dtype=torch.float32) ** 2
        else:
            betas = torch.linspace(self.beta_start, self.beta_end, n, dtype=torch.float32)
        return torch.cumprod(1 - betas, 0).double()


def timesteps(strength: float, steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """The k = ``steps`` timesteps a sculpt of ``strength`` (0, 1] visits, highest first, each >= 0."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], not {strength}")
    top = strength * num_train_timesteps
    return [max(0, math.floor(top * (steps - i) / steps + 0.5) - 1) for i in range(steps)]


def step_table(schedule: NoiseSchedule, sampler: str, strength: float, steps: int,
               guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps float32 [k], coefficients float32 [k, len(COEFFICIENTS)]) for one sculpt; see the module."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is not one of {SAMPLERS}")
    ab = schedule.alphas_cumprod()
    ts = timesteps(strength, steps, schedule.num_train_timesteps)
    rows = []
    for i, t in enumerate(ts):
        a = float(ab[t])
        a_next = float(ab[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        keep, inject = (math.sqrt(a), math.sqrt(1 - a)) if i == 0 else (1.0, 0.0)
        if schedule.prediction_type == "epsilon":
            x0_x, x0_out, eps_x, eps_out = 1 / math.sqrt(a), -math.sqrt((1 - a) / a), 0.0, 1.0
        else:  # v_prediction
            x0_x, x0_out, eps_x, eps_out = math.sqrt(a), -math.sqrt(1 - a), math.sqrt(1 - a), math.sqrt(a)
        skip, x0_in = 0.0, 1.0
        if sampler == "lcm":
            scaled = t * LCM_TIMESTEP_SCALING
            skip = LCM_SIGMA_DATA**2 / (scaled**2 + LCM_SIGMA_DATA**2)
            x0_in = scaled / math.sqrt(scaled**2 + LCM_SIGMA_DATA**2)
        next_den = math.sqrt(a_next)
        next_eps = math.sqrt(1 - a_next) if sampler == "ddim" else 0.0
        next_noise = math.sqrt(1 - a_next) if sampler == "lcm" else 0.0
        rows.append([keep, inject, x0_x, x0_out, eps_x, eps_out, skip, x0_in, next_den, next_eps, next_noise,
                     guidance])
    return torch.tensor(ts, dtype=torch.float32), torch.tensor(rows, dtype=torch.float64).float()
