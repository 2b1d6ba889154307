"""Where the render loop's time goes beyond the decode: cProfile of the real render thread during a sweep.

    python benchmarks/loop_profile.py [--device cuda] [--size 512] [--seconds 4] [--anchors-on device|cpu]
        [--sort tottime|cumulative] [--rows 22]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from instrument import bench, render
from instrument.config import Config
from instrument.decoders import random_autoencoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--anchors-on", default="device")
    ap.add_argument("--decoder", default="fast")
    ap.add_argument("--sort", default="tottime", help="pstats order: tottime, cumulative, ...")
    ap.add_argument("--rows", type=int, default=22)
    args = ap.parse_args()
    dtype = "fp16" if args.device != "cpu" else "fp32"
    ae = random_autoencoder(bench.DECODER_ARCH[args.decoder], device=args.device, dtype=dtype)
    profile = cProfile.Profile()
    loop = render.Renderer._loop

    def profiled(self):
        profile.enable()
        try:
            loop(self)
        finally:
            profile.disable()

    render.Renderer._loop = profiled
    row = bench.live_sweep(ae, args.size, Config(), seconds=args.seconds, fps=1000,
                           anchors_on=args.anchors_on, progressive=False)
    print({k: row.get(k) for k in ("fps", "in_loop", "latency", "anchors_on", "path")})
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.rows)


if __name__ == "__main__":
    main()
