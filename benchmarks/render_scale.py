"""Offline render across processes: frames/s of ``latent-instrument render --processes N`` for each N, the
frames checked byte-identical across N, each process's memory. Writes
``benchmarks/results/render-scale-<label>.md``.

Self-contained: it saves its own models (the real TAESD and SD 1.5 VAE architectures with seeded random
weights: speed does not depend on weight values, nothing is downloaded), records a take with the live loop
(a stepped clock: a few played frames between long stalls, which the render fills in, so that a take of
thousands of frames takes seconds to make), then runs ``python -m instrument render TAKE --processes N`` as
a user does, once per N, and reads each run's ``render.json``. Random weights decode to noise, which PNG
compresses worse and more slowly than a real picture: the per-frame cost on the CPU side is on the high side.

    python benchmarks/render_scale.py --device cpu --processes 1,2 --size 128 --frames 120
    python benchmarks/render_scale.py --device cuda --processes 1,2,4 --size 1024 --decoder full --frames 2000

More processes than GPUs share them (the GPUs' decodes then overlap the other processes' PNG encoding).
Needs torch, accelerate and diffusers besides this repository's own requirements.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from instrument.bench.machine import machine_info  # noqa: E402
from instrument.devices import resolve_device  # noqa: E402

FPS = 30.0
PLAYED = 4  # frames played between stalls
STALLS = 4
HEADER = ("| processes | wall s | startup s | frames/s | scaling | efficiency | per-process frames/s "
          "| per-process device MiB | per-process RSS MiB | identical |\n" + "|---" * 10 + "|")
MAPPING = """
version: 1
name: render scale
controls:
  - {cc: 1, param: position}
initial: {noise: 0.3}
"""


def save_models(folder: Path) -> tuple[Path, Path]:
    """A TAESD pair (.pth, as madebyollin ships them) and an SD 1.5 VAE diffusers folder, seeded random
    weights: (fast decoder file, full decoder folder)."""
    from diffusers import AutoencoderKL

    from instrument.decoders import random_autoencoder
    from instrument.decoders.loaders import SD15_VAE_CONFIG

    folder.mkdir(parents=True, exist_ok=True)
    tiny = random_autoencoder("taesd", family="sd15", device="cpu", dtype="fp32", seed=0)
    torch.save(tiny.decoder_module.state_dict(), folder / "taesd_decoder.pth")
    torch.save(tiny.encoder_module.state_dict(), folder / "taesd_encoder.pth")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoencoderKL.from_config(json.loads(SD15_VAE_CONFIG.read_text())).save_pretrained(folder / "vae")
    return folder / "taesd_decoder.pth", folder / "vae"


def record_take(folder: Path, size: int, frames: int, device: str, fast: Path, full: Path) -> Path:
    """A take spanning about ``frames`` frames at ``size`` px: STALLS times, PLAYED frames, a fader move and
    a stall, then PLAYED frames; its settings name the saved models, so that ``render`` loads them as a
    user's."""
    import mido

    from instrument.config import Config
    from instrument.decoders import load_models
    from instrument.events import ControlEvent, EventQueue
    from instrument.loop.clock import SteppedClock
    from instrument.loop.controls import Controls
    from instrument.loop.decoding import Decoding
    from instrument.mailbox import Mailbox
    from instrument.mapping import parse_mapping
    from instrument.render import Renderer

    config = Config(size=(size, size), fps=FPS, device=device, family="sd15", model=str(fast),
                    full_model=str(full), record_root=str(folder), seed=0)
    fast_ae, _ = load_models(Config(**{**vars(config), "full_model": "none"}))
    shape = fast_ae.latent_shape((size, size))
    anchors = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0)).to(fast_ae.device)
    mapping, errors = parse_mapping(MAPPING, "render-scale.yaml")
    assert not errors, errors
    queue, clock = EventQueue(), SteppedClock(start=1000.0)
    renderer = Renderer(config, queue=queue, mailbox=Mailbox(), clock=clock, record=str(folder / "take"),
                        load=lambda say: (fast_ae, None, anchors, ["a", "b", "c"], []),
                        controls=lambda: Controls(mapping, queue=queue),
                        decoding=lambda *a, **k: Decoding(*a, **{**k, "progressive": False}))
    stall = max(0, (frames - PLAYED) // STALLS - PLAYED)
    renderer.prepare()
    try:
        for k in range(STALLS):
            renderer.run_frames(PLAYED)
            queue.put(ControlEvent(clock.now(), "bench", mido.Message("control_change", control=1,
                                                                      value=(40 * k + 20) % 128)))
            clock.advance(stall / FPS)
        renderer.run_frames(PLAYED)  # (the frames after the last stall close the take's span)
    finally:
        renderer.close()
    return renderer.takes[0]


def run_render(take: Path, out: Path, processes: int, threads: int,
               args: argparse.Namespace) -> tuple[float, dict]:
    """``render TAKE --processes N`` in a new process, as a user runs it: (wall seconds, its render.json)."""
    command = [sys.executable, "-m", "instrument", "render", str(take), "--out", str(out), "--decoder",
               args.decoder, "--processes", str(processes), "--device", args.device]
    if threads:
        command += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        tail = done.stderr[-3000:].replace("\r", "\n")
        raise SystemExit(f"render with {processes} processes failed ({done.returncode}):\n{tail}")
    return wall, json.loads((out / "render.json").read_text())


def frame_hashes(folder: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("frame_*.png"))]


def gpu_label() -> str:
    if not torch.cuda.is_available():
        return "none"
    names = {torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())}
    return f"{torch.cuda.device_count()} x {', '.join(sorted(names))}"


def default_label(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    name = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    return f"cuda-{name.removeprefix('nvidia-')}-x{torch.cuda.device_count()}"


def row(label: str, wall: float, info: dict, base: dict, same: str, threads_as_base: bool) -> str:
    """One table row: a run (``info``: its render.json) against ``base`` (the first run's); efficiency
    only where the processes have the base's threads."""
    per = info["per_process"]
    rate, base_rate = info["frames_per_s"] or 0.0, base["frames_per_s"] or 0.0
    scaling = rate / base_rate if base_rate else 1.0
    efficiency = f"{scaling * len(base['per_process']) / len(per):.0%}" if threads_as_base else "-"
    device = [p.get("device_peak_reserved_mib") for p in per]
    cells = [
        label, f"{wall:.1f}", f"{max(p['startup_seconds'] for p in per):.1f}", f"{rate:.2f}",
        f"{scaling:.2f}x", efficiency, " / ".join(f"{p['frames_per_s'] or 0:.2f}" for p in per),
        " / ".join("-" if m is None else f"{m:.0f}" for m in device),
        " / ".join(f"{p.get('host_peak_rss_mib', 0):.0f}" for p in per), same,
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2", help="process counts to time, e.g. 1,2,4")
    parser.add_argument("--size", type=int, default=128, help="frame size (square)")
    parser.add_argument("--decoder", choices=("fast", "full"), default="fast")
    parser.add_argument("--frames", type=int, default=120, help="about this many frames in the take")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads per process (default: 1 on the CPU, so that every count draws the "
                             "same bits; the GPU's processes keep torch's)")
    parser.add_argument("--work", default="", help="folder for models, take and renders (default: a temp)")
    parser.add_argument("--label", default="", help="results file: render-scale-LABEL.md (default: device)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--keep", action="store_true", help="keep the rendered frames")
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.device = device.type
    if device.type == "cpu" and not args.threads:
        args.threads = 1
    counts = [int(n) for n in args.processes.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="render-scale-"))
    fast, full = save_models(work / "models")
    began = time.perf_counter()
    take = record_take(work / "takes", args.size, args.frames, device.type, fast, full)
    print(f"take: {take} ({time.perf_counter() - began:.1f} s to record)", flush=True)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    runs = [(n, args.threads, f"{n}" + (f" on {min(n, gpus)} GPU{'s' * (min(n, gpus) > 1)}" if gpus else ""))
            for n in counts]
    if device.type == "cpu" and torch.get_num_threads() > args.threads:
        runs.append((1, 0, f"1, {torch.get_num_threads()} threads"))  # what a render without flags does
    rows, base, base_hashes = [], None, None
    for n, threads, label in runs:
        out = work / f"render-{n}-{threads}"
        shutil.rmtree(out, ignore_errors=True)
        wall, info = run_render(take, out, n, threads, args)
        hashes = frame_hashes(out)
        if base is None:
            base, base_hashes, same = info, hashes, "(the reference)"
        else:
            differ = sum(a != b for a, b in zip(hashes, base_hashes, strict=False))
            differ += abs(len(hashes) - len(base_hashes))
            same = "yes" if differ == 0 else f"NO: {differ} of {len(base_hashes)} frames differ"
        rows.append(row(label, wall, info, base, same, threads == args.threads))
        print(rows[-1], flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    write_results(args, device, base, rows)
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def write_results(args: argparse.Namespace, device: torch.device, info: dict, rows: list[str]) -> None:
    import accelerate

    machine = machine_info()
    label = args.label or default_label(device)
    path = Path(args.results) / f"render-scale-{label}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = " ".join(sys.argv[1:])
    text = f"""# latent-instrument render across processes

- machine: {machine['platform']}; CPU: {machine['cpu']} ({machine['cpu_count']} cores); GPUs: {gpu_label()}
- torch {torch.__version__}, accelerate {accelerate.__version__}, Python {machine['python']}; load average at
  the start: {machine.get('load_average')} (other work on the machine skews the numbers)
- render: {info['decoder']} ({info['dtype']}) on {device.type}, {info['size'][0]}x{info['size'][1]},
  {info['frames']} frames; CPU threads per process: {args.threads or "torch's"}
- weights: random, the real architectures (TAESD; SD 1.5 VAE): pictures are noise, which costs PNG more
  than a real picture
- command: `python benchmarks/render_scale.py {line}`

Each run is `latent-instrument render TAKE --processes N` in a new process (accelerate's launcher; each
process loads the decoders and computes the control replay itself). **wall**: the whole command;
**startup**: the slowest process's time from its start to its first frame (imports, loading, compiling,
the replay); **frames/s**: the frames over the span from the first process's first frame to the last one's
last; **scaling** against the first row, and **efficiency** = scaling per process; per-process frames/s and
peak memory (device: reserved by torch's allocator; RSS: the process's peak resident memory), in MiB.
**identical**: every frame's PNG byte-identical to the first row's. On the CPU the convolutions round
according to the number of threads, so the rows compared keep the threads per process fixed; the last row,
a render without flags (torch's threads), shows what another thread count does.

{HEADER}
{chr(10).join(rows)}

More GPUs than this machine has are a separate run (the same command on a machine with more GPUs).
"""
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
