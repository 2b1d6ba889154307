"""First look at the render path's options on a CUDA card, before the instrument's own pieces exist.

Builds the two real decoder architectures with random weights (diffusers ``AutoencoderTiny()`` = TAESD and
``AutoencoderKL()`` = SD 1.5 VAE defaults), then times one 512x512 frame (latent -> uint8 HxWx3 on the device)
in fp16 for each variant: plain eager, channels_last, ``torch.compile`` in several modes, a hand-captured
CUDA graph, and a batch of 4. Also times the interpolation app's slider move (encode both images with the full
VAE, SLERP, decode, fp32). Prints one line per variant as it goes and writes JSON to ``--out``.

    python benchmarks/gpu_probe.py --out results.json [--skip-slow]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F


def timed(fn, n: int, warmup: int = 5) -> dict:
    """Median and p99 of ``fn()`` in ms, timed with CUDA events (one pair per call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for a, b in pairs:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in pairs)
    return {"median_ms": statistics.median(ms), "p99_ms": ms[min(n - 1, int(0.99 * n))], "n": n}


def to_uint8(x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """[B,3,H,W] in [-1,1] -> [B,H',W',3] uint8, resized on the device."""
    x = (x.float() * 0.5 + 0.5).clamp(0, 1)
    if tuple(x.shape[-2:]) != out_hw:
        x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def build(arch: str):
    from diffusers import AutoencoderKL, AutoencoderTiny

    torch.manual_seed(0)
    if arch == "taesd":
        vae = AutoencoderTiny()
        net = vae.decoder
        scale = 1.0
    else:
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        pq = vae.post_quant_conv
        dec = vae.decoder

        def net(z):
            return dec(pq(z))

        scale = 0.18215
    return vae, net, scale


def graphed(fn, example: torch.Tensor):
    """Capture ``fn(static_in)`` in a CUDA graph; returns (replay, static_in, static_out)."""
    static_in = example.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn(static_in)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_out = fn(static_in)
    return g.replay, static_in, static_out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="probe.json")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--budget-s", type=float, default=500)
    ap.add_argument("--archs", default="taesd,kl")
    args = ap.parse_args()
    t_start = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    results: list[dict] = []
    info = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "size": args.size}
    print(info, flush=True)

    def record(arch, variant, stats, **extra):
        row = {"arch": arch, "variant": variant, **stats, **extra}
        results.append(row)
        print(f"{arch:6s} {variant:44s} median {stats.get('median_ms', float('nan')):8.3f} ms  "
              f"p99 {stats.get('p99_ms', float('nan')):8.3f} ms  {extra}", flush=True)
        with open(args.out, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=1)

    hw = (args.size, args.size)
    lat = args.size // 8

    # The interpolation app's slider move: fp32, both images encoded again, SLERP, full decode.
    kl = build("kl")[0].to(dev).eval()
    imgs = torch.rand(2, 3, 512, 512, device=dev) * 2 - 1

    def slider_move(kl=kl):
        with torch.no_grad():
            za = kl.encode(imgs[:1]).latent_dist.mean
            zb = kl.encode(imgs[1:]).latent_dist.mean
            t = 0.37
            a, b = za.flatten(), zb.flatten()
            omega = torch.acos((a @ b / (a.norm() * b.norm())).clamp(-1, 1))
            z = (torch.sin((1 - t) * omega) * za + torch.sin(t * omega) * zb) / torch.sin(omega)
            out = kl.decode(z).sample
            return to_uint8(out, (512, 512)).cpu()

    record("kl", "app slider move fp32 512 (2 encodes+slerp+decode)", timed(slider_move, 20, 3))
    del kl, slider_move
    torch.cuda.empty_cache()

    for arch in args.archs.split(","):
        vae, net, scale = build(arch)
        vae = vae.to(dev, torch.float16).eval()
        z = torch.randn(1, 4, lat, lat, device=dev, dtype=torch.float16) / scale

        def frame(z_in, net=net):
            return to_uint8(net(z_in), hw)

        with torch.no_grad():
            torch.cuda.reset_peak_memory_stats()
            record(arch, "plain fp16 (decode only)", timed(lambda net=net, z=z: net(z), 50))
            record(arch, "plain fp16 frame (decode+resize+uint8)", timed(lambda z=z: frame(z), 50))
            vae.to(memory_format=torch.channels_last)
            zc = z.contiguous(memory_format=torch.channels_last)
            record(arch, "channels_last fp16 frame", timed(lambda zc=zc: frame(zc), 50))
            replay, sin, sout = graphed(frame, z)
            record(arch, "channels_last eager + CUDA graph", timed(replay, 100))
            del replay, sin, sout

            for mode in ["default", "max-autotune-no-cudagraphs"]:
                if time.perf_counter() - t_start > args.budget_s:
                    record(arch, f"compile {mode}: skipped (time budget)", {})
                    continue
                torch._dynamo.reset()
                cf = torch.compile(frame, mode=mode, dynamic=False)
                t0 = time.perf_counter()
                cf(z)
                torch.cuda.synchronize()
                ct = time.perf_counter() - t0
                st = timed(lambda cf=cf, z=z: cf(z), 50)
                record(arch, f"channels_last compile {mode}", st, compile_s=round(ct, 1))
                replay, sin, sout = graphed(cf, z)
                record(arch, f"channels_last compile {mode} + CUDA graph", timed(replay, 200))
                # Frame to host: graph replay, async copy into pinned memory, wait for it.
                host = torch.empty(sout.shape, dtype=torch.uint8, pin_memory=True)

                def to_host(replay=replay, sout=sout, host=host):
                    replay()
                    host.copy_(sout, non_blocking=True)
                    torch.cuda.current_stream().synchronize()

                t0 = time.perf_counter()
                n = 200
                for _ in range(n):
                    to_host()
                record(arch, "... + pinned copy to host, wall per frame", {
                    "median_ms": (time.perf_counter() - t0) / n * 1000})
                # Batched prefetch: 4 frames in one call.
                z4 = torch.randn(4, 4, lat, lat, device=dev, dtype=torch.float16) / scale
                cf(z4)
                r4, _, _ = graphed(cf, z4)
                st = timed(r4, 50)
                record(arch, f"compile {mode} batch 4 + graph (per frame)",
                       {k: v / 4 if k.endswith("ms") else v for k, v in st.items()})
                del replay, sin, sout, r4, cf

            if time.perf_counter() - t_start < args.budget_s - 120:
                torch._dynamo.reset()
                cf = torch.compile(frame, mode="reduce-overhead", dynamic=False)
                t0 = time.perf_counter()
                for _ in range(3):
                    cf(z)
                torch.cuda.synchronize()
                record(arch, "channels_last compile reduce-overhead", timed(lambda cf=cf, z=z: cf(z), 100),
                       compile_s=round(time.perf_counter() - t0, 1))
            record(arch, "peak memory", {}, max_alloc_mb=round(torch.cuda.max_memory_allocated() / 2**20))
        del vae, net
        torch._dynamo.reset()
        torch.cuda.empty_cache()
    print(f"total {time.perf_counter() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    main()
