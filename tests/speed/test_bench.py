"""The bench command end to end on a tiny configuration: it runs and writes valid JSON and Markdown."""

from __future__ import annotations

import json

import pytest
import torch

from instrument.bench import live_sweep, slider_move_times, summary
from instrument.cli import main
from instrument.config import Config
from instrument.decoders import random_autoencoder


def test_bench_writes_results(tmp_path):
    status = main(["bench", "--devices", "cpu", "--decoders", "fast", "--sizes", "64", "--live-sizes", "64",
                   "--seconds", "1", "--decode-seconds", "0.2", "--no-baseline", "--soak", "2",
                   "--out", str(tmp_path), "--name", "tiny"])
    assert status == 0
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert result["machine"]["torch"] == torch.__version__ and result["machine"]["cpu"]
    assert result["decoders"] == {"fast": "TAESD (sd15, random weights)"}
    variants = {(r["variant"], r["size"]) for r in result["decode"]}
    assert variants == {("plain", 64), ("accel", 64)}
    for row in result["decode"]:
        assert row["median_ms"] > 0 and row["p99_ms"] >= row["median_ms"] and row["dtype"] == "fp32"
    (live,) = result["live"]
    assert "error" not in live, live
    assert live["frames"] > 0 and live["fps"] > 0 and 0 < live["exact_fps"] <= live["fps"] + 1e-9
    assert live["latency"]["n"] > 0 and live["events_sent"] > 0
    assert live["memory_start"]["rss_mb"] > 0 and live["memory_end"]["rss_mb"] > 0
    (soak,) = result["soak"]
    assert "drift_rss_mb_pct" in soak and len(soak["memory_samples"]) >= 2
    text = (tmp_path / "tiny.md").read_text()
    assert "| cpu | fast | fp32 | 64 | accel |" in text and "## Live loop" in text and "## Targets" in text


def decoders_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("- decoders:"))


def test_bench_times_and_names_the_model_given(tmp_path, shared):
    """--model: the rows time that model (in its own latent space), and the results say so."""
    model = shared / "models" / "taef2_decoder.pth"
    status = main(["bench", "--devices", "cpu", "--decoders", "fast", "--sizes", "64", "--live-sizes", "",
                   "--variants", "accel", "--decode-seconds", "0.1", "--no-baseline", "--model", str(model),
                   "--out", str(tmp_path), "--name", "model"])
    assert status == 0
    result = json.loads((tmp_path / "model.json").read_text())
    assert result["decoders"] == {"fast": f"TAESD (taef2, local file) from {model}"}, result["decoders"]
    (row,) = result["decode"]
    assert row["median_ms"] > 0
    line = decoders_line((tmp_path / "model.md").read_text())
    assert "random" not in line and str(model) in line


def test_bench_with_a_model_that_does_not_load(tmp_path, capsys):
    status = main(["bench", "--devices", "cpu", "--decoders", "fast", "--sizes", "64", "--live-sizes", "",
                   "--no-baseline", "--model", str(tmp_path / "missing_decoder.pth"), "--out", str(tmp_path)])
    err = capsys.readouterr().err  # one line, before any row runs
    assert status == 2 and "missing_decoder.pth: no such file" in err.strip().splitlines()[-1]


def test_plain_live_path_and_baseline_row():
    ae = random_autoencoder("taesd", device="cpu", dtype="fp32")
    row = live_sweep(ae, 64, Config(), seconds=0.5, warmup_s=0.2, fps=60, accelerated=False)
    assert row["path"].startswith("plain") and row["frames"] > 0 and row["exact_fps"] == row["fps"]
    assert row["shown"] == {"fast": row["frames"]}
    base = slider_move_times(torch.device("cpu"), seconds=0.0, size=64, warmup=0, min_n=1)
    assert base["n"] == 1 and base["moves_per_s"] > 0 and "fp32" in base["what"]


def test_summary_percentiles():
    s = summary([float(i) for i in range(1, 101)])
    assert s["median_ms"] == 50.5 and s["p99_ms"] == 99.0 and s["n"] == 100
    assert summary([]) == {"n": 0}


def test_the_full_decoder_sweeps_as_play_plays_it():
    """A full row: the KL decoder chosen beside a fast one (``decoder: full``), every frame the full one's."""
    fast = random_autoencoder("taesd", device="cpu", dtype="fp32")
    full = random_autoencoder("kl", device="cpu", dtype="fp32")
    row = live_sweep(full, 32, Config(), seconds=1.0, warmup_s=0.3, fps=30, fast=fast)
    assert row["frames"] > 0 and row["shown"] == {"full": row["frames"]}
    assert row["exact_fps"] == row["fps"]  # every full frame is a decode, whatever blends the fast slot makes
    # A CPU's full decoder has its own pipeline too, with a decode thread: a redraw never holds the loop.
    assert row["path"] == "cpu fp32 subpixel"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_flat_out_loop_reads_ahead():
    """On a GPU flat out, the loop reads the next frame's controls (and queues its decode) while a frame
    decodes: nearly every frame, with ``read_ahead_ms`` at its default; none with it at 0."""
    ae = random_autoencoder("taesd", device="cuda", dtype="fp16")
    on = live_sweep(ae, 64, Config(), seconds=1.0, warmup_s=0.5, fps=5000)
    off = live_sweep(ae, 64, Config(read_ahead_ms=0.0), seconds=1.0, warmup_s=0.5, fps=5000)
    assert on["read_ahead"] > 0.5 and off["read_ahead"] == 0.0
    assert on["frames"] > 100 and off["frames"] > 100 and on["shown"] == {"fast": on["frames"]}
