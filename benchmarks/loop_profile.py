"""Where the render loop's time goes beyond the decode, in the real render thread during a sweep.

    python benchmarks/loop_profile.py [--device cuda] [--size 512] [--seconds 4] [--anchors-on device|cpu]
        [--stages] [--sort tottime|cumulative] [--rows 22]

Default: cProfile of the loop (every call, inflated by the profiler). ``--stages``: the loop's own steps
timed with ``time.perf_counter`` (about a microsecond of overhead per step), as per-frame medians and means.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import pstats
import statistics
import time

from instrument import bench, render
from instrument.accel import FastDecoder
from instrument.accel.pipeline import Pipeline
from instrument.config import Config
from instrument.decoders import random_autoencoder
from instrument.lab.live import LiveLab
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding

# (class, method) of each step of a frame, in loop order
STAGES = [
    (Controls, "read"),
    (LiveLab, "step"),
    (render.Renderer, "_begin"),
    (Decoding, "begin"),
    (FastDecoder, "launch"),
    (Pipeline, "load"),
    (Pipeline, "run"),
    (render.Renderer, "_finish"),
    (Decoding, "finish"),
    (FastDecoder, "collect"),
    (render.Renderer, "_spare_time"),
    (LiveLab, "after_frame"),
    (render.Renderer, "_publish"),
]


def timed_stages() -> dict[str, list[float]]:
    """Wrap each of STAGES with a stopwatch; returns name -> durations in ms (filled as the loop runs)."""
    spans: dict[str, list[float]] = collections.defaultdict(list)
    for cls, name in STAGES:
        method = getattr(cls, name)

        @functools.wraps(method)
        def timed(*args, _method=method, _key=f"{cls.__name__}.{name}", **kwargs):
            began = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spans[_key].append((time.perf_counter() - began) * 1000)

        setattr(cls, name, timed)
    return spans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--anchors-on", default="device")
    ap.add_argument("--decoder", default="fast")
    ap.add_argument("--stages", action="store_true", help="time the loop's steps instead of profiling")
    ap.add_argument("--sort", default="tottime", help="pstats order: tottime, cumulative, ...")
    ap.add_argument("--rows", type=int, default=22)
    args = ap.parse_args()
    dtype = "fp16" if args.device != "cpu" else "fp32"
    ae = random_autoencoder(bench.DECODER_ARCH[args.decoder], device=args.device, dtype=dtype)
    profile = cProfile.Profile()
    spans = timed_stages() if args.stages else None
    if not args.stages:
        step = render.Renderer.step

        def profiled(self):
            profile.enable()
            try:
                return step(self)
            finally:
                profile.disable()

        render.Renderer.step = profiled
    row = bench.live_sweep(ae, args.size, Config(), seconds=args.seconds, fps=bench.FLAT_OUT_FPS,
                           anchors_on=args.anchors_on, progressive=False)
    print({k: row.get(k) for k in ("fps", "read_ahead", "in_loop", "latency", "anchors_on", "path")})
    if spans is None:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.rows)
        return
    frames = len(spans["Renderer._finish"])
    print(f"{'step':32} {'calls/frame':>11} {'median ms':>10} {'ms/frame':>9}")
    for key, values in spans.items():
        tail = values[len(values) // 2:]  # the second half: past the warm-up
        share = sum(tail) / max(1, frames - frames // 2)
        print(f"{key:32} {len(values) / frames:11.2f} {statistics.median(tail):10.4f} {share:9.4f}")


if __name__ == "__main__":
    main()
