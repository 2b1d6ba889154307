"""The ``encode`` and ``walk`` commands: anchors to latent files, and walks between anchors to PNG frames.

    latent-instrument encode photos/*.jpg -o latents/
    latent-instrument walk dog.png seed:3 latents/pastry.safetensors --path spline --steps 120 -o walk/
    latent-instrument walk seed:1 'prompt:"a marble statue"' --sculpt 0.7 --sculpt-steps 4 --step-frames -o w/
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from instrument.config import AnchorConfig, SculptingSettings, number
from instrument.decoders import load_models
from instrument.errors import UserError
from instrument.latent.anchors import (
    AnchorCache,
    AnchorError,
    expand_spec,
    load_anchors,
    printable,
    save_latent,
    snap_size,
)
from instrument.latent.geometry import path_point, random_walk
from instrument.pixels import pixels_to_uint8

log = logging.getLogger(__name__)

WALK_PATHS = ("slerp", "lerp", "loop", "spline", "walk")


def _models(config: AnchorConfig, choice: str):
    """(decoder, encoder) for ``choice`` (auto | fast | full): auto takes the full model when one is loaded.
    Anchors are encoded by the chosen model when it has an encoder, else by the other one."""
    fast, full = load_models(config)  # ModelLoadError goes to the caller
    if choice == "full" and full is None:
        log.warning("no full-quality model is loaded (see --full-model); using %s", fast.label)
    chosen = full if full is not None and choice in ("auto", "full") else fast
    other = fast if chosen is full else full
    encoder = chosen if chosen.can_encode or other is None or not other.can_encode else other
    return chosen, encoder


def _cache(config: AnchorConfig) -> AnchorCache:
    return AnchorCache(config.cache_dir or None)


# encode ----------------------------------------------------------------------------------------------------


def configure_encode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("anchors", nargs="+", metavar="IMG",
                        help="images (or any anchor spec: seed:N, a .safetensors latent, a folder)")
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="folder for the <name>.safetensors latents")
    parser.add_argument("--encoder", choices=("auto", "fast", "full"), default="auto",
                        help="which model encodes: auto = the full model when loaded")
    AnchorConfig.add_arguments(parser)


def run_encode(args: argparse.Namespace) -> int:
    """0 when every anchor was written; 2 (each bad one named on stderr) when any failed."""
    config = AnchorConfig.from_args(args)
    _, encoder = _models(config, args.encoder)
    config.size = snap_size(config.size, encoder.family.downscale)
    cache = _cache(config)
    args.output.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    failed = 0
    outcomes: dict[str, int] = {"encoded": 0, "cache hit": 0, "copied": 0}
    for spec in args.anchors:
        try:
            items = expand_spec(spec)
        except AnchorError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        for item in items:  # one at a time, to tell each one's cache hit or miss
            hits, misses = cache.hits, cache.misses
            anchors, errors = load_anchors([item], encoder, config.size, cache=cache, seed=config.seed,
                                           fit=config.fit)
            for error in errors:
                print(f"error: {error}", file=sys.stderr)
            failed += len(errors)
            for anchor in anchors:
                name = _unique(anchor.name.replace(":", "-"), written)
                path = save_latent(args.output / f"{name}.safetensors", anchor.latent, anchor.metadata)
                how = "cache hit" if cache.hits > hits else "encoded" if cache.misses > misses else "copied"
                outcomes[how] += 1
                print(f"{printable(anchor.source)}: {how} -> {printable(path)}")
    config.save(args.output)
    print(f"{len(written)} latents in {args.output}: {outcomes['encoded']} encoded, "
          f"{outcomes['cache hit']} from the cache, {outcomes['copied']} seeds or latent files, "
          f"{failed} failed")
    return 2 if failed else 0


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... if an earlier anchor took it."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


# walk ------------------------------------------------------------------------------------------------------


def configure_walk(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("anchors", nargs="+", metavar="ANCHOR",
                        help="anchors to visit in order: image files, seed:N, .safetensors latents")
    parser.add_argument("--path", choices=WALK_PATHS, default="slerp",
                        help="slerp/lerp: segments; spline: a smooth curve; loop: a closed smooth curve; "
                             "walk: a seeded random walk from the first anchor (default: slerp)")
    parser.add_argument("--steps", type=number(int, 1, 100_000), default=60, help="number of frames")
    parser.add_argument("-o", "--output", required=True, type=Path, help="folder for the frames")
    parser.add_argument("--batch", type=number(int, 1, 256), default=8, help="frames decoded at once")
    parser.add_argument("--decoder", choices=("auto", "fast", "full"), default="auto",
                        help="which model decodes: auto = the full model when loaded")
    parser.add_argument("--step-size", type=number(float, 0, 10, above=True), default=0.05,
                        help="random walk: RMS step per frame, in latent std")
    parser.add_argument("--bound", type=number(float, 0, 100, above=True), default=0.5,
                        help="random walk: largest RMS distance from the start, in latent std")
    parser.add_argument("--sculpt", type=number(float, 0, 1), default=0.0, metavar="S",
                        help="sculpt every frame this much (0: off)")
    parser.add_argument("--sculpt-steps", type=number(int, 1, 8), default=1, metavar="K", help="sculpt steps")
    parser.add_argument("--noise-seed", type=number(int, 0, 2**31 - 1), default=0, metavar="N",
                        help="sculpt noise seed")
    parser.add_argument("--step-frames", action="store_true", help="also write each step: step_K/, noisy_K/")
    sculpting = SculptingSettings()
    parser.add_argument("--sculpt-model", default=sculpting.sculpt_model, metavar="SOURCE",
                        help="the sculpting UNet, as play's --sculpt-model")
    parser.add_argument("--sculpt-lora", default="", metavar="LORA", help="a LoRA fused into it")
    parser.add_argument("--prompt", default="", help='without prompt:"..." anchors, this prompt')
    AnchorConfig.add_arguments(parser)


def path_positions(steps: int, kind: str) -> list[float]:
    """The path positions of a walk's ``steps`` frames along a ``kind`` path, evenly spaced in [0, 1]:
    open paths show both ends; a loop leaves out its end, which is its start, so that the frames cycle."""
    count = steps if kind == "loop" else max(steps - 1, 1)
    return [k / count for k in range(steps)]


def run_walk(args: argparse.Namespace) -> int:
    needed = 1 if args.path == "walk" else 2
    if len(args.anchors) < needed:
        raise UserError(f"a {args.path} path needs at least {needed} anchors; {len(args.anchors)} given")
    config = AnchorConfig.from_args(args)
    decoder, encoder = _models(config, args.decoder)
    config.size = snap_size(config.size, decoder.family.downscale)
    anchors, errors = load_anchors(args.anchors, encoder, config.size, cache=_cache(config), seed=config.seed,
                                   fit=config.fit)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 2
    stack = torch.stack([a.latent for a in anchors]).to(decoder.device)
    n, steps = len(anchors), args.steps
    if args.path == "walk":
        std = decoder.family.latent_std
        latents = random_walk(stack[0], steps, config.seed, args.step_size * std, args.bound * std)
        positions = [float(k) for k in range(steps)]  # the step number
    else:
        positions = path_positions(steps, args.path)
    args.output.mkdir(parents=True, exist_ok=True)
    config.save(args.output)
    sculpt = _walk_sculptor(args, decoder, tuple(stack.shape[1:]), [a.name for a in anchors])
    frames = []
    with torch.inference_mode(), tqdm(total=steps, unit="frame", desc="walk") as bar:
        for start in range(0, steps, args.batch):
            chunk = positions[start : start + args.batch]
            if args.path == "walk":
                batch = latents[start : start + len(chunk)]
            else:
                batch = path_point(stack, torch.tensor(chunk), args.path)
            steps_out = []
            if sculpt is not None:
                batch, steps_out = sculpt(batch, chunk)
            pixels = decoder.decode(batch.float())
            images = pixels_to_uint8(pixels).cpu()
            for folder, latents_k in steps_out:
                (args.output / folder).mkdir(exist_ok=True)
                for offset, image in enumerate(pixels_to_uint8(decoder.decode(latents_k)).cpu().numpy()):
                    Image.fromarray(image).save(args.output / folder / f"frame_{start + offset:05d}.png")
            for offset, image in enumerate(images.numpy()):
                index = start + offset
                name = f"frame_{index:05d}.png"
                Image.fromarray(np.ascontiguousarray(image)).save(args.output / name)
                frames.append({"index": index, "file": name,
                               ("step" if args.path == "walk" else "position"): positions[index]})
            bar.update(len(chunk))
    knots = [None if args.path == "walk" else k / (n if args.path == "loop" else n - 1) for k in range(n)]
    sidecar = {
        "path": args.path,
        "steps": steps,
        "sculpt": {"strength": args.sculpt, "steps": args.sculpt_steps, "noise_seed": args.noise_seed,
                   "model": args.sculpt_model} if sculpt is not None else None,
        "size": list(config.size),
        "model": decoder.label,
        "anchors": [{"name": a.name, "source": a.source, "position": s}
                    for a, s in zip(anchors, knots, strict=True)],
        "frames": frames,
    }
    (args.output / "frames.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"{steps} frames in {args.output}")
    return 0


def _walk_sculptor(args: argparse.Namespace, decoder, shape: tuple[int, ...], names: list[str]):
    """With ``--sculpt``: ``sculpt(latents [B, C, h, w], positions) -> (sculpted latents, [(folder, latents
    of every frame at that step)])`` (the folders with ``--step-frames``: step_K, noisy_K); else None. The
    prompt anchors' prompts run along the path as live (``loop.sculpting.Prompts``)."""
    if args.sculpt <= 0:
        return None
    from instrument.loop.sculpting import Prompts
    from instrument.sculpt import SculptOptions, Sculptor, SculptSettings, load_sculpt_model

    settings = SculptingSettings.from_args(args)
    if not settings.sculpting:
        raise UserError("--sculpt needs a sculpt model; --sculpt-model is none")
    model = load_sculpt_model(settings.sculpt_model, lora=settings.sculpt_lora or None,
                              family=decoder.family.name, device=decoder.device, dtype=args.dtype,
                              offline=args.offline)
    sculptor = Sculptor(model, shape, options=SculptOptions(background=False))
    prompts = Prompts.from_anchors(names, settings.prompt)
    texts = (*prompts.texts, prompts.texts[0]) if args.path == "loop" else prompts.texts

    def sculpt(latents: torch.Tensor, positions: list[float]):
        results = []
        for latent, position in zip(latents, positions, strict=True):
            mix = min(max(position, 0.0), 1.0) if prompts.along_path and args.path != "walk" else 0.0
            results.append(sculptor(latent, SculptSettings(
                strength=args.sculpt, steps=args.sculpt_steps, noise_seed=args.noise_seed,
                prompts=texts if prompts.along_path else prompts.texts, prompt_mix=mix)))
        out = torch.stack([r.latent for r in results])
        if not args.step_frames:
            return out, []
        folders = []
        for k in range(args.sculpt_steps):
            folders.append((f"step_{k + 1}", torch.stack([r.x0s[k] for r in results])))
            folders.append((f"noisy_{k + 1}", torch.stack([r.xts[k] for r in results])))
        return out, folders

    return sculpt
