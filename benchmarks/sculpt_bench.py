"""Sculpt stage speed: the plain diffusers loop against ``instrument.sculpt.Sculptor``, per frame.

Random weights of the real UNet architectures (SD-Turbo = SD 2.1, and SD 1.5; timing does not depend on weight
values, nothing is downloaded), img2img at strength 1 (every step runs), the empty prompt, guidance off. Rows:

- ``diffusers``: the UNet called eagerly with diffusers' EulerDiscreteScheduler (trailing spacing, as
  SD-Turbo's), the loop of StableDiffusionImg2ImgPipeline without the VAE and text encoder: the baseline.
- ``eager`` / ``eager-cl``: the Sculptor without compilation (``-cl``: channels_last UNet).
- ``compiled`` / ``compiled-cl``: torch.compile, and on CUDA our CUDA graph of one step (the GPU default).
- ``batch4``: the compiled path (eager on a CPU) with 4 frames in one UNet call per step, time per frame.

A row is the wall time of a whole frame (``begin`` + ``finish``, device work done), median and p90 over
``--repeats`` frames, and the UNet call's share. Writes ``<out>/sculpt-<device>[-tiny].md`` and ``.json``.

``--live``: the live path instead, ``render.Renderer`` as ``play`` runs it with the sculpt stage on
(``instrument.bench.sculpt``), beside the plain diffusers loop and the interpolation app's slider move. On a
GPU every frame is sculpted under a knob sweep (frames per second; the loop's overhead beyond the UNet and
the decode, each timed on the device), at k >= 2 steps twice: one UNet call a step, then as a stream batch
(``sculpt.stream``: one call of k frames' steps a frame, the picture k - 1 frames behind). On a CPU the
knob moves and rests in turns: display frames per second while it moves with sculpting on, and after each
rest the time until the sculpted frame is on screen against its own UNet steps + decode (target: 1.3x).
Writes ``<out>/sculpt-live-<device>.md`` and ``.json``.

    python benchmarks/sculpt_bench.py                                # CUDA: 512x512 fp16, every path
    python benchmarks/sculpt_bench.py --device cpu --archs sd21 --steps 1 --repeats 3     # CPU, 256x256 fp32
    python benchmarks/sculpt_bench.py --device cpu --tiny            # a smoke test: small UNets, seconds
    python benchmarks/sculpt_bench.py --live --device cpu --archs sd21 --steps 1          # the live CPU path
    python benchmarks/sculpt_bench.py --live --device cuda --steps 1,4                    # the live GPU path

Needs only torch, diffusers and transformers (and this repository on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrument.bench.sculpt import diffusers_frame  # noqa: E402
from instrument.devices import resolve_device  # noqa: E402
from instrument.sculpt import SculptOptions, Sculptor, SculptSettings  # noqa: E402
from instrument.sculpt.models import random_sculpt_model  # noqa: E402

PATHS = ("diffusers", "eager", "eager-cl", "compiled", "compiled-cl", "batch4")
ARCH_NAMES = {"sd21": "SD-Turbo (SD 2.1)", "sd15": "SD 1.5"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(frame, repeats: int, device: torch.device) -> tuple[float, list[float]]:
    """(seconds of the first call: compilation, capture; wall ms of each of ``repeats`` later calls)."""
    began = time.perf_counter()
    frame()
    sync(device)
    first = time.perf_counter() - began
    frame()  # (a second warm-up: the CUDA graph's first replay, cuDNN's choices)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        frame()
        sync(device)
        times.append((time.perf_counter() - began) * 1000)
    return first, times


def sculptor_frame(model, latent: torch.Tensor, steps: int, path: str, cache: Path):
    device = latent.device
    compiled = path.startswith("compiled") or (path == "batch4" and device.type == "cuda")
    graphs = compiled and device.type == "cuda"
    options = SculptOptions(compile="default" if compiled else "off", cuda_graphs=graphs,
                            channels_last=path.endswith("-cl"))
    sculptor = Sculptor(model, tuple(latent.shape[1:]), options=options, prompt_cache_dir=cache)
    frames = latent.expand(4, -1, -1, -1).clone() if path == "batch4" else latent[0]
    settings = SculptSettings(strength=1.0, steps=steps)
    return sculptor, lambda: sculptor.finish(sculptor.begin(frames, settings))


def run_row(model, arch: str, path: str, steps: int, args, cache: Path) -> dict:
    device, size = model.device, args.size
    latent = torch.randn(1, 4, size // 8, size // 8, device=device)
    model.unet.to(memory_format=torch.contiguous_format)
    torch._dynamo.reset()
    sculptor = None
    if path == "diffusers":
        frame = diffusers_frame(model, latent, steps)
    else:
        sculptor, frame = sculptor_frame(model, latent, steps, path, cache)
    first, times = timed(frame, args.repeats, device)
    batch = 4 if path == "batch4" else 1
    ms = statistics.median(times) / batch
    row = {"arch": arch, "path": path, "steps": steps, "batch": batch, "ms_per_frame": round(ms, 3),
           "p90_ms_per_frame": round(sorted(times)[math.ceil(0.9 * (len(times) - 1))] / batch, 3),
           "frames_per_s": round(1000 / ms, 1), "ms_per_unet_call": round(ms * batch / steps, 3),
           "first_call_s": round(first, 1), "repeats": len(times)}  # fmt: skip
    if sculptor is not None:
        row["device_ms_per_frame"] = round(sculptor.device_seconds * 1000 / batch, 3)
        sculptor.close()
    return row


def machine(device: torch.device) -> dict:
    info = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "device": device.type}
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in lines if "model name" in line)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    import diffusers
    import transformers

    info.update(diffusers=diffusers.__version__, transformers=transformers.__version__,
                threads=torch.get_num_threads())  # fmt: skip
    return info


def write(rows: list[dict], info: dict, args, out: Path) -> None:
    for row in rows:
        base = next((r for r in rows if r["path"] == "diffusers" and r["arch"] == row["arch"]
                     and r["steps"] == row["steps"]), None)  # fmt: skip
        row["speedup_vs_diffusers"] = round(base["ms_per_frame"] / row["ms_per_frame"], 2) if base else None
    stem = f"sculpt-{info['device']}{'-tiny' if args.tiny else ''}"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    where = info.get("gpu") or info["cpu"]
    lines = [f"# Sculpt stage, {where}", "",
             f"{info['device']} {info['dtype']} {info['size']}x{info['size']}, random weights"
             f"{' (tiny UNets: a smoke test, not real timings)' * args.tiny}, strength 1, empty prompt; "
             f"torch {info['torch']}, diffusers {info['diffusers']}, host {info['host']}. Written by "
             "benchmarks/sculpt_bench.py; compare rows of this run only.", "",
             "| model | path | steps | batch | ms/frame | p90 | frames/s | ms/UNet call | device ms | "
             "vs diffusers | first call s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        speedup = f"{r['speedup_vs_diffusers']}x" if r["speedup_vs_diffusers"] else ""
        cells = [ARCH_NAMES[r["arch"]], r["path"], r["steps"], r["batch"], r["ms_per_frame"],
                 r["p90_ms_per_frame"], r["frames_per_s"], r["ms_per_unet_call"],
                 r.get("device_ms_per_frame", ""), speedup, r["first_call_s"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    print(f"wrote {out / stem}.md and .json")


def live_rows(device: torch.device, args) -> None:
    """The live path's rows (``--live``): the Renderer with sculpting on, and the two baselines."""
    from instrument.bench.sculpt import (
        diffusers_ms,
        sculpt_checks,
        sculpt_kinds,
        sculpt_line,
        sculpt_rests,
        sculpt_sweep,
    )
    from instrument.bench.timing import build_decoder, slider_move_times
    from instrument.config import Config

    gpu = device.type != "cpu"
    dtype = torch.float16 if gpu else torch.float32
    config = Config(device=device.type, full_model="none")
    ae = build_decoder("fast", device, dtype, "sd15", config)
    result = {"machine": {**machine(device), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "gpu": machine(device).get("gpu"),
                          "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())},
              "settings": {"sculpt_steps": args.steps}, "decoders": {"fast": ae.label}, "decode": [],
              "live": [], "soak": [], "sculpt": [], "baseline": []}
    if gpu or args.baseline:  # (on a small CPU one slider move takes many seconds)
        timing = slider_move_times(device, seconds=10.0 if gpu else 1.0, warmup=3 if gpu else 1)
        result["baseline"].append({"device": device.type, **timing})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"sculpt-live-{device.type}" + ("-tiny" if args.tiny else "")
    for arch in args.archs.split(","):
        model = random_sculpt_model(arch, device=device, dtype=dtype, tiny=args.tiny)
        counts = [int(s) for s in args.steps.split(",")]
        for steps, stream in [(k, stream) for k in counts for stream in sculpt_kinds(k, gpu)]:
            if gpu:  # (at k >= 2: one UNet call a step, then the stream batch)
                row = sculpt_sweep(ae, model, args.size, config, steps=steps, seconds=args.seconds,
                                   stream=stream, progress=print)
            else:
                row = sculpt_rests(ae, model, args.size, config, steps=steps, rests=args.rests,
                                   progress=print)
            row.update(device=device.type, model=model.label, dtype="fp16" if gpu else "fp32", size=args.size,
                       diffusers_ms=round(diffusers_ms(model, args.size, steps, args.repeats), 3))
            result["sculpt"].append(row)
            print(sculpt_line(row), flush=True)
            result["checks"] = sculpt_checks(result["sculpt"])
            (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))
            (out / f"{stem}.md").write_text(bench_markdown(result))
    print(bench_markdown(result))
    print(f"wrote {out / stem}.md and .json")


def bench_markdown(result: dict) -> str:
    """The bench's Markdown, naming this script's command line."""
    from instrument.bench.report import to_markdown

    command = "- command: `python benchmarks/sculpt_bench.py " + " ".join(sys.argv[1:]) + "`"
    return "\n".join(command if line.startswith("- command:") else line
                     for line in to_markdown(result).splitlines()) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=0, help="pixels per side (default: 512 GPU, 256 CPU)")
    ap.add_argument("--archs", default="sd21,sd15")
    ap.add_argument("--steps", default="1,4")
    ap.add_argument("--paths", default="", help=f"of {','.join(PATHS)} (default: all on a GPU, "
                                                "diffusers,eager,batch4 on a CPU)")
    ap.add_argument("--repeats", type=int, default=0,
                    help="frames timed per row (default: 50 GPU, 5 CPU, 2 tiny)")
    ap.add_argument("--tiny", action="store_true", help="small UNets at 64x64: a smoke test")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--live", action="store_true", help="the live path (render.Renderer) with sculpting on")
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="--live on a GPU: seconds of knob sweep per row")
    ap.add_argument("--rests", type=int, default=3, help="--live on a CPU: knob moves and rests per row")
    ap.add_argument("--baseline", action="store_true",
                    help="--live on a CPU: also time the interpolation app's slider move (always on a GPU)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    gpu = device.type != "cpu"
    args.size = args.size or (64 if args.tiny else 512 if gpu else 256)
    args.repeats = args.repeats or (2 if args.tiny else 50 if gpu else 5)
    paths = args.paths.split(",") if args.paths else list(PATHS if gpu else ("diffusers", "eager", "batch4"))
    if unknown := set(paths) - set(PATHS):
        ap.error(f"unknown paths {sorted(unknown)}; known: {', '.join(PATHS)}")
    torch.backends.cudnn.benchmark = gpu
    if args.live:
        live_rows(device, args)
        return
    rows: list[dict] = []
    info = {**machine(device), "dtype": "fp16" if gpu else "fp32", "size": args.size}
    print(info, flush=True)
    with tempfile.TemporaryDirectory() as cache:
        for arch in args.archs.split(","):
            model = random_sculpt_model(arch, device=device, tiny=args.tiny)
            for steps in (int(s) for s in args.steps.split(",")):
                for path in paths:
                    row = run_row(model, arch, path, steps, args, Path(cache))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    write(rows, info, args, Path(args.out))


if __name__ == "__main__":
    main()
