"""``latent-instrument bench``: its arguments, the run over devices, dtypes, decoders and sizes, the files."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from instrument.accel import DTYPE_NAMES
from instrument.bench.machine import available_devices, machine_info
from instrument.bench.report import checks, decode_line, live_line, to_markdown
from instrument.bench.sweep import FLAT_OUT_FPS, live_sweep, soak_drifts
from instrument.bench.timing import (
    VARIANTS,
    bench_family,
    build_decoder,
    decode_times,
    slider_move_times,
    weights_label,
)
from instrument.config import BenchConfig, Config, listing, number
from instrument.errors import UserError

log = logging.getLogger(__name__)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def configure_bench(parser: argparse.ArgumentParser) -> None:
    size, seconds = number(int, 8, 8192), number(float, 0, 86400, above=True)
    parser.add_argument("--devices", default="", type=listing(("cpu", "cuda", "mps")),
                        help="comma-separated: cpu, cuda, mps (default: all)")
    parser.add_argument("--decoders", default="fast,full", type=listing(("fast", "full")),
                        help="fast (--model, else TAESD), full (--full-model, else the SD 1.5 VAE); with no "
                             "model named, random weights (speed does not depend on them)")
    parser.add_argument("--dtypes", default="auto", type=listing(("auto", "fp16", "bf16", "fp32")),
                        help="auto (fp16 on GPU, fp32 on CPU), fp16, bf16, fp32")
    parser.add_argument("--sizes", default="256,512,768", type=listing(size),
                        help="square decode sizes in pixels")
    parser.add_argument("--variants", default="plain,accel", type=listing(VARIANTS),
                        help=f"decode paths to time: {', '.join(VARIANTS)} (accel = the config's switches)")
    parser.add_argument("--seconds", type=seconds, default=10.0, help="length of each live knob sweep")
    parser.add_argument("--decode-seconds", type=seconds, default=2.0,
                        help="time spent timing each decode row")
    parser.add_argument("--live-sizes", default="512", type=listing(size),
                        help="sizes to run the live sweep at ('' = none)")
    parser.add_argument("--live-fps", type=number(float, 0, 100_000), default=0.0,
                        help="render rate in the sweep (0: flat out on a GPU, twice --fps elsewhere)")
    parser.add_argument("--live-plain", action="store_true", help="also sweep with the plain path")
    parser.add_argument("--latents", default="fast", type=listing(("fast", "eager", "latent_at")),
                        help="how the sweep makes a frame's latent, comma-separated: fast (as play does: "
                             "FastLatents' Mix, summed inside the CUDA graph), eager (FastLatents' "
                             "latent by eager kernels), latent_at (the general geometry)")
    parser.add_argument("--anchors-on", default="device", type=listing(("device", "cpu")),
                        help="where the sweep's latents are made: device (as play does), cpu, or both: "
                             "device,cpu")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="time the interpolation app's slider move (full VAE, fp32, 512px)")
    parser.add_argument("--soak", type=number(float, 0, 86400), default=0.0,
                        help="seconds of a soak sweep (fast decoder)")
    parser.add_argument("--sculpt-steps", default="", type=listing(number(int, 1, 8)),
                        help="sculpt rows: the live loop with the sculpt stage on, at these step counts "
                             "(e.g. 1,4; '' = none): a knob sweep on a GPU, moves and rests on a CPU")
    parser.add_argument("--sculpt-arch", default="sd21", choices=("sd21", "sd15"),
                        help="the sculpt rows' UNet, random weights: sd21 (SD-Turbo) or sd15")
    parser.add_argument("--sculpt-size", type=number(int, 0, 8192), default=0,
                        help="the sculpt rows' size (0: 512 on a GPU, 256 on a CPU)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the results files")
    parser.add_argument("--name", default="", help="file name stem (default: bench-<device>[-<gpu>])")
    BenchConfig.add_arguments(parser)


def default_name(devices: list[str], info: dict[str, Any]) -> str:
    name = "bench-" + "-".join(devices)
    gpu = (info.get("gpu") or "").lower()
    for short in ("h200", "h100", "a100", "l40s", "l4", "a10", "4090", "3090", "t4", "v100"):
        if "cuda" in devices and short in gpu:
            return f"{name}-{short}"
    return name


class Results:
    """A run's rows, written to ``<out>/<stem>.md`` and ``.json`` after every row, so that an interrupted
    run keeps what it measured."""

    def __init__(self, out: Path, stem: str, info: dict[str, Any], settings: dict[str, Any]) -> None:
        self.out = out
        self.stem = stem
        self.data: dict[str, Any] = {"machine": info, "settings": settings, "decoders": {}, "decode": [],
                                     "live": [], "baseline": [], "soak": [], "sculpt": []}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, section: str, row: dict[str, Any]) -> None:
        self.data[section].append(row)
        self.save()

    def save(self) -> str:
        self.data["checks"] = checks(self.data)
        (self.out / f"{self.stem}.json").write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        text = to_markdown(self.data)
        (self.out / f"{self.stem}.md").write_text(text)
        return text


class BenchRun:
    """The rows of one ``bench`` command, device by device, into ``results``."""

    def __init__(self, args: argparse.Namespace, config: Config, results: Results) -> None:
        self.args = args
        self.config = config
        self.results = results
        self.family = bench_family(config)
        self.decoders = _csv(args.decoders)
        self.sizes = [int(s) for s in _csv(args.sizes)]
        self.live_sizes = [int(s) for s in _csv(args.live_sizes)]
        self.variants = _csv(args.variants)

    def device(self, name: str) -> None:
        device = torch.device(name)
        if self.args.baseline:
            self.baseline(device)
        for dtype_name in _csv(self.args.dtypes):
            for which in self.decoders:
                self.decoder_rows(device, dtype_name, which)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        if self.args.soak > 0:
            self.soak(device)
        if self.args.sculpt_steps:
            self.sculpt(device)

    def sculpt(self, device: torch.device) -> None:
        """The sculpt rows of ``device``: the live loop with sculpting on, at each ``--sculpt-steps``."""
        from instrument.bench.sculpt import (
            diffusers_ms,
            sculpt_kinds,
            sculpt_line,
            sculpt_rests,
            sculpt_sweep,
        )
        from instrument.devices import resolve_dtype
        from instrument.sculpt.models import random_sculpt_model

        dtype = resolve_dtype(_csv(self.args.dtypes)[0], device)
        gpu = device.type != "cpu"
        size = self.args.sculpt_size or (512 if gpu else 256)
        ae = self._build("fast", device, dtype)
        model = random_sculpt_model(self.args.sculpt_arch, device=device, dtype=dtype)
        labels = {"device": device.type, "model": model.label, "dtype": DTYPE_NAMES[dtype], "size": size}
        counts = [int(s) for s in _csv(self.args.sculpt_steps)]
        runs = [(steps, stream) for steps in counts for stream in sculpt_kinds(steps, gpu)]
        for steps, stream in runs:
            print(f"[{device.type} {size}] sculpting, {steps} step(s){' as a stream batch' * stream}, "
                  f"{model.label}...")
            try:
                if gpu:
                    row = sculpt_sweep(ae, model, size, self.config, steps=steps, seconds=self.args.seconds,
                                       stream=stream, progress=lambda t: print("  " + t))
                else:
                    row = sculpt_rests(ae, model, size, self.config, steps=steps, fps=self._live_fps("cpu"),
                                       progress=lambda t: print("  " + t))
                row["diffusers_ms"] = round(diffusers_ms(model, size, steps, repeats=20 if gpu else 2), 3)
            except Exception as exc:
                log.exception("sculpt row failed")
                row = {"steps": steps, "error": f"{type(exc).__name__}: {exc}"}
            row.update(labels)
            self.results.add("sculpt", row)
            print("  " + sculpt_line(row))

    def baseline(self, device: torch.device) -> None:
        print(f"[{device.type}] interpolation app slider move (full VAE fp32 512)...")
        gpu = device.type != "cpu"
        timing = slider_move_times(device, seconds=10.0 if gpu else 1.0, warmup=3 if gpu else 1)
        row = {"device": device.type, **timing}
        self.results.add("baseline", row)
        print(f"  {row['median_ms']:.1f} ms per move ({row['moves_per_s']} moves/s)")

    def _build(self, which: str, device: torch.device, dtype: torch.dtype) -> Any:
        ae = build_decoder(which, device, dtype, self.family, self.config)
        self.results.data["decoders"][which] = weights_label(ae)
        return ae

    def decoder_rows(self, device: torch.device, dtype_name: str, which: str) -> None:
        """Decode rows of one decoder at every size, and its live sweeps at the live sizes."""
        from instrument.devices import resolve_dtype

        dtype = resolve_dtype(dtype_name, device)
        ae = self._build(which, device, dtype)
        # Live, the full decoder plays as in play: chosen beside a fast one (`decoder: full`).
        companion = self._build("fast", device, dtype) if which == "full" and self.live_sizes else None
        labels = {"device": device.type, "decoder": which, "dtype": DTYPE_NAMES[dtype]}
        for size in self.sizes:
            for variant in self.variants:
                row = decode_times(ae, size, variant, self.config, self.args.decode_seconds)
                row.update(labels)
                self.results.add("decode", row)
                print("  " + decode_line(row))
            if size in self.live_sizes:
                self.live_rows(ae, companion, size, labels)

    def _live_fps(self, device: str) -> float:
        return self.args.live_fps or (FLAT_OUT_FPS if device == "cuda" else 2 * self.config.fps)

    def live_rows(self, ae: Any, companion: Any, size: int, labels: dict[str, str]) -> None:
        args = self.args
        runs = [(True, where, how) for where in _csv(args.anchors_on) for how in _csv(args.latents)]
        runs += [(False, "device", "latent_at")] if args.live_plain else []
        fps = self._live_fps(labels["device"])
        for accelerated, where, how in runs:
            plain = "" if accelerated else ", plain path"
            print(f"[{labels['device']} {labels['decoder']} {labels['dtype']} {size}] live sweep, "
                  f"{args.seconds:.0f} s, anchors on {where}, {how}{plain}...")
            try:
                row = live_sweep(ae, size, self.config, seconds=args.seconds, fps=fps,
                                 accelerated=accelerated, anchors_on=where, latents=how, fast=companion,
                                 progress=lambda t: print("  " + t))
            except Exception as exc:
                log.exception("live sweep failed")
                row = {"size": size, "error": f"{type(exc).__name__}: {exc}"}
            row.update(labels, accelerated=accelerated)
            self.results.add("live", row)
            print("  " + live_line(row))

    def soak(self, device: torch.device) -> None:
        from instrument.devices import resolve_dtype

        dtype = resolve_dtype(_csv(self.args.dtypes)[0], device)
        size = (self.live_sizes or self.sizes)[0]
        print(f"[{device.type}] soak: {self.args.soak:.0f} s sweep, fast decoder, {size}px...")
        ae = self._build("fast", device, dtype)
        row = live_sweep(ae, size, self.config, seconds=self.args.soak, fps=self._live_fps(device.type),
                         sample_every=max(1.0, self.args.soak / 60))
        row.update(device=device.type, decoder="fast", dtype=DTYPE_NAMES[dtype])
        soak_drifts(row)
        self.results.add("soak", row)
        print("  " + live_line(row))


def _settings_problem(args: argparse.Namespace, devices: list[str]) -> str | None:
    missing = [d for d in devices if d not in available_devices()]
    if missing:
        return f"not available here: {', '.join(missing)} (available: {', '.join(available_devices())})"
    unknown = [v for v in _csv(args.variants) if v not in VARIANTS]
    if unknown:
        return f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}"
    return None


def run_bench(args: argparse.Namespace) -> int:
    from instrument.decoders.loaders import check_sources

    config = Config.from_args(args)
    check_sources(config)  # a named model that is not there fails now, not after the first rows
    devices = _csv(args.devices) or available_devices()
    problem = _settings_problem(args, devices)
    if problem:
        raise UserError(problem)
    info = machine_info()
    results = Results(Path(args.out), args.name or default_name(devices, info), info, dict(vars(args)))
    run = BenchRun(args, config, results)
    print(f"bench on {info['cpu']} ({info['cpu_count']} cores), GPU: {info['gpu']}, torch {info['torch']}")
    for name in devices:
        run.device(name)
    text = results.save()
    print()
    print(text)
    print(f"wrote {results.out / results.stem}.md and .json")
    return 0
