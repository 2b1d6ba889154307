"""Decoded frames kept for reuse, and in-between frames for a device too slow to decode every one.

API (used by the render thread; every call is cheap, no torch):

- ``FrameCache(max_bytes)``: a least-recently-used store of ``[H, W, 3]`` uint8 frames, bounded by the bytes
  of the frames it holds. Keys are hashable *coordinates*: the render side's ``Coords`` (a dataclass), a tuple
  such as ``(coords, "fast")``, or a plain tuple of numbers.
  ``get(key) -> frame | None`` (counts ``hits``/``misses``), ``put(key, frame)``, ``key in cache``,
  ``len(cache)``, ``bytes``, ``clear()``.
- ``approximate(key) -> frame | None``: a stand-in for a frame not decoded yet, from the cached frames nearest
  to ``key``. A key splits into a *group* (its ints, strings and bools: path kind, anchor, decoder, locks;
  these must match exactly) and a *point* (its floats: path position, glide, noise, offset; distance is
  measured there). The two nearest frames of the same group are blended with inverse-distance weights,
  ``(d2 * f1 + d1 * f2) / (d1 + d2)``; an exact match is returned as is; None when the group is empty.
- ``Progressive(frame_fn, cache)``: the exact-or-approximate policy for a slow device. Each display tick,
  ``frame(key, make_latent)`` returns ``(frame, exact)`` at once: the cached exact frame if there is one,
  else the approximation, while one exact decode of the newest uncached key runs in the background
  (``frame_fn`` is an ``accel.FastDecoder``, whose ``launch``/``ready``/``collect`` do not block the caller on
  a CPU). ``exact_frames`` and ``approx_frames`` count what was shown, so that the HUD and the benchmark
  can report the exact-frame rate apart from the display rate.

How the render thread uses it on a CPU: its decoding answers each fast frame with
``Progressive.frame(key, lambda: FastLatents(coords))``, the ``FastDecoder`` decoding in its background
thread; a take records the exact frames only. Display and exact frame rates on a small CPU:
benchmarks/results/bench-cpu-live-integrated.md.

Why blend rather than hold the last frame: a knob sweep on a small CPU gets a few exact frames a second;
cross-fading between the decoded neighbours keeps the picture moving with the hand at display rate, and
each exact frame replaces its stand-in as soon as it lands.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import numpy as np

Key = Hashable


def split_key(key: Any) -> tuple[tuple[Any, ...], tuple[float, ...]]:
    """A key -> (group, point): floats go to the point, everything else to the group (in field order).

    Tuples, lists and dataclasses are walked in order, so ``(Coords(...), "fast")`` splits into the
    coordinates' discrete fields plus "fast", and their float fields.
    """
    group: list[Any] = []
    point: list[float] = []

    def walk(value: Any) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif isinstance(value, float):
            point.append(value)
        else:
            group.append(value)

    walk(key)
    return tuple(group), tuple(point)


def blend(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    """``(1 - w) * a + w * b`` for uint8 frames, in 8-bit fixed point (fast enough for display rate)."""
    w = int(round(min(max(weight_b, 0.0), 1.0) * 256))
    if w == 0:
        return a
    if w == 256:
        return b
    out = a.astype(np.uint16) * (256 - w)
    out += b.astype(np.uint16) * w
    out >>= 8
    return out.astype(np.uint8)


class FrameCache:
    """A least-recently-used store of decoded ``[H, W, 3]`` uint8 frames, at most ``max_bytes`` of them.

    ``put`` evicts the least recently used frames until the total fits (a single frame larger than the
    budget is not kept). ``get`` refreshes a frame's recency; ``approximate`` does not.
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._items: collections.OrderedDict[Key, np.ndarray] = collections.OrderedDict()
        # group -> {key: point}: the candidates for approximate(), kept in step with _items.
        self._groups: dict[tuple[Any, ...], dict[Key, tuple[float, ...]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Key) -> bool:
        return key in self._items

    def get(self, key: Key) -> np.ndarray | None:
        frame = self._items.get(key)
        if frame is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return frame

    def put(self, key: Key, frame: np.ndarray) -> None:
        """Keep ``frame`` ([H, W, 3] uint8) under ``key``, replacing an older frame there."""
        if key in self._items:
            self._remove(key)
        if frame.nbytes > self.max_bytes:
            return
        self._items[key] = frame
        self.bytes += frame.nbytes
        group, point = split_key(key)
        self._groups.setdefault(group, {})[key] = point
        while self.bytes > self.max_bytes:
            self._remove(next(iter(self._items)))
            self.evictions += 1

    def clear(self) -> None:
        self._items.clear()
        self._groups.clear()
        self.bytes = 0

    def _remove(self, key: Key) -> None:
        frame = self._items.pop(key)
        self.bytes -= frame.nbytes
        group, _ = split_key(key)
        members = self._groups.get(group)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self._groups[group]

    def nearest(self, key: Key, k: int = 2) -> list[tuple[float, Key]]:
        """Up to ``k`` (distance, key) of cached frames in ``key``'s group, nearest first."""
        group, point = split_key(key)
        members = self._groups.get(group)
        if not members:
            return []
        keys = list(members)
        points = np.asarray([members[c] for c in keys], dtype=np.float64).reshape(len(keys), len(point))
        distances = np.sqrt(((points - np.asarray(point, dtype=np.float64)) ** 2).sum(axis=1))
        order = np.argsort(distances, kind="stable")[:k]
        return [(float(distances[i]), keys[i]) for i in order]

    def approximate(self, key: Key) -> np.ndarray | None:
        """The frame at ``key`` if cached, else a blend of the two nearest cached frames of its group
        (inverse-distance weights), else the single one there is; None when its group has none."""
        if key in self._items:
            return self._items[key]
        near = self.nearest(key, 2)
        if not near:
            return None
        (d1, k1), *rest = near
        if not rest or d1 == 0.0:
            return self._items[k1]
        d2, k2 = rest[0]
        if not math.isfinite(d2) or d1 + d2 == 0.0:
            return self._items[k1]
        a, b = self._items[k1], self._items[k2]
        if a.shape != b.shape:
            return a
        return blend(a, b, d1 / (d1 + d2))


class FrameSource(Protocol):
    """What ``Progressive`` needs from a decoder (``accel.FastDecoder`` is one)."""

    def launch(self, latent: Any) -> None: ...
    def ready(self) -> bool: ...
    def collect(self) -> np.ndarray: ...
    @property
    def in_flight(self) -> int: ...


class Progressive:
    """Display-rate frames from a decoder slower than the display: exact when known, approximate meanwhile.

    ``frame(key, make_latent)`` never waits for a decode. It first takes in a finished background decode
    (into the cache), then returns ``(frame, True)`` for a cached key, or ``(approximation, False)``
    after starting a decode of ``make_latent()`` for ``key`` if the decoder is idle. Until anything is
    cached it waits for the first decode, so that there is a picture to show. After a decode raised (a
    non-finite frame, say) it waits for each decode until one succeeds: blends of old frames would hide the
    failure. Call it from one thread.
    """

    def __init__(self, source: FrameSource, cache: FrameCache) -> None:
        self.source = source
        self.cache = cache
        self.exact_frames = 0  # frames shown that were exact decodes
        self.approx_frames = 0  # frames shown that were blends of neighbours
        self.decoded = 0  # exact decodes that landed
        self.failing = False  # the last decode raised: no blends (of old frames) until one lands again
        self._pending: Key | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> Key | None:
        """The key whose exact decode is in flight (None when the decoder is idle)."""
        return self._pending

    def _land(self, wait: bool) -> np.ndarray | None:
        """Cache the decode in flight if it finished (or wait for it); returns its frame."""
        if self._pending is None or not (wait or self.source.ready()):
            return None
        # Idle again even when the decode failed (collect raises it): the next frame launches afresh.
        key, self._pending = self._pending, None
        try:
            frame = self.source.collect()
        except Exception:
            self.failing = True
            raise
        self.failing = False
        self.cache.put(key, frame)
        self.decoded += 1
        return frame

    def _launch(self, key: Key, make_latent: Callable[[], Any]) -> None:
        self.source.launch(make_latent())
        self._pending = key

    def frame(self, key: Key, make_latent: Callable[[], Any]) -> tuple[np.ndarray, bool]:
        with self._lock:
            self._land(wait=False)
            frame = self.cache.get(key)
            if frame is not None:
                self.exact_frames += 1
                return frame, True
            if self._pending is None:
                self._launch(key, make_latent)
            approx = None if self.failing else self.cache.approximate(key)
            if approx is not None:
                self.approx_frames += 1
                return approx, False
            # Nothing near to blend (the first frame, or a jump to another anchor), or the decoder is failing:
            # wait for this key (its error, if any, goes to the caller).
            if self._pending != key:
                self._land(wait=True)
                self._launch(key, make_latent)
            frame = self._land(wait=True)
            self.exact_frames += 1
            return frame, True

    def flush(self) -> None:
        """Wait for a decode in flight and cache it (before shutting the decoder down)."""
        with self._lock:
            self._land(wait=True)
