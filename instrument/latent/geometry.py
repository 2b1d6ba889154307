"""Latent geometry: the ways the instrument moves between anchors. Pure, batched torch functions.

The same functions serve the live render thread and offline rendering, so a performance re-rendered later
lands on the same latents. Conventions:

- A latent is a tensor of any shape ``[*S]`` (usually ``[C, h, w]`` diffusion-space latents). Angles and norms
  are taken over the whole flattened latent.
- Positions are a float (gives ``[*S]``) or a 1-D tensor of ``T`` positions (gives ``[T, *S]``): a batch of
  path points for prefetch or offline rendering costs one call.
- Work happens in float32 (or float64 if given) on the inputs' device; results come back in the input dtype.
- Endpoints and anchors are hit exactly: ``slerp(a, b, 0) == a`` bit for bit, and a path at an anchor's
  position returns that anchor.
- Nothing here returns NaN or Inf for finite inputs, including identical (θ = 0) and opposite (θ = π) latents.

Velocity along a path is ``path_velocity`` (central finite differences of ``path_point``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from instrument.params import LOCK_REGIONS

PATHS = ("lerp", "slerp", "loop", "spline")
# Below this length of the tangent toward b (sin θ, on the unit sphere), slerp mixes in a fixed direction:
# near θ = π the great circle through a and b is ill-defined, and at exactly π every one is a geodesic.
_ANTIPODAL = 1e-3
_EPS = 1e-12


def _work(x: Tensor) -> Tensor:
    """``x`` in the dtype we compute in: float32, or float64 if it already is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _positions(t: float | Tensor, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, bool]:
    """A float or 0-/1-D tensor -> (Tensor[T], batched?)."""
    tt = torch.as_tensor(t, device=device, dtype=dtype)
    if tt.ndim > 1:
        raise ValueError(f"positions must be a float or a 1-D tensor, not shape {tuple(tt.shape)}")
    return tt.reshape(-1), tt.ndim == 1


def _shaped(rows: Tensor, shape: torch.Size, batched: bool, dtype: torch.dtype) -> Tensor:
    """[T, n] -> [T, *S] (or [*S] when not batched) in ``dtype``."""
    return rows.reshape((rows.shape[0], *shape) if batched else shape).to(dtype)


def lerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """Straight line ``(1 - t) a + t b``. a, b: [*S]; t: float -> [*S], or Tensor[T] -> [T, *S]."""
    _check_pair(a, b)
    w = _work(a)
    tt, batched = _positions(t, a.device, w.dtype)
    rows = (1 - tt)[:, None] * w.reshape(1, -1) + tt[:, None] * _work(b).reshape(1, -1)
    return _shaped(rows, a.shape, batched, a.dtype)


def slerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation: the direction turns along a great circle at constant angular speed while the
    norm goes linearly from |a| to |b| (so equal-norm latents keep their norm all the way).

    a, b: [*S]; t: float -> [*S], or Tensor[T] -> [T, *S]. Near θ = 0 it becomes lerp smoothly; near θ = π it
    follows a well-defined great circle (exactly opposite latents take a fixed, seeded direction orthogonal to
    a), so the midpoint of a and -a is orthogonal to both and has their norm.
    """
    _check_pair(a, b)
    w = _work(a)
    tt, batched = _positions(t, a.device, w.dtype)
    n = len(tt)
    rows = _slerp_rows(w.reshape(1, -1).expand(n, -1), _work(b).reshape(1, -1).expand(n, -1), tt)
    return _shaped(rows, a.shape, batched, a.dtype)


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"cannot interpolate between shapes {tuple(a.shape)} and {tuple(b.shape)}")


def _slerp_rows(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Row-wise slerp. a, b: [T, n]; t: [T] -> [T, n] (all in one float dtype)."""
    t = t[:, None]
    na = a.norm(dim=1, keepdim=True)
    nb = b.norm(dim=1, keepdim=True)
    ua = a / na.clamp_min(_EPS)
    ub = b / nb.clamp_min(_EPS)
    # atan2 of chord lengths is accurate at both ends, where acos(dot) loses half the digits.
    theta = 2 * torch.atan2((ua - ub).norm(dim=1, keepdim=True), (ua + ub).norm(dim=1, keepdim=True))

    # θ <= π/2: the textbook weights sin((1-t)θ)/sin θ and sin(tθ)/sin θ, written with sinc so that they go
    # smoothly to lerp's (1 - t, t) as θ -> 0 instead of dividing 0 by 0.
    sinc = torch.sinc(theta / math.pi)
    wa = (1 - t) * torch.sinc((1 - t) * theta / math.pi) / sinc
    wb = t * torch.sinc(t * theta / math.pi) / sinc
    near = wa * ua + wb * ub

    # θ > π/2: leave a along the unit tangent toward b. That tangent (length sin θ) vanishes near π, so a
    # fixed direction orthogonal to a is mixed in below length _ANTIPODAL; its sign follows the tangent, so
    # the mix never cancels it, and the result moves continuously with b except at the exact antipode.
    tangent = ub - torch.cos(theta) * ua
    u = _orthogonal(ua)
    u = torch.where((u * tangent).sum(dim=1, keepdim=True) < 0, -u, u)
    tangent = tangent + (_ANTIPODAL - tangent.norm(dim=1, keepdim=True)).clamp_min(0) * u
    tangent = tangent / tangent.norm(dim=1, keepdim=True).clamp_min(_EPS)
    far = torch.cos(t * theta) * ua + torch.sin(t * theta) * tangent

    direction = torch.where(theta <= math.pi / 2, near, far)
    out = ((1 - t) * na + t * nb) * direction
    return torch.where(t == 0, a, torch.where(t == 1, b, out))


@functools.lru_cache(maxsize=8)
def _fixed_directions(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Two orthonormal Gaussian directions in R^n, the same on every device: [2, n]."""
    e = torch.randn(2, n, generator=torch.Generator().manual_seed(20240917), dtype=torch.float64)
    e[0] /= e[0].norm()
    e[1] -= (e[1] @ e[0]) * e[0]
    e[1] /= e[1].norm()
    return e.to(device=device, dtype=dtype)


def _orthogonal(unit: Tensor) -> Tensor:
    """A deterministic unit vector orthogonal to each row of ``unit`` ([T, n] -> [T, n])."""
    e = _fixed_directions(unit.shape[1], unit.device, unit.dtype)
    r1 = e[0] - (unit @ e[0])[:, None] * unit
    r2 = e[1] - (unit @ e[1])[:, None] * unit
    # |r1| = sin(angle to e0) >= 0.5 unless the row lies within 30° of ±e0, and then e1 (orthogonal to e0)
    # is at least 60° away from it.
    r = torch.where(r1.norm(dim=1, keepdim=True) >= 0.5, r1, r2)
    return r / r.norm(dim=1, keepdim=True).clamp_min(_EPS)


def blend(anchors: Tensor, weights: Tensor | Sequence[float], preserve_norm: bool = True) -> Tensor:
    """Weighted mix of N anchors. anchors: [N, *S]; weights: [N] -> [*S], or [T, N] -> [T, *S].

    Weights are normalised to sum to 1 (all-zero weights mix equally); they are meant to be >= 0. With
    ``preserve_norm`` the mix is rescaled to the weight-interpolated norm sum(w_i |a_i|): averaging
    independent latents shrinks them toward zero, which decodes as a flat grey picture. A mix that cancels
    out exactly (equal weights on a and -a) stays zero.
    """
    n = anchors.shape[0]
    flat = _work(anchors).reshape(n, -1)
    w = torch.as_tensor(weights, device=anchors.device, dtype=flat.dtype)
    batched = w.ndim == 2
    if w.ndim not in (1, 2) or w.shape[-1] != n:
        raise ValueError(f"weights of shape {tuple(w.shape)} do not fit {n} anchors (want [{n}] or [T, {n}])")
    w = w.reshape(-1, n)
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total.abs() > _EPS, w / torch.where(total.abs() > _EPS, total, 1), 1 / n)
    rows = w @ flat
    if preserve_norm:
        target = (w @ flat.norm(dim=1)).clamp_min(0)
        rows = rows * (target / rows.norm(dim=1).clamp_min(_EPS))[:, None]
    return _shaped(rows, anchors.shape[1:], batched, anchors.dtype)


def path_point(anchors: Tensor, s: float | Tensor, kind: str = "slerp", preserve_norm: bool = True) -> Tensor:
    """The point at position ``s`` of a path through N anchors. anchors: [N, *S]; s: float -> [*S], or
    Tensor[T] -> [T, *S].

    Kinds (anchor i sits at s = i / (N - 1) on open paths, s = i / N on the loop):
    - ``lerp``: straight segments from anchor to anchor; s is clamped to [0, 1].
    - ``slerp``: great-circle segments (see ``slerp``); s is clamped to [0, 1].
    - ``spline``: a Catmull-Rom curve through the anchors (cubic Hermite, continuous first derivative; the end
      tangents point at the neighbour); s is clamped to [0, 1].
    - ``loop``: a closed, periodic Catmull-Rom curve, last anchor back to the first with a continuous
      derivative at the seam; s wraps (s and s + 1 are the same point).
    With ``preserve_norm`` the curves are rescaled to a norm that follows the same spline through the anchors'
    norms, which keeps the picture from greying out between anchors; the lines (lerp) are left straight.
    """
    if kind not in PATHS:
        hint = " (a random walk is random_walk or walk_offset)" if kind == "walk" else ""
        raise ValueError(f"unknown path kind {kind!r}; known: {', '.join(PATHS)}{hint}")
    n = anchors.shape[0]
    if n == 0:
        raise ValueError("a path needs at least one anchor")
    flat = _work(anchors).reshape(n, -1)
    ss, batched = _positions(s, anchors.device, flat.dtype)
    if n == 1:
        return _shaped(flat.expand(len(ss), -1), anchors.shape[1:], batched, anchors.dtype)

    i, t = _segments(ss, n, closed=kind == "loop")
    if kind == "slerp":
        rows = _slerp_rows(flat[i], flat[(i + 1) % n], t)
    else:
        w = _path_weights(i, t, n, kind)
        rows = w @ flat
        if kind != "lerp" and preserve_norm:
            target = (w @ flat.norm(dim=1)).clamp_min(0)
            rows = rows * (target / rows.norm(dim=1).clamp_min(_EPS))[:, None]
        # Hit anchors exactly (the rescale above may round the last bit).
        rows = torch.where((t == 1)[:, None], flat[(i + 1) % n], rows)
        rows = torch.where((t == 0)[:, None], flat[i], rows)
    return _shaped(rows, anchors.shape[1:], batched, anchors.dtype)


def _segments(s: Tensor, n: int, closed: bool) -> tuple[Tensor, Tensor]:
    """Positions [T] -> (segment index [T] long, position within the segment [T] in [0, 1])."""
    if closed:
        x = torch.remainder(s, 1.0) * n
        i = x.floor().clamp(0, n - 1)
    else:
        x = s.clamp(0, 1) * (n - 1)
        i = x.floor().clamp(0, n - 2)
    return i.long(), (x - i).clamp(0, 1)


def _catmull_rom(t: Tensor) -> Tensor:
    """Catmull-Rom weights of the points (p0, p1, p2, p3) for the segment p1 -> p2: [T] -> [T, 4]."""
    t2, t3 = t * t, t * t * t
    return 0.5 * torch.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2], dim=1)


def _path_weights(i: Tensor, t: Tensor, n: int, kind: str) -> Tensor:
    """Every lerp/spline/loop point is a linear mix of the anchors: (segment, t) -> weights [T, n]."""
    w = torch.zeros(len(t), n, device=t.device, dtype=t.dtype)
    if kind == "lerp":
        w.scatter_add_(1, i[:, None], (1 - t)[:, None])
        return w.scatter_add_(1, i[:, None] + 1, t[:, None])
    offsets = torch.arange(-1, 3, device=t.device)
    if kind == "loop":
        return w.scatter_add_(1, (i[:, None] + offsets) % n, _catmull_rom(t))
    # Open spline: beyond each end a phantom point mirrors the neighbour (p[-1] = 2 p[0] - p[1]), so the end
    # tangent points from the end anchor toward the next one.
    ext = torch.zeros(n + 2, n, device=t.device, dtype=t.dtype)
    ext[1:-1] = torch.eye(n, device=t.device, dtype=t.dtype)
    ext[0, 0], ext[0, 1] = 2, -1
    ext[-1, -1], ext[-1, -2] = 2, -1
    w_ext = torch.zeros(len(t), n + 2, device=t.device, dtype=t.dtype)
    w_ext.scatter_add_(1, i[:, None] + 1 + offsets, _catmull_rom(t))
    return w_ext @ ext


def route_point(routes: Tensor, s: float | Tensor) -> Tensor:
    """The point at position ``s`` of a path made of routes between consecutive anchors (the ``geodesic``
    path kind: instrument.lab.geodesic finds the routes). routes: [M, K, *S], the K control points of each
    of the M segments (routes[i, 0] is anchor i, routes[i, -1] anchor i + 1); s: float -> [*S], or
    Tensor[T] -> [T, *S].

    Anchor i sits at s = i / M, as on the other open paths; s is clamped to [0, 1]. Inside a segment the
    point follows a Catmull-Rom curve through its control points at even steps, so it passes every control
    point exactly, with a continuous direction between them.
    """
    if routes.ndim < 3 or routes.shape[1] < 2:
        raise ValueError(f"routes must be [M, K >= 2, *S], not {tuple(routes.shape)}")
    m, k = routes.shape[:2]
    flat = _work(routes).reshape(m, k, -1)
    ss, batched = _positions(s, routes.device, flat.dtype)
    i, t = _segments(ss, m + 1, closed=False)
    rows = torch.empty(len(ss), flat.shape[2], device=routes.device, dtype=flat.dtype)
    for segment in i.unique().tolist():
        here = i == segment
        rows[here] = path_point(flat[segment], t[here], "spline", preserve_norm=False)
    return _shaped(rows, routes.shape[2:], batched, routes.dtype)


def path_velocity(anchors: Tensor, s: float | Tensor, kind: str = "slerp", preserve_norm: bool = True,
                  h: float = 1e-3) -> Tensor:
    """d(path_point)/ds by central differences of step ``h``: same shapes as ``path_point``. Open paths use
    one-sided differences at their ends; the loop wraps."""
    flat_dtype = _work(anchors).dtype
    ss, batched = _positions(s, anchors.device, flat_dtype)
    if kind == "loop":
        lo, hi = ss - h, ss + h
    else:
        lo, hi = (ss - h).clamp(0, 1), (ss + h).clamp(0, 1)
    ends = path_point(_work(anchors), torch.cat([lo, hi]), kind, preserve_norm)
    rows = (ends[len(ss):] - ends[: len(ss)]) / (hi - lo).reshape(-1, *[1] * (anchors.ndim - 1))
    return (rows if batched else rows[0]).to(anchors.dtype)


def random_walk(start: Tensor, steps: int, seed: int, step_size: float, bound: float) -> Tensor:
    """A seeded, bounded random walk from ``start``: [*S] -> [steps, *S], with walk[0] == start.

    Each step adds Gaussian noise of RMS ``step_size`` per element, with a gentle pull back toward the start
    (so it wanders about bound/2 away on average) and a hard limit: the RMS distance from the start,
    ||x - start|| / sqrt(numel), never exceeds ``bound``. Both are in latent units (multiply by the family's
    latent_std). The noise comes from a CPU generator, so a seed gives the same walk on every device.
    """
    if steps < 1 or step_size < 0 or bound <= 0:
        raise ValueError(f"random_walk needs steps >= 1, step_size >= 0, bound > 0 "
                         f"(got {steps}, {step_size}, {bound})")
    n = start.numel()
    noise = torch.randn(steps - 1, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    pull = min(1.0, 2 * step_size**2 / bound**2)  # stationary RMS of the pulled walk: about bound / 2
    offsets = torch.zeros(steps, n, dtype=torch.float64)
    d = offsets[0]
    for k in range(1, steps):
        d = d * (1 - pull) + step_size * noise[k - 1]
        rms = d.norm().item() / math.sqrt(n)
        if rms > bound:
            d = d * (bound / rms)
        offsets[k] = d
    w = _work(start)
    rows = w.reshape(1, -1) + offsets.to(device=start.device, dtype=w.dtype)
    rows[0] = w.reshape(-1)
    return rows.reshape(steps, *start.shape).to(start.dtype)


def walk_offset(t: float, seed: int, shape: Sequence[int], speed: float = 1.0, *,
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """A smooth, seeded wandering offset as a function of continuous time ``t`` (seconds): -> [*shape].

    Every element is a standard Gaussian (std 1) at every moment, changing smoothly (continuous first
    derivative): a Catmull-Rom curve through seeded Gaussian keyframes, ``speed`` keyframes per second,
    rescaled to unit variance. The same (t, seed) always gives the same offset, so live play and an offline
    re-render agree. If the speed changes during play, integrate it yourself and pass the phase as ``t``
    with speed 1, or the offset jumps. Scale the result by the noise amount and the family's latent_std.
    """
    u = t * speed
    k = math.floor(u)
    weights = _catmull_rom(torch.tensor([u - k], dtype=torch.float64))[0]
    weights = weights / weights.norm()  # a mix of independent unit Gaussians with these weights has std 1
    shape = tuple(int(x) for x in shape)
    keys = range(k - 1, k + 3)
    out = sum(float(wj) * walk_keyframe(seed, key, shape) for key, wj in zip(keys, weights, strict=True))
    return out.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=8)
def walk_keyframe(seed: int, k: int, shape: tuple[int, ...]) -> Tensor:
    """The k-th Gaussian keyframe of ``walk_offset``'s curve: float32 [*shape] on the CPU, std 1.

    ``walk_offset(t)`` mixes keyframes ``floor(t) - 1 .. floor(t) + 2``; a caller that mixes them itself
    (``latent.fast.FastLatents``) takes them from here so that both agree bit for bit. Cached: consecutive
    frames share them. Do not modify the returned tensor.
    """
    return torch.randn(shape, generator=torch.Generator().manual_seed(_mix(seed, k)))


def _mix(seed: int, k: int) -> int:
    """Two integers -> one well-spread 63-bit seed (splitmix64), so keyframe streams never overlap."""
    x = (seed * 0x9E3779B97F4A7C15 + k) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) >> 1


def lock_mask(shape: Sequence[int], channels: int | Sequence[int] = 0, region: str = "none",
              device: torch.device | str | None = None) -> Tensor:
    """Which elements of a [C, h, w] latent a lock holds: bool [C, h, w].

    ``channels``: an int N holds the first N channels; a list holds those channel indices. ``region`` (one of
    params.LOCK_REGIONS) holds a spatial part in every channel: left/right/top/bottom half, the centre (the
    middle half in each direction) or the border around it. Channels and region add up: an element is held
    if either lock covers it.
    """
    c, h, w = (int(x) for x in shape[-3:])
    if region not in LOCK_REGIONS:
        raise ValueError(f"unknown lock region {region!r}; known: {', '.join(LOCK_REGIONS)}")
    held = torch.zeros(c, dtype=torch.bool, device=device)
    if isinstance(channels, int):
        held[: max(0, min(channels, c))] = True
    else:
        index = torch.as_tensor(list(channels), dtype=torch.long)
        if len(index) and (index.min() < 0 or index.max() >= c):
            raise ValueError(f"lock channels {list(channels)} outside 0..{c - 1}")
        held[index.to(held.device)] = True
    y = torch.arange(h, device=device)[:, None]
    x = torch.arange(w, device=device)[None, :]
    center = (y >= h // 4) & (y < h - h // 4) & (x >= w // 4) & (x < w - w // 4)
    area = {
        "none": torch.zeros(h, w, dtype=torch.bool, device=device),
        "left": (x < w // 2).expand(h, w),
        "right": (x >= w - w // 2).expand(h, w),
        "top": (y < h // 2).expand(h, w),
        "bottom": (y >= h - h // 2).expand(h, w),
        "center": center,
        "border": ~center,
    }[region]
    return held[:, None, None] | area[None]


def apply_locks(latent: Tensor, held: Tensor, channels: int | Sequence[int] = 0,
                region: str = "none") -> Tensor:
    """Hold the locked elements at ``held`` while the rest follows ``latent``.

    latent: [..., C, h, w] (one latent or a batch); held: [C, h, w] (e.g. the current anchor), any
    device/dtype. Returns a new tensor shaped and typed like ``latent``. See ``lock_mask`` for the locks.
    """
    if region == "none" and (channels == 0 or (not isinstance(channels, int) and len(channels) == 0)):
        return latent
    mask = lock_mask(latent.shape[-3:], channels, region, latent.device)
    return torch.where(mask, held.to(device=latent.device, dtype=latent.dtype), latent)


def add_offset(latent: Tensor, channel: int, amount: float, std: float = 1.0) -> Tensor:
    """Add ``amount * std`` to one channel: latent [..., C, h, w] -> a new tensor, same shape and dtype.

    ``channel`` wraps around C (a knob over 0..63 sweeps every channel of a 4- or 32-channel latent)."""
    out = latent.clone()
    out[..., channel % latent.shape[-3], :, :] += amount * std
    return out
