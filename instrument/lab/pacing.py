"""Perceptual pacing: re-time a path so that the picture changes at a constant rate.

A path ``s -> z(s)``, s in [0, 1], moves through latent space at whatever speed its geometry gives; the
decoder then stretches some parts of it (see ``stretch``), so equal steps in s can give a frame that barely
moves followed by one that jumps. Pacing measures the path's arc length *in pixel space* (RMS pixel change,
pixels in [0, 1]) and inverts it: ``table(u)`` is the s at which a fraction u of the picture's total change
has happened. Step u evenly and the picture changes evenly.

A *survey* decodes the path at even steps (whole latents, whole pictures) and keeps the RMS change between
consecutive frames, plus small features of each frame (``phases``). The cumulative change between samples is
interpolated by a monotone cubic (Fritsch-Carlson) inside each piece between ``breaks`` (the anchors, where a
path may turn sharply), so the table follows the picture's speed as it varies *between* samples too, not
only from one sample to the next. ``survey`` is a job (``instrument.lab.jobs``) that yields after each batch
of decodes, so the render thread can spread it over frames; ``pacing_table`` runs one to the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from instrument.lab.jobs import Job, finish
from instrument.lab.phases import change_points, features
from instrument.lab.stretch import DecodeFn, rms

PathFn = Callable[[torch.Tensor], torch.Tensor]  # s: Tensor[T] in [0, 1] -> latents Tensor[T,C,h,w]
DENSE = 8  # table entries per survey step


@dataclass
class PacingTable:
    """Cumulative pixel-space arc length of a path, sampled at increasing path positions.

    s: Tensor[S] from 0 to 1; length: Tensor[S] from 0 to 1 (fraction of the total, non-decreasing);
    total: the whole path's pixel arc length (RMS pixel change summed along it).
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


def _slopes(secants: torch.Tensor) -> torch.Tensor:
    """Fritsch-Carlson slopes at the knots of one piece from its secants (Tensor[n] >= 0) -> Tensor[n + 1]:
    harmonic means inside, a clipped three-point estimate at the ends; monotone, and exact for a straight
    line or a parabola's secants at the ends."""
    n = len(secants)
    if n == 1:
        return secants.repeat(2)
    d = torch.zeros(n + 1, dtype=secants.dtype)
    left, right = secants[:-1], secants[1:]
    harmonic = 2 / (1 / left.clamp_min(1e-300) + 1 / right.clamp_min(1e-300))
    d[1:-1] = torch.where((left > 0) & (right > 0), harmonic, torch.zeros_like(left))
    for end, (first, second) in ((0, (secants[0], secants[1])), (n, (secants[-1], secants[-2]))):
        slope = (3 * first - second) / 2
        d[end] = slope.clamp(min=0, max=float(3 * first))
    return d


def table_from_steps(s: torch.Tensor, steps: torch.Tensor, breaks: Sequence[int] = ()) -> PacingTable:
    """Positions Tensor[S] (even steps) and the pixel change of the S-1 steps between them -> PacingTable,
    interpolated by a monotone cubic inside each piece between the sample indices ``breaks``."""
    steps, s = steps.detach().double().cpu(), s.detach().double().cpu()  # (a GPU survey's steps)
    # A hair of length per step keeps the table strictly increasing where the picture stands still.
    steps = steps + 1e-9 * steps.sum().clamp_min(1e-12)
    cumulative = torch.cat([torch.zeros(1, dtype=torch.float64), steps.cumsum(0)])
    t = torch.linspace(0, 1, DENSE + 1, dtype=torch.float64)[:-1]
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    edges = sorted({0, len(steps), *(b for b in breaks if 0 < b < len(steps))})
    dense_s, dense_length = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        h = s[lo + 1:hi + 1] - s[lo:hi]
        d = _slopes(steps[lo:hi] / h)
        for j in range(lo, hi):
            k, w = j - lo, h[j - lo]
            dense_s.append(s[j] + t * w)
            dense_length.append(h00 * cumulative[j] + h10 * w * d[k] + h01 * cumulative[j + 1]
                                + h11 * w * d[k + 1])
    dense_s.append(s[-1:])
    dense_length.append(cumulative[-1:])
    length = torch.cat(dense_length)
    total = float(cumulative[-1])
    return PacingTable(torch.cat(dense_s).float(), (length / total).clamp(0, 1).float(), total)


@dataclass
class Survey:
    """Frames decoded at even steps along a path. s: Tensor[S]; steps: Tensor[S-1] RMS pixel change between
    consecutive frames; feats: Tensor[S, D] (``phases.features``); breaks: sample indices of the anchors
    inside the path (where it may turn sharply)."""

    s: torch.Tensor
    steps: torch.Tensor
    feats: torch.Tensor
    breaks: list[int] = field(default_factory=list)

    def table(self) -> PacingTable:
        return table_from_steps(self.s, self.steps, self.breaks)

    def boundaries(self) -> list[float]:
        """Path positions of the phase boundaries (midway between the two frames a boundary falls between)."""
        knots = [0, *self.breaks, len(self.s) - 1]
        return [float(self.s[i - 1] + self.s[i]) / 2 for i in change_points(self.feats, knots)]


def survey(decode: DecodeFn, path: PathFn, samples: int, *, breaks: Sequence[int] = (),
           batch: int = 4) -> Job[Survey]:
    """Decode ``path`` at ``samples`` even positions, ``batch`` at a time, yielding after each batch;
    returns the ``Survey``."""
    if samples < 2:
        raise ValueError("a survey needs at least 2 samples")
    s = torch.linspace(0, 1, samples)
    steps, feats = [], []
    previous = None
    for i in range(0, samples, batch):
        with torch.no_grad():
            frames = decode(path(s[i:i + batch])).float()
        for frame in frames:
            if previous is not None:
                steps.append(rms((frame - previous)[None]))
            previous = frame
        feats.append(features(frames))
        yield f"{min(i + batch, samples)}/{samples}"
    return Survey(s, torch.cat(steps), torch.cat(feats), list(breaks))


def pacing_table(decode: DecodeFn, path: PathFn, samples: int = 33, *, breaks: Sequence[int] = (),
                 batch: int = 4) -> PacingTable:
    """Survey a path at ``samples`` even positions and build its ``PacingTable`` (``samples`` decodes)."""
    return finish(survey(decode, path, samples, breaks=breaks, batch=batch)).table()
