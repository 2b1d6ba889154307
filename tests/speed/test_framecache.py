"""FrameCache: LRU eviction by bytes, approximate() blending, Progressive's exact-or-approximate policy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from instrument.framecache import FrameCache, Progressive, blend, split_key


def frame(value: int, side: int = 4) -> np.ndarray:
    return np.full((side, side, 3), value, dtype=np.uint8)


@dataclass(frozen=True)
class Where:  # shaped like the render side's Coords: discrete fields and float fields
    path: str
    s: float
    home: int = 0
    noise: float = 0.0


def test_evicts_least_recently_used_by_bytes():
    one = frame(1).nbytes
    cache = FrameCache(max_bytes=3 * one)
    for i in range(3):
        cache.put((float(i),), frame(i))
    assert cache.bytes == 3 * one
    assert cache.get((0.0,)) is not None  # 0 is now the most recent; 1 is the oldest
    cache.put((3.0,), frame(3))
    assert (1.0,) not in cache
    assert [k in cache for k in [(0.0,), (2.0,), (3.0,)]] == [True, True, True]
    assert cache.bytes == 3 * one and len(cache) == 3 and cache.evictions == 1
    big = np.zeros((8, 8, 3), np.uint8)  # larger than the whole budget: not kept, nothing evicted
    cache.put((9.0,), big)
    assert (9.0,) not in cache and len(cache) == 3


def test_put_again_replaces_and_counts_bytes_once():
    cache = FrameCache(max_bytes=10**6)
    cache.put((0.5,), frame(1))
    cache.put((0.5,), frame(2, side=8))
    assert cache.bytes == frame(2, side=8).nbytes
    assert cache.get((0.5,))[0, 0, 0] == 2
    assert cache.hits == 1 and cache.get((0.6,)) is None and cache.misses == 1


def test_split_key_walks_dataclasses_and_tuples():
    group, point = split_key((Where("slerp", 0.25, home=2, noise=0.5), "fast"))
    assert group == ("slerp", 2, "fast")
    assert point == (0.25, 0.5)


def test_approximate_blends_two_nearest_by_inverse_distance():
    cache = FrameCache()
    cache.put((Where("slerp", 0.0), "fast"), frame(0))
    cache.put((Where("slerp", 1.0), "fast"), frame(200))
    cache.put((Where("slerp", 0.9, home=1), "fast"), frame(99))  # another group: never blended in
    out = cache.approximate((Where("slerp", 0.25), "fast"))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    # d1 = 0.25 to the 0-frame, d2 = 0.75 to the 200-frame: weight of the far one = 0.25 -> 50
    assert abs(int(out[0, 0, 0]) - 50) <= 1
    exact = cache.approximate((Where("slerp", 1.0), "fast"))
    assert exact[0, 0, 0] == 200
    assert cache.approximate((Where("loop", 0.5), "fast")) is None  # nothing in that group
    single = cache.approximate((Where("slerp", 0.3, home=1), "fast"))
    assert single[0, 0, 0] == 99  # one candidate: itself


def test_blend_endpoints_and_midpoint():
    a, b = frame(10), frame(250)
    assert blend(a, b, 0.0) is a and blend(a, b, 1.0) is b
    assert abs(int(blend(a, b, 0.5)[0, 0, 0]) - 130) <= 1


class FakeSource:
    """A decoder whose frames finish only when the test says so; frame value = latent value."""

    def __init__(self):
        self.launched: list[float] = []
        self.done = False

    @property
    def in_flight(self) -> int:
        return len(self.launched)

    def launch(self, latent):
        self.launched.append(latent)

    def ready(self) -> bool:
        return bool(self.launched) and self.done

    def collect(self):
        return frame(int(self.launched.pop(0)))


def test_progressive_shows_blends_until_exact_frames_land():
    source = FakeSource()
    progressive = Progressive(source, FrameCache())
    # Nothing cached yet: the first frame waits for its decode and is exact.
    first, exact = progressive.frame((0.0,), lambda: 0)
    assert exact and first[0, 0, 0] == 0 and progressive.decoded == 1
    shown, exact = progressive.frame((1.0,), lambda: 200)  # launched; meanwhile the nearest frame stands in
    assert not exact and shown[0, 0, 0] == 0 and source.launched == [200]
    source.done = True
    shown, exact = progressive.frame((1.0,), lambda: 200)  # landed: exact now
    assert exact and shown[0, 0, 0] == 200
    source.done = False
    shown, exact = progressive.frame((0.5,), lambda: 100)  # launched, not finished: a blend of 0 and 200
    assert not exact and abs(int(shown[0, 0, 0]) - 100) <= 1
    shown, exact = progressive.frame((0.75,), lambda: 150)  # decoder busy: no second launch
    assert not exact and source.launched == [100]
    source.done = True
    shown, exact = progressive.frame((0.5,), lambda: 100)  # the exact frame landed and is shown
    assert exact and shown[0, 0, 0] == 100
    assert progressive.approx_frames == 3 and progressive.exact_frames == 3


def test_progressive_waits_when_the_group_is_empty():
    source = FakeSource()
    progressive = Progressive(source, FrameCache())
    progressive.frame(("a", 0.0), lambda: 5)
    out, exact = progressive.frame(("b", 0.0), lambda: 7)  # another group: nothing to blend, so it waits
    assert exact and out[0, 0, 0] == 7


@pytest.mark.parametrize("side", [64, 256])
def test_blend_keeps_shape_and_dtype(side):
    a, b = frame(0, side), frame(255, side)
    out = blend(a, b, 0.3)
    assert out.shape == a.shape and out.dtype == np.uint8


def test_progressive_shows_no_blends_while_decodes_fail():
    class Failing(FakeSource):
        fail = True

        def collect(self):
            value = int(self.launched.pop(0))
            if self.fail:
                raise RuntimeError("non-finite")
            return frame(value)

    source = Failing()
    source.fail = False
    progressive = Progressive(source, FrameCache())
    progressive.frame((0.0,), lambda: 0)
    source.fail = True
    progressive.frame((1.0,), lambda: 200)  # launched: a blend meanwhile
    source.done = True
    with pytest.raises(RuntimeError):
        progressive.frame((0.5,), lambda: 100)  # the decode landed with its error
    assert progressive.failing and progressive.pending is None
    with pytest.raises(RuntimeError):  # no blend of old frames: it waits for the decode, which fails again
        progressive.frame((0.5,), lambda: 100)
    source.fail = False
    shown, exact = progressive.frame((0.5,), lambda: 100)
    assert exact and shown[0, 0, 0] == 100 and not progressive.failing
