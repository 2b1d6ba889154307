"""The sculpt rows: the live loop (``render.Renderer``, as ``play`` runs it) with the sculpt stage on.

- ``sculpt_sweep`` (a GPU, where every frame is sculpted inline): the live rows' knob sweep with sculpting at
  strength 1 in k steps. Frames per second, and the loop's time per frame beyond the UNet steps and the
  decode, each timed on the device by its own CUDA events. At k >= 2 steps twice: each frame's k steps one
  UNet call each (the baseline), and as a stream batch (``sculpt.stream``: one call of k frames' steps a
  frame, the picture k - 1 frames behind).
- ``sculpt_rests`` (a CPU, where frames show unsculpted and the sculpt is made in the background at rest):
  the knob moves and rests in turns. The display's frames per second while it moves (sculpting on), and
  after each rest the time until the sculpted frame is on screen against that frame's own work: its UNet
  steps (the sculptor thread's time) plus its decode (the sculpt pipeline's).
- ``diffusers_frame``: the plain diffusers img2img loop (the UNet called eagerly with diffusers' Euler
  scheduler, SD-Turbo's spacing), the baseline a row is compared with.

The UNet is the real architecture with random weights (``sculpt.models.random_sculpt_model``): speed does not
depend on the weights' values, and nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from instrument.bench.machine import synchronize
from instrument.bench.sweep import (
    CountingMailbox,
    _sweep_anchors,
    _wait_until_playing,
    live_sweep,
    running_renderer,
)
from instrument.bench.timing import fresh_compiler, summary
from instrument.config import Config
from instrument.events import EventQueue

STRENGTH = 1.0  # every step runs, from the model's top noise level
MOVE_RATE = 200.0  # CC messages a second while the knob moves
TARGET_RATIO = 1.3  # sculpted frame on screen within this times its own UNet steps + decode
REST_MAPPING = """\
version: 1
name: bench rests
ports: any
initial: {{sculpt: {strength}, steps: {steps}}}
controls:
  - {{cc: 1, param: position, smoothing: 0}}
"""


def diffusers_frame(model: Any, latent: torch.Tensor, steps: int) -> Callable[[], torch.Tensor]:
    """One frame of the plain diffusers img2img loop at strength 1 on ``latent`` [1, 4, h, w]: what the
    Sculptor replaces."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing")
    emb = torch.zeros(1, model.text.length, model.text.hidden_size, device=latent.device, dtype=model.dtype)
    noise = torch.randn_like(latent)

    def frame() -> torch.Tensor:
        with torch.no_grad():
            scheduler.set_timesteps(steps, device=latent.device)
            x = scheduler.add_noise(latent, noise, scheduler.timesteps[:1])
            for t in scheduler.timesteps:
                sample = scheduler.scale_model_input(x, t).to(model.dtype)
                out = model.unet(sample, t, encoder_hidden_states=emb, return_dict=False)[0]
                x = scheduler.step(out.float(), t, x).prev_sample
            return x

    return frame


def diffusers_ms(model: Any, size: int, steps: int, repeats: int) -> float:
    """Median ms of ``diffusers_frame`` (after a warm-up frame)."""
    latent = torch.randn(1, 4, size // 8, size // 8, device=model.device)
    frame = diffusers_frame(model, latent, steps)
    frame()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        frame()
        synchronize(model.device)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def sculpt_sweep(ae: Any, model: Any, size: int, config: Config, *, steps: int, seconds: float,
                 stream: bool = False, progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The live knob sweep (``sweep.live_sweep``) with every frame sculpted at strength 1 in ``steps``
    steps, as a stream batch or not: the row, plus ``sculpt``: the UNet's and the decode's own ms a frame
    and the rest of the loop, and whether the stream batch ran (``stream``)."""
    row = live_sweep(ae, size, config, seconds=seconds, sculpt=(model, steps, stream), progress=progress)
    row["steps"] = steps
    row["stream"] = row["sculpt"]["stream"]
    return row


def sculpt_kinds(steps: int, gpu: bool) -> list[bool]:
    """The sculpt rows of a step count, by ``stream``: on a GPU at k >= 2 the baseline and the stream batch;
    else the one path there is (a step runs alone; a CPU sculpts in the background)."""
    return [False, True] if gpu and steps >= 2 else [False]


def _move(queue: EventQueue, seconds: float, phase: float) -> float:
    """The knob (CC 1) sweeps for ``seconds`` from ``phase`` (0..1 of a 2 s up-and-down); returns the phase
    where it stopped. Events at MOVE_RATE, scheduled by start + n * interval."""
    import mido

    from instrument.events import ControlEvent

    start, interval, n = time.monotonic(), 1 / MOVE_RATE, 0
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        p = (phase + (now - start) / 2.0) % 1.0
        value = int(round(127 * (1 - abs(2 * p - 1))))
        queue.put(ControlEvent(now, "bench", mido.Message("control_change", control=1, value=value)))
        n += 1
        time.sleep(max(0.0, start + n * interval - time.monotonic()))
    return (phase + seconds / 2.0 + 0.137) % 1.0  # (the next move starts elsewhere: no cached sculpt)


def sculpt_rests(ae: Any, model: Any, size: int, config: Config, *, steps: int, rests: int = 3,
                 move_s: float = 2.0, fps: float = 60.0, timeout: float = 300.0,
                 progress: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """The CPU's sculpting, live: ``rests`` times, the knob moves for ``move_s`` seconds and stops (after a
    move that is not measured: the first frames wait for their decode, and the start's own rest began a
    sculpt). While it moves: frames per second on the display (sculpting on: unsculpted frames). After it
    stops: seconds until the sculpted frame is on screen, against that frame's own work (its UNet steps in
    the sculptor's thread, its decode from launch to landing), and their ratio."""
    from instrument.mapping import parse_mapping

    fresh_compiler()
    cfg = dataclasses.replace(config, size=(size, size), fps=fps, out_size=None, frames=0, duration=0.0)
    mapping, errors = parse_mapping(REST_MAPPING.format(strength=STRENGTH, steps=steps), "<bench rests>")
    if errors:
        raise errors[0]
    queue, mailbox = EventQueue(), CountingMailbox()
    row: dict[str, Any] = {"size": size, "steps": steps, "strength": STRENGTH, "render_fps_setting": fps,
                           "rests": []}
    with running_renderer(cfg, (ae, None), _sweep_anchors(ae, size, "device"), mapping, queue, mailbox,
                          sculpt_model=model) as renderer:
        _wait_until_playing(renderer)
        stage = renderer.decoding.sculpting
        if stage is None or stage.backdrop is None:
            raise RuntimeError(f"no background sculpting here: {list(renderer.board.errors)}")
        backdrop = stage.backdrop
        row["sculptor"] = stage.sculptor.describe()
        phase = _move(queue, move_s, 0.0)
        for k in range(rests):
            before = sum(mailbox.shown.values())
            t0 = time.monotonic()
            phase = _move(queue, move_s, phase)
            rested, rested_perf = time.monotonic(), time.perf_counter()
            moving_fps = (sum(mailbox.shown.values()) - before) / (rested - t0)
            times = [p[0] for p in mailbox.published if t0 <= p[0] <= rested]
            longest = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
            landed = backdrop.landed
            while backdrop.landed == landed and time.monotonic() - rested < timeout and not renderer.finished:
                time.sleep(0.002)
            if backdrop.landed == landed:
                raise RuntimeError(f"no sculpted frame within {timeout:.0f} s of a rest")
            on_screen = backdrop.landed_at - rested_perf
            unet, decode = backdrop.sculpt_seconds, backdrop.decode_seconds
            rest = {"moving_fps": round(moving_fps, 2), "longest_gap_ms": round(1000 * longest, 1),
                    "on_screen_s": round(on_screen, 3),
                    "unet_s": round(unet, 3), "decode_s": round(decode, 3),
                    "ratio": round(on_screen / (unet + decode), 3)}
            row["rests"].append(rest)
            progress(f"rest {k + 1}: {rest}")
            time.sleep(0.5)  # (the strip's decodes finish before the next move)
    if renderer.failure is not None:
        raise RuntimeError(f"render thread failed: {renderer.failure}")
    rests_ = row["rests"]
    row.update(moving_fps=round(min(r["moving_fps"] for r in rests_), 2),
               ratio=round(max(r["ratio"] for r in rests_), 3),
               on_screen=summary([1000 * r["on_screen_s"] for r in rests_]))
    return row


def sculpt_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"sculpt FAILED: {row['error']}"
    if "rests" in row:
        return (f"sculpt {row['steps']} step(s): moving {row['moving_fps']} fps, sculpted frame on screen "
                f"within {row['ratio']}x its own UNet + decode (worst of {len(row['rests'])} rests)")
    s = row["sculpt"]
    how = f", stream batch ({s['steps'] - 1} frames behind)" if row.get("stream") else ""
    return (f"sculpt {s['steps']} step(s){how}: {row['fps']} fps; UNet {s['unet_ms']} ms + decode "
            f"{s['decode_ms']} ms, loop overhead {s['overhead_ms']} ms a frame")


def sculpt_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sculpt stage's speed targets, where this run measured them."""
    def check(name: str, value: float, target: str, met: bool) -> dict[str, Any]:
        return {"check": name, "value": value, "target": target, "met": met}

    out = []
    for r in rows:
        if "error" in r:
            continue
        how = " stream batch" if r.get("stream") else ""
        where = f"{r['device']} {r['size']}px sculpt {r['steps']} step(s){how}"
        if "rests" in r:
            out.append(check(f"{where}: display frames/s while moving", r["moving_fps"], ">= 30",
                             r["moving_fps"] >= 30))
            out.append(check(f"{where}: sculpted frame on screen after a rest, x its UNet + decode",
                             r["ratio"], f"<= {TARGET_RATIO}", r["ratio"] <= TARGET_RATIO))
            continue
        need = {1: 150, 4: 60}.get(r["steps"])
        if need is not None and r["size"] == 512:
            out.append(check(f"{where}: live frames/s", r["fps"], f">= {need}", r["fps"] >= need))
        overhead = r["sculpt"]["overhead_ms"]
        out.append(check(f"{where}: loop overhead beyond UNet + decode", overhead, "<= 0.5 ms",
                         overhead <= 0.5))
    return out


def sculpt_table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown section of the sculpt rows."""
    lines = ["## Sculpting: the live loop with the sculpt stage on (random weights of the real UNet)", "",
             "GPU rows: every frame sculpted (strength 1) under the knob sweep; UNet and decode are each "
             "timed on the device. CPU rows: the knob moves and rests in turns; frames show unsculpted while "
             "it moves, and the sculpted frame lands after a rest (its own work: the UNet steps in the "
             "sculptor's thread plus its decode). Steps \"k stream batch\": one UNet call of k frames' "
             "steps a frame, the picture k - 1 frames behind; the row before it: one call a step.", "",
             "| device | model | dtype | size | steps | frames/s | UNet ms | decode ms | loop overhead ms "
             "| diffusers eager ms | on screen after rest ms (p50) | x own work (worst) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['device']} | {r.get('model', '')} | {r.get('dtype', '')} | {r['size']} | "
        if "error" in r:
            lines.append(f"{head}{r.get('steps', '')} | failed: {r['error'][:80]} ||||||| |")
            continue
        base = r.get("diffusers_ms")
        base_text = f"{base:.1f}" if base is not None else "—"
        if "rests" in r:
            unet = statistics.median(x["unet_s"] for x in r["rests"]) * 1000
            decode = statistics.median(x["decode_s"] for x in r["rests"]) * 1000
            lines.append(f"{head}{r['steps']} | {r['moving_fps']} (moving) | {unet:.1f} | {decode:.1f} | — | "
                         f"{base_text} | {r['on_screen'].get('median_ms', 0):.1f} | {r['ratio']} |")
            continue
        s = r["sculpt"]
        steps = f"{s['steps']} stream batch" if r.get("stream") else s["steps"]
        lines.append(f"{head}{steps} | {r['fps']} | {s['unet_ms']} | {s['decode_ms']} | "
                     f"{s['overhead_ms']} | {base_text} | — | — |")
    return lines + [""]
