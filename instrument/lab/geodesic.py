"""Geodesics: the route between two anchors along which the picture changes least.

A route from latent a to b is K + 1 control points ``z_0 = a, ..., z_K = b``; played, it follows a
Catmull-Rom curve through them (``geometry.route_point``, the ``geodesic`` path kind). With frames
``x_k = D(z_k)`` its *pixel path energy* and *pixel length* are

    E = K · Σ_k MS(x_{k+1} − x_k)        L = Σ_k RMS(x_{k+1} − x_k)

(MS, RMS: mean square and its root over every pixel value, pixels in [0, 1]). E is the discrete form of
∫ |dx/ds|² ds for the route played from s = 0 to 1, and E ≥ L², with equality when every step changes the
picture equally. A geodesic minimises E: it is the shortest route in pixel space, played at an even rate.

``solve`` starts from the SLERP or the LERP (control points at even s) and descends the energy. Its gradient
with respect to an interior control point is ``J_kᵀ ∂E/∂x_k``: one backward pass through the decoder per
point, in batches. Every step is checked by decoding, so the energy never rises; it stops after
``iterations`` steps or when no step lowers the energy. ``solve`` is a job (``instrument.lab.jobs``) that
yields after every batch of decoding, so that the render thread can spread the work over frames;
``geodesic`` runs it to the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from instrument.lab.jobs import Job, finish
from instrument.lab.stretch import DecodeFn
from instrument.latent.geometry import lerp, route_point, slerp

SHRINK = 0.25  # a step that raises the energy is tried again this much shorter (three times at most)
FIRST_STEP = 0.05  # the first step moves the farthest-moving control point this fraction of a route step
MEMORY = 5  # L-BFGS: the last steps whose gradient changes shape the next step


@dataclass
class Geodesic:
    """A route found by ``solve``. points: Tensor[K + 1, C, h, w] (points[0] = a, points[-1] = b);
    energy and length of the control points' frames (see the module docstring), and the SLERP's that it
    started from; history: the energy after each accepted step."""

    points: torch.Tensor
    energy: float
    length: float
    slerp_energy: float
    slerp_length: float
    history: list[float] = field(default_factory=list)

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """The played route: s Tensor[T] in [0, 1] -> latents Tensor[T, C, h, w]."""
        return route_point(self.points[None], s)


def energy_and_length(frames: torch.Tensor) -> tuple[float, float]:
    """Frames Tensor[K + 1, 3, H, W] along a route played from s = 0 to 1 -> (E, L) (module docstring)."""
    steps = (frames[1:] - frames[:-1]).float().flatten(1).pow(2).mean(1)
    return float(steps.sum() * len(steps)), float(steps.sqrt().sum())


def route_energy(decode: DecodeFn, route: Callable[[torch.Tensor], torch.Tensor], samples: int = 65, *,
                 batch: int = 8) -> tuple[float, float]:
    """(E, L) of any route ``s -> latents`` (a ``Geodesic``, a SLERP) measured on ``samples`` even steps
    of s: what playing it shows, between control points too."""
    with torch.no_grad():
        latents = route(torch.linspace(0, 1, samples))
        frames = torch.cat([decode(latents[i:i + batch]).float() for i in range(0, samples, batch)])
    return energy_and_length(frames)


def _decode(decode: DecodeFn, latents: torch.Tensor, batch: int, note: str) -> Job[torch.Tensor]:
    """Frames of latents [T, C, h, w], ``batch`` at a time, yielding ``note`` after each batch."""
    frames = []
    for i in range(0, len(latents), batch):
        with torch.no_grad():
            frames.append(decode(latents[i:i + batch]).float())
        yield note
    return torch.cat(frames)


def _gradient(decode: DecodeFn, points: torch.Tensor, frames: torch.Tensor, batch: int,
              note: str) -> Job[torch.Tensor]:
    """∂E/∂z for the interior control points (Tensor[K - 1, C, h, w]), a backward pass per batch."""
    k = len(frames) - 1
    per_pixel = frames[0].numel()
    # ∂E/∂x_k = 2K/P · (2 x_k − x_{k−1} − x_{k+1}) for the interior frames
    upstream = (2 * k / per_pixel) * (2 * frames[1:-1] - frames[:-2] - frames[2:])
    grads = []
    inner = points[1:-1]
    for i in range(0, len(inner), batch):
        z = inner[i:i + batch].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = decode(z).float()
            out.backward(upstream[i:i + batch].to(out.device))
        grads.append(z.grad.detach())
        yield note
    return torch.cat(grads)


def solve(decode: DecodeFn, a: torch.Tensor, b: torch.Tensor, *, points: int = 16, iterations: int = 12,
          batch: int = 4) -> Job[Geodesic]:
    """The geodesic from a to b (Tensor[C, h, w]) with ``points`` + 1 control points, as a generator that
    yields after every batch of decodes and returns a ``Geodesic`` (see the module docstring).

    It starts from the SLERP or the LERP, whichever has the lower energy, and takes quasi-Newton (L-BFGS)
    steps, each checked by decoding: a step that would raise the energy is shortened, and the search stops
    when no step lowers it. Cost per step: ``points`` - 1 decodes with a backward pass (about 3 decodes
    each), and as many plain decodes per energy check. ``decode`` must let gradients reach its input
    (``Autoencoder.decode`` does; call it outside ``torch.inference_mode``).
    """
    if points < 2:
        raise ValueError("a route needs at least 2 steps (points >= 2)")
    a, b = a.detach().float().clone(), b.detach().float().clone()
    s = torch.linspace(0, 1, points + 1, device=a.device)
    z = slerp(a, b, s)
    frames = yield from _decode(decode, z, batch, "start")
    energy, length = energy_and_length(frames)
    start = (energy, length)
    line = lerp(a, b, s)
    inner = yield from _decode(decode, line[1:-1], batch, "start")
    line_frames = torch.cat([frames[:1], inner, frames[-1:]])
    if energy_and_length(line_frames)[0] < energy:
        z, frames = line, line_frames
        energy, length = energy_and_length(frames)
    history: list[float] = []
    memory: list[tuple[torch.Tensor, torch.Tensor]] = []
    previous: tuple[torch.Tensor, torch.Tensor] | None = None
    for iteration in range(iterations):
        note = f"step {iteration + 1}/{iterations}"
        grad = (yield from _gradient(decode, z, frames, batch, note)).flatten()
        if previous is not None:
            moved, turned = z[1:-1].flatten() - previous[0], grad - previous[1]
            if float(moved @ turned) > 0:  # keep the curvature pairs that L-BFGS can use
                memory = [*memory[-(MEMORY - 1):], (moved, turned)]
        direction = _direction(grad, memory)
        if not memory:  # no curvature known yet: a short steepest-descent step
            size = direction.view(points - 1, -1).pow(2).mean(1).sqrt().max()
            spacing = (z[1:] - z[:-1]).flatten(1).pow(2).mean(1).sqrt().mean()
            direction = direction * (FIRST_STEP * spacing / size.clamp_min(1e-12))
        found = None
        for attempt in range(4):
            trial = z.clone()
            trial[1:-1] += SHRINK ** attempt * direction.view_as(z[1:-1])
            inner = yield from _decode(decode, trial[1:-1], batch, note)
            trial_frames = torch.cat([frames[:1], inner, frames[-1:]])
            if energy_and_length(trial_frames)[0] < energy:
                found = trial, trial_frames
                break
        if found is None:
            break  # no step lowers the energy: as close to a geodesic as this method gets
        previous = z[1:-1].flatten(), grad
        z, frames = found
        energy, length = energy_and_length(frames)
        history.append(energy)
    return Geodesic(z.detach(), energy, length, *start, history)


def _direction(grad: torch.Tensor, memory: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """L-BFGS's step direction from the gradient and (step, gradient change) pairs, oldest first."""
    q = -grad.clone()
    alphas = []
    for moved, turned in reversed(memory):
        alpha = float(moved @ q) / float(moved @ turned)
        q -= alpha * turned
        alphas.append(alpha)
    if memory:
        moved, turned = memory[-1]
        q *= float(moved @ turned) / float(turned @ turned)
    for (moved, turned), alpha in zip(memory, reversed(alphas), strict=True):
        q += (alpha - float(turned @ q) / float(moved @ turned)) * moved
    return q


def geodesic(decode: DecodeFn, a: torch.Tensor, b: torch.Tensor, *, points: int = 16, iterations: int = 12,
             batch: int = 4) -> Geodesic:
    """``solve`` run to the end: the geodesic from a to b."""
    return finish(solve(decode, a, b, points=points, iterations=iterations, batch=batch))
