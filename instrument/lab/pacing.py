"""Perceptual pacing: re-time a path so that the picture changes at a constant rate.

A path ``s -> z(s)``, s in [0, 1], moves through latent space at whatever speed its geometry gives; the
decoder then stretches some parts of it (see ``curvature``), so equal steps in s can give a frame that barely
moves followed by one that jumps. Pacing measures the path's arc length *in pixel space* (RMS pixel change,
pixels in [0, 1]), and inverts it: ``table(u)`` is the s at which a fraction u of the picture's total change
has happened.
Step u evenly and the picture changes evenly.

Live use: the render thread keeps a ``PacingCache``; when a transition between anchors starts it asks for the
table of that path (built once, ``samples`` decodes, then cached; ``PacingBuilder`` spreads those decodes over
frames) and maps its transition progress u to ``s = table(u)`` every frame (a searchsorted on a few dozen
numbers: microseconds).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from instrument.lab.curvature import DecodeFn, path_profile, random_directions, rms, stretch
from instrument.latent.geometry import path_point

PathFn = Callable[[torch.Tensor], torch.Tensor]  # s: Tensor[T] in [0, 1] -> latents Tensor[T,C,h,w]


@dataclass
class PacingTable:
    """Cumulative pixel-space arc length of a path, sampled at increasing path positions.

    s: Tensor[S] from 0 to 1; length: Tensor[S] from 0 to 1 (fraction of the total, non-decreasing);
    total: the whole path's pixel arc length (sum of RMS pixel changes between the samples).
    """

    s: torch.Tensor
    length: torch.Tensor
    total: float

    def __call__(self, u: float | torch.Tensor) -> float | torch.Tensor:
        """Uniform progress u in [0, 1] (float or Tensor[T]) -> paced path position s in [0, 1], same form."""
        tu = torch.as_tensor(u, dtype=torch.float64).clamp(0, 1).reshape(-1)
        s = _interp(tu, self.length.double(), self.s.double())
        return float(s[0]) if not isinstance(u, torch.Tensor) else s.to(torch.float32).reshape(u.shape)

    def progress(self, s: float | torch.Tensor) -> float | torch.Tensor:
        """The inverse: path position s -> fraction u of the pixel change done by then."""
        ts = torch.as_tensor(s, dtype=torch.float64).clamp(0, 1).reshape(-1)
        u = _interp(ts, self.s.double(), self.length.double())
        return float(u[0]) if not isinstance(s, torch.Tensor) else u.to(torch.float32).reshape(s.shape)

    def positions(self, n: int) -> torch.Tensor:
        """n path positions (Tensor[n], from 0 to 1) at which the picture has changed by equal amounts."""
        return self(torch.linspace(0, 1, n))


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of (xp, fp) at x; xp non-decreasing (a flat run gives its start)."""
    i = torch.searchsorted(xp, x, right=True).clamp(1, len(xp) - 1)
    x0, x1 = xp[i - 1], xp[i]
    t = torch.where(x1 > x0, (x - x0) / (x1 - x0).clamp_min(1e-300), torch.zeros_like(x))
    return fp[i - 1] + t.clamp(0, 1) * (fp[i] - fp[i - 1])


def pacing_table(decode: DecodeFn, path: PathFn, samples: int = 33, *, method: str = "decode",
                 batch: int = 16) -> PacingTable:
    """Measure a path's pixel-space arc length at ``samples`` even positions and build its ``PacingTable``.

    method "decode": decode every sample and add up the RMS pixel changes (``samples`` decodes; exact for the
    chords between samples). "jvp": the pixel speed RMS(J z'(s)) at every sample (about 2 decodes each,
    z'(s) by a central difference of the path), integrated with the trapezoid rule; it sees speed changes
    inside a step that chords miss. Either way, cost is paid once per path: cache the table.
    """
    if samples < 2:
        raise ValueError("a pacing table needs at least 2 samples")
    s = torch.linspace(0, 1, samples)
    with torch.no_grad():
        latents = path(s)
    if method == "decode":
        steps = path_profile(decode, latents, batch=batch).double()
    elif method == "jvp":
        h = 0.25 / (samples - 1)
        with torch.no_grad():
            velocity = (path((s + h).clamp(max=1)) - path((s - h).clamp(min=0))) \
                / ((s + h).clamp(max=1) - (s - h).clamp(min=0)).view(-1, *[1] * (latents.dim() - 1))
        speed = (stretch(decode, latents, velocity, batch=batch) * rms(velocity).cpu()).double()
        steps = (speed[1:] + speed[:-1]) / 2 / (samples - 1)
    else:
        raise ValueError(f"method must be decode or jvp, not {method!r}")
    return _table(s, steps)


def _table(s: torch.Tensor, steps: torch.Tensor) -> PacingTable:
    """Positions Tensor[S] and the pixel length of the S-1 steps between them (float64) -> PacingTable."""
    # A hair of length per step keeps the table strictly increasing where the picture stands still.
    steps = steps + 1e-9 * steps.sum().clamp_min(1e-12)
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])
    total = float(cumulative[-1])
    return PacingTable(s, (cumulative / total).float(), total)


def paced_positions(decode: DecodeFn, path: PathFn, n: int, samples: int = 33, *,
                    method: str = "decode") -> torch.Tensor:
    """n positions along ``path`` (Tensor[n], s in [0, 1]) between which the picture changes equally."""
    return pacing_table(decode, path, samples, method=method).positions(n)


class PacingBuilder:
    """Builds a path's ``PacingTable`` a few decodes at a time, so the render thread never stalls for a whole
    table: call ``step()`` once per frame (``per_step`` decodes) until it returns the table; meanwhile play
    the path unpaced (s = u). Same result as ``pacing_table(..., method="decode")``."""

    def __init__(self, decode: DecodeFn, path: PathFn, samples: int = 33, per_step: int = 2):
        if samples < 2:
            raise ValueError("a pacing table needs at least 2 samples")
        self.decode, self.path, self.per_step = decode, path, max(1, per_step)
        self.s = torch.linspace(0, 1, samples)
        self._steps: list[float] = []
        self._previous: torch.Tensor | None = None
        self._next = 0
        self.table: PacingTable | None = None

    def step(self) -> PacingTable | None:
        """Decode up to ``per_step`` more samples; the finished table (then and every later call) or None."""
        if self.table is not None:
            return self.table
        chunk = self.s[self._next:self._next + self.per_step]
        with torch.no_grad():
            frames = self.decode(self.path(chunk)).float()
        for frame in frames:
            if self._previous is not None:
                self._steps.append(float(rms((frame - self._previous)[None])[0]))
            self._previous = frame
        self._next += len(chunk)
        if self._next >= len(self.s):
            self.table = _table(self.s, torch.tensor(self._steps, dtype=torch.float64))
        return self.table


class PacingCache:
    """Pacing tables by key (e.g. ``(anchor_a, anchor_b, kind, size)``), least recently used dropped first.
    For the render thread, which owns the decoder; not thread-safe."""

    def __init__(self, maxsize: int = 32):
        self.maxsize = maxsize
        self._tables: OrderedDict[Hashable, PacingTable] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], PacingTable]) -> PacingTable:
        """The table cached under ``key``, built by ``build()`` the first time."""
        if key in self._tables:
            self._tables.move_to_end(key)
            return self._tables[key]
        table = self._tables[key] = build()
        while len(self._tables) > self.maxsize:
            self._tables.popitem(last=False)
        return table

    def clear(self) -> None:
        self._tables.clear()


@dataclass
class Route:
    """A transition from a to b bent by sine bumps: z(s) = base(a, b, s) + Σ_k sin(kπs) · offsets[k].
    The bumps vanish at both ends, so the route still starts at a and ends at b."""

    a: torch.Tensor  # [C,h,w]
    b: torch.Tensor
    offsets: torch.Tensor  # [K,C,h,w]; all zero = the unbent base path
    kind: str = "slerp"
    pixel_length: float = 0.0  # measured when the route was chosen (pixel RMS, summed over samples)

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """s: Tensor[T] in [0, 1] -> Tensor[T,C,h,w]."""
        base = path_point(torch.stack([self.a, self.b]), s, self.kind)
        k = torch.arange(1, len(self.offsets) + 1, dtype=s.dtype, device=s.device)
        bumps = torch.sin(torch.pi * s[:, None] * k[None, :]).to(base)  # [T, K]
        return base + torch.einsum("tk,kchw->tchw", bumps, self.offsets.to(base))


def smooth_route(decode: DecodeFn, a: torch.Tensor, b: torch.Tensor, *, goal: str = "smooth",
                 kind: str = "slerp", candidates: int = 6, amplitudes: tuple[float, ...] = (0.15, 0.3),
                 samples: int = 9, seed: int = 0) -> Route:
    """Choose a bent route from a to b (Tensor[C,h,w]) along which the picture changes least ("smooth": it
    skirts high-stretch regions) or most ("turbulent": it seeks them out).

    Candidates: the straight base path, plus single sine bumps (one half-wave, peak at the middle) along
    ``candidates`` seeded random directions orthogonal to b - a, each at ± every amplitude (in units of the
    latent distance |b - a|, so every detour is bounded). Each is scored by its pixel arc length (the
    integral of stretch × latent speed) over ``samples`` decodes; "smooth" picks the shortest, "turbulent"
    the longest. Cost: (1 + 2·candidates·len(amplitudes)) × samples decodes
    (the defaults: 25 × 9 = 225 decodes; use a small decode size for live use). Works with any decode
    (no gradients needed).
    """
    if goal not in ("smooth", "turbulent"):
        raise ValueError(f"goal must be smooth or turbulent, not {goal!r}")
    a, b = a.float(), b.float()
    chord = (b - a).flatten()
    distance = chord.norm()
    unit = chord / distance.clamp_min(1e-12)
    dirs = random_directions(a, candidates, seed).flatten(1)
    dirs = dirs - (dirs @ unit)[:, None] * unit[None]
    dirs = (dirs / dirs.norm(dim=1, keepdim=True)).view(candidates, *a.shape)
    options = [torch.zeros(1, *a.shape)]
    options += [sign * amp * distance * d[None] for d in dirs for amp in amplitudes for sign in (1, -1)]
    s = torch.linspace(0, 1, samples)
    best: Route | None = None
    for offsets in options:
        route = Route(a, b, offsets, kind)
        route.pixel_length = float(path_profile(decode, route(s).to(a)).sum())
        better = best is None or (route.pixel_length < best.pixel_length if goal == "smooth"
                                  else route.pixel_length > best.pixel_length)
        if better:
            best = route
    return best


def stretch_at(decode: DecodeFn, z: torch.Tensor, *, k: int = 2, seed: int = 0) -> float:
    """The stretch at one latent z (Tensor[C,h,w]), RMS over k fixed seeded random directions, for a HUD
    indicator (unit: see ``curvature``). Cost: k jvps of 1.5-2 decodes each, so 3-4 decodes at z's size for
    k = 2 (measured on a 2-core CPU: 0.34 s at 64×64 px, 1.8 s at 128 px; a GPU at 512 px: a few decode
    times). Call it every few frames (cache the value), or on a cropped latent, never every frame.
    """
    dirs = random_directions(z, k, seed).to(z.device)
    return float(stretch(decode, z, dirs).pow(2).mean().sqrt())
