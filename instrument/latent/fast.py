"""``performance.latent_at`` for the render loop: the same function of the coordinates, far cheaper.

- ``FastLatents(anchors [N, C, h, w], seed=, std=)``: ``fl(coords) -> [C, h, w]`` on the anchors' device and
  dtype, equal to ``latent_at(anchors, coords, seed=, std=, atlas=fl.atlas)`` within float32 rounding.
- ``fl.mix(coords) -> Mix | None``: the same point as a weighted sum of at most ``MIX_TERMS`` fixed device
  vectors, which a CUDA-graph ``accel.FastDecoder`` sums inside its graph; None where only ``latent_at``
  computes the point.

Why: on a GPU ``latent_at`` (the general, batched geometry) issues a few hundred tiny kernels and host round
trips a frame, more than the fast decoder's whole frame (benchmarks/results/bench-cuda-h200-latents.md).
Anchors do not change while playing, so for a SLERP segment (the ``slerp`` and ``walk`` paths) the unit
vectors, norms and angle are fixed: a frame's point is two scalars (Python floats) times two fixed vectors,
and the random walk's wander is four keyframes (``geometry.walk_keyframe``) mixed with four scalars.
Everything else (glides in progress, offsets, locks, lerp / spline / loop paths, atlas coordinates) is
``latent_at`` itself.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from instrument.latent import geometry

MIX_TERMS = 6  # the most a Mix of FastLatents holds: two for the SLERP, four wander keyframes
KEYFRAMES_KEPT = 4  # keyframes further than this from the newest one are dropped


class Mix(NamedTuple):
    """A latent as a weighted sum of fixed vectors: ``sum(weights[k] * vectors[k])``, shaped ``shape``.

    ``vectors``: float32 [C*h*w] tensors on the decoder's device that never change once made (a CUDA graph
    keeps a copy of each and copies again only when a different tensor comes), so that a frame costs one
    upload of a few weights instead of a kernel launch per term.
    """

    vectors: tuple[torch.Tensor, ...]
    weights: tuple[float, ...]
    shape: tuple[int, ...]

    def latent(self) -> torch.Tensor:
        """The sum, eagerly: float32 ``shape`` on the vectors' device."""
        out = self.vectors[0] * self.weights[0]
        for vector, weight in zip(self.vectors[1:], self.weights[1:], strict=True):
            out.add_(vector, alpha=weight)
        return out.reshape(self.shape)


class Segment(NamedTuple):
    """Constants of the SLERP from anchor i to i + 1, as ``geometry.slerp`` computes them (flat vectors)."""

    a: torch.Tensor
    b: torch.Tensor
    unit_a: torch.Tensor
    other: torch.Tensor  # unit_b on the near branch; geometry's tangent direction on the far one
    norm_a: float
    norm_b: float
    theta: float


class FastLatents:
    """``performance.latent_at`` with the per-segment work done once per anchor pair (see the module).

    ``atlas``: a ``lab.atlas.Atlas`` for coordinates in atlas mode (``latent_at`` places them).
    ``fast_calls`` counts the points served as a ``Mix``.
    """

    def __init__(self, anchors: torch.Tensor, *, seed: int = 0, std: float = 1.0) -> None:
        self.anchors = anchors
        self.seed = seed
        self.std = std
        self.atlas = None
        self.routes = None  # [N - 1, K, C, h, w] for the geodesic path (set by lab.live.LiveLab)
        self.fast_calls = 0
        self._segments: dict[int, Segment] = {}
        self._keyframes: dict[int, torch.Tensor] = {}
        self._work = torch.promote_types(anchors.dtype, torch.float32)

    def __call__(self, coords: Any) -> torch.Tensor:
        mix = self.mix(coords)
        if mix is None:
            # (imported here: performance builds on this package)
            from instrument.performance import latent_at

            return latent_at(self.anchors, coords, seed=self.seed, std=self.std, atlas=self.atlas,
                             routes=self.routes)
        with torch.no_grad():
            return mix.latent().to(self.anchors.dtype)

    def mix(self, coords: Any) -> Mix | None:
        """The point at ``coords`` as a ``Mix``, or None where only ``latent_at`` computes it."""
        simple = (coords.path in ("slerp", "walk") and coords.glide >= 1.0 and coords.offset == 0
                  and coords.lock_channels <= 0 and coords.lock_region == "none"
                  and not getattr(coords, "atlas", False) and self.anchors.shape[0] > 1)
        if not simple:
            return None
        self.fast_calls += 1
        vectors, weights = self._slerp_terms(float(coords.s))
        if coords.noise > 0:
            self._wander_terms(float(coords.walk_t), float(coords.noise) * self.std, vectors, weights)
        return Mix(tuple(vectors), tuple(weights), tuple(self.anchors.shape[1:]))

    def _segment(self, i: int) -> Segment:
        seg = self._segments.get(i)
        if seg is None:
            with torch.no_grad():
                seg = self._make_segment(i)
            self._segments[i] = seg
        return seg

    def _make_segment(self, i: int) -> Segment:
        a = self.anchors[i].reshape(-1).to(self._work)
        b = self.anchors[i + 1].reshape(-1).to(self._work)
        na, nb = float(a.norm()), float(b.norm())
        ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
        theta = 2 * math.atan2(float((ua - ub).norm()), float((ua + ub).norm()))
        if theta <= math.pi / 2:
            other = ub
        else:  # the far branch turns toward a tangent with geometry's own antipode handling
            half = geometry.slerp(self.anchors[i], self.anchors[i + 1], 0.5).reshape(-1).to(self._work)
            other = (half / ((na + nb) / 2) - math.cos(theta / 2) * ua) / math.sin(theta / 2)
        return Segment(a, b, ua, other, na, nb, theta)

    def _slerp_terms(self, s: float) -> tuple[list[torch.Tensor], list[float]]:
        n = self.anchors.shape[0]
        x = min(max(s, 0.0), 1.0) * (n - 1)
        i = int(min(max(math.floor(x), 0), n - 2))
        t = min(max(x - i, 0.0), 1.0)
        seg = self._segment(i)
        if t == 0.0:
            return [seg.a], [1.0]
        if t == 1.0:
            return [seg.b], [1.0]
        scale = (1 - t) * seg.norm_a + t * seg.norm_b
        theta = seg.theta
        if theta <= math.pi / 2:
            sinc = _sinc(theta / math.pi)
            ca = (1 - t) * _sinc((1 - t) * theta / math.pi) / sinc
            cb = t * _sinc(t * theta / math.pi) / sinc
        else:
            ca, cb = math.cos(t * theta), math.sin(t * theta)
        return [seg.unit_a, seg.other], [scale * ca, scale * cb]

    def _wander_terms(self, walk_t: float, amount: float, vectors: list[torch.Tensor],
                      weights: list[float]) -> None:
        """Append ``amount * geometry.walk_offset(walk_t, seed, shape)`` as four keyframes on the device."""
        k = math.floor(walk_t)
        u = walk_t - k
        u2, u3 = u * u, u * u * u
        spline = [0.5 * (-u3 + 2 * u2 - u), 0.5 * (3 * u3 - 5 * u2 + 2), 0.5 * (-3 * u3 + 4 * u2 + u),
                  0.5 * (u3 - u2)]
        norm = math.sqrt(sum(w * w for w in spline))
        for key, w in zip(range(k - 1, k + 3), spline, strict=True):
            vectors.append(self._keyframe(key))
            weights.append(amount * w / norm)

    def _keyframe(self, key: int) -> torch.Tensor:
        """The walk's keyframe ``key``, flat, on the anchors' device (uploaded once while it is in use)."""
        frame = self._keyframes.get(key)
        if frame is None:
            shape = tuple(self.anchors.shape[1:])
            frame = geometry.walk_keyframe(self.seed, key, shape).reshape(-1)
            frame = frame.to(self.anchors.device, self._work)
            self._keyframes[key] = frame
            for old in [x for x in self._keyframes if abs(x - key) > KEYFRAMES_KEPT]:
                del self._keyframes[old]
        return frame


def _sinc(x: float) -> float:
    return 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
