"""The results of a bench run as text: a line per row while it runs, the targets, and the Markdown file."""

from __future__ import annotations

from typing import Any

WEIGHTS_NOTE = "speed does not depend on weight values"


def decode_line(row: dict[str, Any]) -> str:
    head = f"{row.get('device')} {row.get('decoder')} {row.get('dtype')} {row['size']}px {row['variant']:8s}"
    if "error" in row:
        return f"{head} FAILED: {row['error']}"
    return (f"{head} median {row['median_ms']:9.3f} ms  p99 {row['p99_ms']:9.3f} ms  ({row['fps']} fps)  "
            f"{row.get('path', '')}")


def live_line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"live FAILED: {row['error']}"
    lat = row["latency"]
    return (f"live {row['fps']} fps (exact {row['exact_fps']}), latency p50 {lat.get('median_ms', 0):.2f} ms "
            f"p99 {lat.get('p99_ms', 0):.2f} ms, memory {row['memory_start']} -> {row['memory_end']}")


# -- targets -----------------------------------------------------------------------------------------------


def _check(name: str, value: Any, target: str, met: bool) -> dict[str, Any]:
    return {"check": name, "value": value, "target": target, "met": met}


def _best_decode(result: dict[str, Any], device: str, decoder: str, size: int) -> dict[str, Any] | None:
    rows = [r for r in result["decode"] if r.get("device") == device and r.get("decoder") == decoder
            and r["size"] == size and r["variant"] == "accel" and "median_ms" in r]
    return rows[0] if rows else None


def _against_app(live: dict[str, Any], base: dict[str, Any], decoder: str, key: str) -> list[dict[str, Any]]:
    """Live frames per second against the app's slider moves per second (512 px)."""
    device = live["device"]
    if device != "cpu":
        ratio = live["fps"] / base["moves_per_s"]
        need = {"fast": 30, "full": 6}[key]
        return [_check(f"{device} {decoder} 512px live fps vs app slider moves/s", round(ratio, 1),
                       f">= {need}x", ratio >= need)]
    if key != "fast":
        return []
    ratio = live["exact_fps"] / base["moves_per_s"]
    return [_check("cpu fast 512px exact frames/s vs app slider moves/s", round(ratio, 1), ">= 20x",
                   ratio >= 20)]


def _gpu_loop(live: dict[str, Any], decode: dict[str, Any], decoder: str, key: str) -> list[dict[str, Any]]:
    """A CUDA live frame: its time beyond the decode alone, and (512 px) its whole time."""
    size = live["size"]
    period = 1000 / live["fps"] if live["fps"] else float("inf")
    overhead = period - decode["median_ms"]
    out = [_check(f"cuda {decoder} {size}px loop overhead beyond the decode (p50)", round(overhead, 3),
                  "<= 0.5 ms", overhead <= 0.5)]
    if size == 512:
        need = {"fast": 1.2, "full": 8.0}[key]
        out.append(_check(f"cuda {decoder} 512px live frame time", round(period, 3), f"<= {need} ms",
                          period <= need))
    return out


def _cpu_rates(live: dict[str, Any]) -> list[dict[str, Any]]:
    """A CPU fast live row: exact frames (256 px) and display frames per second."""
    size = live["size"]
    out = []
    if size == 256:
        out.append(_check("cpu fast 256px exact frames per second", live["exact_fps"], ">= 3",
                          live["exact_fps"] >= 3))
    out.append(_check(f"cpu fast {size}px display frames per second", live["fps"], ">= 30",
                      live["fps"] >= 30))
    return out


def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The instrument's speed targets (benchmarks/README.md), evaluated where this run measured them."""
    out: list[dict[str, Any]] = []
    for live in result["live"]:
        if "error" in live or not live.get("accelerated", True):
            continue
        device, decoder, size = live["device"], live["decoder"], live["size"]
        if live.get("latents", "latent_at") != "latent_at":
            decoder = f"{decoder} [{live['latents']} latents]"
        key = decoder.split()[0]
        base = next((b for b in result["baseline"] if b["device"] == device), None)
        if base is not None and size == 512:
            out += _against_app(live, base, decoder, key)
        decode = _best_decode(result, device, key, size)
        if device == "cuda" and decode is not None:
            out += _gpu_loop(live, decode, decoder, key)
        if device == "cpu" and key == "fast":
            out += _cpu_rates(live)
    if result.get("sculpt"):
        from instrument.bench.sculpt import sculpt_checks

        out += sculpt_checks(result["sculpt"])
    for soak in result["soak"]:
        for key, value in soak.items():
            if key.startswith("drift_"):
                out.append(_check(f"{soak['device']} soak {soak['seconds']:.0f} s {key}", value, "within ±5%",
                                  abs(value) <= 5))
    return out


# -- the Markdown file -------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def settings_text(settings: dict[str, Any]) -> str:
    keys = ("devices", "decoders", "dtypes", "sizes", "variants", "seconds", "live_sizes", "soak",
            "sculpt_steps")
    shown = [k for k in keys if settings.get(k) not in ("", None)]
    return " ".join(f"--{k.replace('_', '-')} {settings[k]}" for k in shown)


def _weights_line(decoders: dict[str, str]) -> str:
    """What the rows timed: each decoder slot's model, named as its label names it."""
    if not decoders:
        return f"- decoders: none timed — {WEIGHTS_NOTE}"
    text = "; ".join(f"{which} = {label}" for which, label in decoders.items())
    random = any("random weights" in label for label in decoders.values())
    return f"- decoders: {text}" + (f" — {WEIGHTS_NOTE}" if random else "")


def _header(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    return [
        "# latent-instrument bench",
        "",
        f"- machine: {m['platform']}; CPU: {m['cpu']} ({m['cpu_count']} cores, torch uses "
        f"{m['torch_threads']} threads); GPU: {m['gpu'] or 'none'}",
        f"- torch {m['torch']}" + (f", CUDA {m['cuda']}" if m.get("cuda") else "") + f", Python "
        f"{m['python']}",
        f"- load average at the start: {m.get('load_average', '—')} (other work here skews CPU times)",
        _weights_line(result.get("decoders", {})),
        "- command: `latent-instrument bench " + settings_text(result["settings"]) + "`",
        "",
    ]


def _baseline_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Baseline: the interpolation app's slider move", "",
             "| device | median ms | p99 ms | moves/s | n |", "|---|---|---|---|---|"]
    for b in rows:
        lines.append(f"| {b['device']} | {_fmt(b['median_ms'], 1)} | {_fmt(b['p99_ms'], 1)} | "
                     f"{_fmt(b['moves_per_s'], 3)} | {b['n']} |")
    return lines + [""]


def _decode_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Decode: one frame, latent -> uint8 picture on the host", "",
             "| device | decoder | dtype | size | variant | median ms | p99 ms | frames/s | build s | path |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['device']} | {r['decoder']} | {r['dtype']} | {r['size']} | {r['variant']} | "
        if "error" in r:
            lines.append(f"{head}failed: {r['error'][:80]} | | | | |")
            continue
        lines.append(f"{head}{_fmt(r['median_ms'], 3)} | {_fmt(r['p99_ms'], 3)} | {_fmt(r['fps'], 1)} | "
                     f"{_fmt(r.get('build_s'), 1)} | {r.get('path', '')} |")
    return lines + [""]


def _live_row(r: dict[str, Any]) -> str:
    head = f"| {r['device']} | {r['decoder']} | {r['dtype']} | {r['size']} | "
    if "error" in r:
        return f"{head}failed: {r['error'][:80]} |||||||||| |"
    ms, me = r["memory_start"], r["memory_end"]
    dev_key = next((k for k in ("cuda_allocated_mb", "mps_allocated_mb") if k in ms), None)
    dev = f"{ms[dev_key]} → {me[dev_key]}" if dev_key else "—"
    lat = r["latency"]
    return (f"{head}{r['path']} | {r.get('anchors_on', 'device')} | {r.get('latents', 'latent_at')} | "
            f"{r['seconds']:.0f} | {_fmt(r['fps'], 1)} | {_fmt(r['exact_fps'], 1)} | "
            f"{_fmt(lat.get('median_ms'))} | {_fmt(lat.get('p99_ms'))} | "
            f"{ms['rss_mb']} → {me['rss_mb']} | {dev} |")


def _live_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Live loop: the real render thread under a knob sweep (200 CC/s into the EventQueue)", "",
             "| device | decoder | dtype | size | path | anchors on | latents | seconds | frames/s | "
             "exact frames/s | latency p50 ms | latency p99 ms | RSS MiB start→end | device MiB start→end |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    return lines + [_live_row(r) for r in rows] + [""]


def _overlap_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Latent + decode, in turn vs overlapped (two-phase launch/collect)", "",
             "| device | decoder | size | latent ms | latent then frame ms | overlapped ms |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        o = r["with_latent"]
        lines.append(f"| {r['device']} | {r['decoder']} | {r['size']} | {_fmt(o['latent_ms'], 3)} | "
                     f"{_fmt(o['in_turn_ms'], 3)} | {_fmt(o['overlapped_ms'], 3)} |")
    return lines + [""]


def _in_loop_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Where a live frame's time goes (medians, ms)", "",
             "decode: from its launch (or the end of the frame queued before it) to its picture on the "
             "host; read ahead: the share of frames whose controls the loop read, and whose decode it "
             "queued, while the frame before decoded (that work then sits inside the decode); rest of "
             "loop: the frame period less the latent and the decode.", "",
             "| device | decoder | size | path | anchors on | latents | frame period | latent | decode "
             "| rest of loop | read ahead |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["in_loop"]
        lines.append(f"| {r['device']} | {r['decoder']} | {r['size']} | {r['path']} | "
                     f"{r['anchors_on']} | {r.get('latents', 'latent_at')} | "
                     f"{_fmt(t['frame_period_ms'], 3)} | {_fmt(t['latent_ms'], 3)} | "
                     f"{_fmt(t['decode_ms'], 3)} | {_fmt(t['rest_ms'], 3)} | "
                     f"{_fmt(100 * r.get('read_ahead', 0.0), 0)}% |")
    return lines + [""]


def _soak_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for s in rows:
        drifts = ", ".join(f"{k[6:-4]} {v:+.2f}%" for k, v in s.items() if k.startswith("drift_"))
        whole = ", ".join(f"{k} {v['rss_mb']} MiB" for k, v in (("start", s["memory_start"]),
                                                                 ("end", s["memory_end"])))
        lines += [f"Soak ({s['seconds']:.0f} s): memory change from {s.get('steady_from_s')} s (steady "
                  f"state: 10% into the run and any frame cache full) to the end: {drifts}; RSS over the "
                  f"whole run: {whole}", ""]
    return lines


def _checks_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Targets", "", "| check | value | target | met |", "|---|---|---|---|"]
    for c in rows:
        lines.append(f"| {c['check']} | {c['value']} | {c['target']} | {'yes' if c['met'] else 'NO'} |")
    return lines + [""]


def to_markdown(result: dict[str, Any]) -> str:
    lines = _header(result)
    if result["baseline"]:
        lines += _baseline_table(result["baseline"])
    if result["decode"]:
        lines += _decode_table(result["decode"])
    if result["live"] + result["soak"]:
        lines += _live_table(result["live"] + result["soak"])
    overlap = [r for r in result["decode"] if "with_latent" in r]
    if overlap:
        lines += _overlap_table(overlap)
    timed = [r for r in result["live"] if "in_loop" in r]
    if timed:
        lines += _in_loop_table(timed)
    lines += _soak_lines(result["soak"])
    if result.get("sculpt"):
        from instrument.bench.sculpt import sculpt_table

        lines += sculpt_table(result["sculpt"])
    if result.get("checks"):
        lines += _checks_table(result["checks"])
    return "\n".join(lines)
