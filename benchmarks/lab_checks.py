"""The lab's claims, measured on what `play` renders: pacing, the stretch readout, atlas flight, geodesics,
phase boundaries, and the weather map's time.

    python benchmarks/lab_checks.py [--size 128] [--only pacing,readout,atlas,geodesic,phases,map]

Every check drives the live functions as the render thread composes them (``loop.decoding.Decoding`` with the
CPU or GPU frame pipeline, ``Performance``, ``lab.live.LiveLab``: step, decode, after_frame, frame after
frame) with the real taef2 pair from ``../shared`` on the five shared pictures, and measures the frames
that come out (uint8, as shown and recorded):

- pacing: the coefficient of variation (std / mean) of the RMS change between consecutive frames while
  travelling along a path at constant speed, with pacing on and off; on three pairs and on a path through
  the five pictures for every path kind; and along glides between three pairs;
- readout: the HUD's stretch (LiveLab's readout at rest) against the real change between frames along three
  SLERPs (Spearman), and its bend against the frames' own non-linear residual;
- atlas: latent norms while flying over the map against the anchors', the cursor -> latent -> map round trip,
  and the number of clusters chosen for five pictures in six variants each;
- geodesic: pixel energy and length of the frames played along the `geodesic` path against SLERP and LERP;
- phases: the phase boundaries found along the five-picture SLERP path;
- map: `latent-instrument curvature` with its default settings, timed.

Writes benchmarks/results/lab-<device>.md and .json (lab-<device>-<checks>.* for a partial run). Not a
test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instrument.bench import machine_info  # noqa: E402
from instrument.config import Config  # noqa: E402
from instrument.decoders import load_autoencoder  # noqa: E402
from instrument.lab.atlas import Atlas, agreement, choose_k  # noqa: E402
from instrument.lab.live import LiveLab  # noqa: E402
from instrument.lab.measure import PROBE_STEP, probe_coords  # noqa: E402
from instrument.lab.stretch import spearman  # noqa: E402
from instrument.loop.decoding import Decoding, frame_pipeline  # noqa: E402
from instrument.params import PARAMS, PATH_KINDS  # noqa: E402
from instrument.performance import Coords, Performance  # noqa: E402

SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
NAMES = ["dog", "pastry", "scribe", "panda", "family"]
PAIRS = [(0, 1), (3, 0), (2, 4)]  # dog -> pastry, panda -> dog, scribe -> family
FPS = 30.0


def controls(**changes) -> dict:
    return {name: p.default for name, p in PARAMS.items()} | {"tempo": 120.0, "beat": 0.0} | changes


def cv(x: list[float]) -> float:
    return float(np.std(x) / np.mean(x))


def changes(frames: list[np.ndarray]) -> list[float]:
    """RMS change between consecutive uint8 frames, in [0, 1] pixel units."""
    f = [x.astype(np.float32) / 255 for x in frames]
    return [float(np.sqrt(((b - a) ** 2).mean())) for a, b in zip(f, f[1:], strict=False)]


class Player:
    """LiveLab + Performance + Decoding as the render thread composes them, stepped frame by frame (faster
    than real time: the lab does not wait for the controls to settle)."""

    def __init__(self, ae, anchors: torch.Tensor, names: list[str], size: int) -> None:
        self.pipeline = frame_pipeline(ae, (size, size), Config(size=(size, size)))
        self.decoding = Decoding(anchors, ae, None, out_size=(size, size), seed=0, fast_frames=self.pipeline)
        self.performance = Performance(n_anchors=len(anchors))
        self.records: list[dict] = []
        self.lab = LiveLab(self.performance, self.decoding, names, decode=ae.decode,
                           log_record=self.records.append, settle=0.0)  # (faster than real time)
        self.n = 0

    def frame(self, values: dict, pick: int | None = None, *, render: bool = True, resting: bool = False):
        coords = self.lab.step(values, self.n / FPS, pick, self.n)
        image = self.decoding.render(coords) if render else None
        self.lab.after_frame(coords, resting)
        self.n += 1
        return coords, image

    def settle(self, values: dict, limit: int = 5000) -> int:
        """Step (without drawing) until the lab measured what these controls want; frames it took."""
        for k in range(limit):
            self.frame(values, render=False)
            if not self.performance.wanted and not self.lab._finished:
                return k + 1
        raise RuntimeError(f"the lab did not settle within {limit} frames: {self.performance.wanted}")

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()


def travel(player: Player, kind: str, frames: int, pacing: bool) -> tuple[list[float], list[bool]]:
    """Frame changes over one pass along the whole path at constant speed, and for each change whether it
    straddles an anchor (the two frames lie on either side of it)."""
    values = controls(path=kind, pacing=pacing, walk_speed=0.0)
    player.settle(values)
    speed = 2 * FPS / frames  # 120 bpm: half a bar per second; the path in `frames` frames
    played = [player.frame(values | {"speed": speed}) for _ in range(frames + 1)]
    n = player.performance.n_anchors
    knots = [k / (n if kind == "loop" else n - 1) for k in range(1, n if kind == "loop" else n - 1)]
    s = [coords.s for coords, _ in played]
    straddles = [any(min(a, b) < k < max(a, b) for k in knots) for a, b in zip(s, s[1:], strict=False)]
    return changes([image for _, image in played]), straddles


def check_pacing(ae, latents: torch.Tensor, size: int, out: dict) -> list[str]:
    lines = ["## Pacing: variation of the picture's change between frames", "",
             "CV = std / mean of the RMS change between consecutive frames over one pass at constant speed "
             "(travel) or over a 1 s glide (30 frames; unpaced glides ease in and out). Where a path turns "
             "at an anchor (LERP, SLERP, walk and geodesic have corners there), the frame pair that "
             "straddles "
             "the anchor shows less change whatever the timing: the picture turns between them, and the RMS "
             "change is a chord, shorter than the two legs. The last column leaves those pairs out.", "",
             "| path | anchors | frames | CV unpaced | CV paced | CV paced, corners left out |",
             "|---|---|---|---|---|---|"]
    rows = [(f"{NAMES[i]} → {NAMES[j]} (slerp)", [i, j], "slerp", 48) for i, j in PAIRS]
    rows += [(f"five pictures, {kind}", list(range(5)), kind, 120) for kind in PATH_KINDS]
    for label, chosen, kind, frames in rows:
        result = {}
        for pacing in (False, True):
            player = Player(ae, latents[chosen], [NAMES[k] for k in chosen], size)
            try:
                result[pacing] = travel(player, kind, frames, pacing)
            finally:
                player.close()
        plain, (paced, corners) = cv(result[False][0]), result[True]
        cornered = kind in ("lerp", "slerp", "walk", "geodesic") and len(chosen) > 2
        inside = cv([c for c, corner in zip(paced, corners, strict=True) if not corner]) if cornered else None
        out.setdefault("pacing", []).append({"path": label, "frames": frames, "unpaced": plain,
                                             "paced": cv(paced), "paced_without_corners": inside})
        without = f"{100 * inside:.2f}% ({sum(corners)} pairs left out)" if cornered else "(no corners)"
        lines.append(f"| {label} | {len(chosen)} | {frames} | {100 * plain:.1f}% | {100 * cv(paced):.2f}% | "
                     f"{without} |")
        print(lines[-1], flush=True)
    for i, j in PAIRS:
        result = {}
        for pacing in (False, True):
            player = Player(ae, latents[[i, j]], [NAMES[i], NAMES[j]], size)
            try:
                values = controls(pacing=pacing, transition=1.0)
                player.settle(values)
                player.frame(values, pick=1, render=False)
                player.settle(values)  # the glide waits at its start while its table is measured
                shown, glide = [], 0.0
                while glide < 1.0:
                    coords, image = player.frame(values)
                    shown.append(image)
                    glide = coords.glide
            finally:
                player.close()
            result[pacing] = cv(changes(shown))
        out["pacing"].append({"path": f"glide {NAMES[i]} → {NAMES[j]}", "frames": len(shown),
                              "unpaced": result[False], "paced": result[True]})
        lines.append(f"| glide {NAMES[i]} → {NAMES[j]} | 2 | {len(shown)} | {100 * result[False]:.1f}% | "
                     f"{100 * result[True]:.2f}% | |")
        print(lines[-1], flush=True)
    return lines + [""]


def check_readout(ae, latents: torch.Tensor, size: int, out: dict) -> list[str]:
    lines = ["## The HUD readout against what the frames do", "",
             f"At 32 even points along each SLERP the lab measures its readout at rest (as when the controls "
             f"rest there). The frames a probe step ({PROBE_STEP:.4f} of the path) before and after each "
             "point "
             "are rendered like any frame (uint8): their RMS change is the real change there, and the middle "
             "frame's distance from their blend, over the two chords, is the non-linear residual that the "
             "bend stands for. Spearman rank correlations (the last column: stretch does not tell where the "
             "picture turns):", "",
             "| path | stretch vs real change | bend vs residual | stretch vs residual |",
             "|---|---|---|---|"]
    points = 32
    for i, j in PAIRS:
        player = Player(ae, latents[[i, j]], [NAMES[i], NAMES[j]], size)
        readout, real, residual = [], [], []
        try:
            for k in range(points):
                s = (k + 0.5) / points
                near = probe_coords(Coords("slerp", s), 2)  # (shifted inside the path at its ends)
                f = [player.decoding.render(c).astype(np.float32) / 255 for c in near]
                real.append(float(np.sqrt(((f[2] - f[0]) ** 2).mean())))
                chords = np.sqrt(((f[2] - f[1]) ** 2).mean()) + np.sqrt(((f[1] - f[0]) ** 2).mean())
                residual.append(float(np.sqrt(((2 * f[1] - f[0] - f[2]) ** 2).mean()) / max(chords, 1e-12)))
                player.lab.readout = None
                while player.lab.readout is None:
                    player.frame(controls(position=s), render=False, resting=True)
                readout.append(player.lab.readout)
        finally:
            player.close()
        stretch, bends = torch.tensor([r[0] for r in readout]), torch.tensor([r[1] for r in readout])
        rho = spearman(stretch, torch.tensor(real))
        rho_bend = spearman(bends, torch.tensor(residual))
        rho_cross = spearman(stretch, torch.tensor(residual))
        out.setdefault("readout", []).append({"path": f"{NAMES[i]} → {NAMES[j]}", "stretch_vs_change": rho,
                                              "bend_vs_residual": rho_bend, "stretch_vs_residual": rho_cross,
                                              "bend_range": [float(bends.min()), float(bends.max())]})
        lines.append(f"| SLERP {NAMES[i]} → {NAMES[j]} | {rho:.3f} | {rho_bend:.3f} | {rho_cross:.3f} |")
        print(lines[-1], flush=True)
    return lines + [""]


VARIANTS = {
    "orig": lambda im: im,
    "mirror": ImageOps.mirror,
    "crop": lambda im: im.crop((40, 30, 472, 462)),
    "cropmirror": lambda im: ImageOps.mirror(im.crop((0, 60, 420, 480))),
    "warm": lambda im: Image.merge("RGB", [c.point(lambda v, k=k: min(255, int(v * k)))
                                           for c, k in zip(im.split(), (1.12, 0.97, 0.82), strict=True)]),
    "pale": lambda im: ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(1.15)).enhance(0.6),
}


def check_atlas(ae, size: int, out: dict) -> list[str]:
    pictures, names = [], []
    for name in NAMES:
        with Image.open(SHARED / "images" / f"{name}.png") as im:
            for variant, make in VARIANTS.items():
                array = np.asarray(make(im.convert("RGB")).resize((size, size), Image.LANCZOS), np.float32)
                pictures.append(torch.from_numpy(array / 255).permute(2, 0, 1))
                names.append(f"{name}-{variant}")
    latents = ae.encode(torch.stack(pictures))
    atlas = Atlas.fit(latents, names)
    norms = latents.flatten(1).norm(dim=1)
    flight = []
    for i in range(len(names)):  # from every picture's spot to the next subject's original
        j = (i // 6 + 1) % 5 * 6
        for u in np.linspace(0, 1, 9):
            x, y = ((1 - u) * atlas.coords[i] + u * atlas.coords[j]).tolist()
            flight.append(float(atlas.from_map(x, y).norm()))
    trips = []
    for x in np.linspace(0.02, 0.98, 13):
        for y in np.linspace(0.02, 0.98, 13):
            tx, ty = atlas.to_map(atlas.from_map(x, y))
            trips.append(math.hypot(tx - x, ty - y))
    truth = torch.tensor([i // 6 for i in range(len(names))])
    k = choose_k(atlas.coords)
    out["atlas"] = {"anchor_norms": [float(norms.min()), float(norms.max())],
                    "flight_norms": [min(flight), max(flight), float(np.median(flight))],
                    "round_trip": [float(np.median(trips)), max(trips)], "k": k,
                    "cluster_agreement": agreement(atlas.labels, truth)}
    return ["## Atlas flight", "",
            f"30 pictures (the five in six variants) at {size} px. Flights from every picture's spot to the "
            "next subject's original (9 cursor points each); the round trip over a 13 × 13 grid of the whole "
            "map.", "",
            "| measure | value |", "|---|---|",
            f"| anchors' latent norms | {norms.min():.1f} .. {norms.max():.1f} |",
            f"| norms along the flights (min .. max, median) | {min(flight):.1f} .. {max(flight):.1f}, "
            f"{np.median(flight):.1f} |",
            f"| cursor → latent → map, distance (median, max; map = 1) | {np.median(trips):.5f}, "
            f"{max(trips):.5f} |",
            f"| clusters chosen (5 subjects) | {k} (agreement with the subjects, adjusted Rand: "
            f"{agreement(atlas.labels, truth):.3f}) |", ""]


def check_geodesic(ae, latents: torch.Tensor, size: int, out: dict) -> list[str]:
    lines = ["## Geodesics: pixel energy of what the path plays", "",
             "Each path kind played from one picture to the other in 64 even steps (pacing off); energy "
             "E = 64 · Σ MS(frame change), length L = Σ RMS(frame change) over the uint8 frames. E ≥ L², "
             "equal when every step changes the picture as much.", "",
             "| pair | LERP E (L) | SLERP E (L) | geodesic E (L) | geodesic vs SLERP | frames to find it |",
             "|---|---|---|---|---|---|"]
    for i, j in PAIRS:
        measured, waited = {}, 0
        for kind in ("lerp", "slerp", "geodesic"):
            player = Player(ae, latents[[i, j]], [NAMES[i], NAMES[j]], size)
            try:
                values = controls(path=kind)
                if kind == "geodesic":
                    waited = player.settle(values)
                shown = [player.frame(values | {"position": k / 64})[1] for k in range(65)]
            finally:
                player.close()
            steps = np.array(changes(shown))
            measured[kind] = (float(64 * (steps ** 2).sum()), float(steps.sum()))
        (le, ll), (se, sl), (ge, gl) = measured["lerp"], measured["slerp"], measured["geodesic"]
        out.setdefault("geodesic", []).append({"pair": f"{NAMES[i]} → {NAMES[j]}", **{
            k: {"energy": e, "length": length} for k, (e, length) in measured.items()}})
        lines.append(f"| {NAMES[i]} → {NAMES[j]} | {le:.4f} ({ll:.3f}) | {se:.4f} ({sl:.3f}) | "
                     f"{ge:.4f} ({gl:.3f}) | {100 * (ge / se - 1):+.1f}% | {waited} |")
        print(lines[-1], flush=True)
    return lines + [""]


def check_phases(ae, latents: torch.Tensor, size: int, out: dict) -> list[str]:
    player = Player(ae, latents, NAMES, size)
    try:
        frames = player.settle(controls(pacing=True))
    finally:
        player.close()
    boundaries = player.lab.boundaries["path slerp"]
    anchors = [round(k / (len(NAMES) - 1), 3) for k in range(len(NAMES))]
    out["phases"] = {"boundaries": boundaries, "anchors": anchors}
    return ["## Phase boundaries along the five-picture SLERP", "",
            f"Surveyed in {frames} frames (one decode a frame). Anchors at s = {anchors}; boundaries at s = "
            f"{[round(b, 3) for b in boundaries]}.", ""]


def check_map(out: dict) -> list[str]:
    from instrument.cli import main

    images = [str(SHARED / "images" / f"{n}.png") for n in ("dog", "panda")]
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        code = main(["curvature", *images, "-o", str(Path(folder) / "map.png"), "--cache-dir", folder,
                     "--model", str(SHARED / "models" / "taef2_decoder.pth"), "--family", "flux2",
                     "--device", "cpu"])
        seconds = time.perf_counter() - began
    out["map"] = {"seconds": seconds, "exit": code}
    return ["## The weather map", "",
            f"`latent-instrument curvature dog.png panda.png -o MAP.png --model taef2_decoder.pth` with its "
            f"defaults (16 × 16 grid, 128 px, LERP, SLERP and a geodesic of 8 points, 5 steps; the anchors "
            f"encoded afresh): {seconds:.0f} s wall (exit {code}), load average after it "
            f"{[round(x, 2) for x in os.getloadavg()]}.", ""]


def summary(out: dict) -> list[str]:
    """The measurements against the targets the lab set itself, in a few lines."""
    lines = ["## Against the targets", ""]
    pacing = out.get("pacing", [])
    pairs = [r["paced"] for r in pacing if "(slerp)" in r["path"] or r["path"].startswith("glide")]
    five = [r for r in pacing if r["path"].startswith("five")]
    if pairs:
        lines.append(f"- pacing on three pairs (travel and glides), CV < 2%: worst {100 * max(pairs):.2f}%."
                     )
    if five:
        smooth = max(r["paced"] for r in five if r["paced_without_corners"] is None)
        cornered = [r for r in five if r["paced_without_corners"] is not None]
        between = max(r["paced_without_corners"] for r in cornered)
        across = max(r["paced"] for r in cornered)
        lines.append(f"- five anchors, CV < 3% on every path kind: the smooth kinds (loop, spline) "
                     f"{100 * smooth:.2f}% at worst; the kinds with corners at the anchors "
                     f"{100 * between:.2f}% at worst between the corners, {100 * across:.2f}% with the "
                     "pairs that straddle a corner (see below: not a matter of timing).")
    if "readout" in out:
        lowest = min(r["stretch_vs_change"] for r in out["readout"])
        lines.append(f"- HUD readout, Spearman with the real change ≥ 0.8 on three paths: lowest "
                     f"{lowest:.3f}.")
    if "atlas" in out:
        a = out["atlas"]
        (lo, hi), (n_lo, n_hi) = a["flight_norms"][:2], a["anchor_norms"]
        lines.append(f"- atlas flight: norms {lo:.1f} .. {hi:.1f} within the anchors' {n_lo:.1f} .. "
                     f"{n_hi:.1f}; round trip at most {a['round_trip'][1]:.5f} (< 0.02); {a['k']} clusters "
                     "for 5 subjects.")
    if "geodesic" in out:
        gains = [r["geodesic"]["energy"] / r["slerp"]["energy"] - 1 for r in out["geodesic"]]
        gains_text = ", ".join(f"{100 * g:+.0f}%" for g in gains)
        lines.append(f"- geodesic pixel energy below SLERP's on three pairs: {gains_text}.")
    if "map" in out:
        lines.append(f"- weather map at its defaults in under 2 minutes: {out['map']['seconds']:.0f} s (load "
                     "average below).")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="picture side in pixels (default 128)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="pacing,readout,atlas,geodesic,phases,map")
    args = parser.parse_args()
    torch.manual_seed(0)
    ae = load_autoencoder(str(SHARED / "models" / "taef2_decoder.pth"), family="flux2", device=args.device,
                          dtype="fp32")
    from instrument.latent.anchors import load_anchors

    anchors, errors = load_anchors([str(SHARED / "images" / f"{n}.png") for n in NAMES], ae,
                                   (args.size, args.size), cache=None)
    assert not errors, errors
    latents = torch.stack([a.latent for a in anchors])
    info = machine_info()
    out: dict = {"machine": info, "size": args.size, "device": args.device}
    began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = ["# The lab's claims, measured on what play renders", "",
             f"`python benchmarks/lab_checks.py --size {args.size} --device {args.device}` on {began}, "
             f"taef2 (fp32), {args.size} × {args.size} px.", "",
             f"Machine: {info['cpu']}, {info['cpu_count']} cores, torch {info['torch']}, "
             f"load average at the start {info.get('load_average')} (other work shared the machine).", ""]
    only = args.only.split(",")
    checks = {"pacing": lambda: check_pacing(ae, latents, args.size, out),
              "readout": lambda: check_readout(ae, latents, args.size, out),
              "atlas": lambda: check_atlas(ae, args.size, out),
              "geodesic": lambda: check_geodesic(ae, latents, args.size, out),
              "phases": lambda: check_phases(ae, latents, args.size, out),
              "map": lambda: check_map(out)}
    for name, check in checks.items():
        if name in only:
            t0 = time.perf_counter()
            lines += check()
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    out["load_average_end"] = list(os.getloadavg())
    lines[6:6] = summary(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    everything = set(only) >= set(checks)
    stem = RESULTS / (f"lab-{args.device}" if everything else f"lab-{args.device}-{'-'.join(only)}")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    print("\n".join(lines))
    print(f"wrote {stem.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
