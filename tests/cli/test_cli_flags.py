"""Absurd flag values across every command: each is refused when the command line is read, in one line that
names the flag and the accepted range or words, with exit status 2, no traceback, and nothing run."""

from __future__ import annotations

import pytest
import torch

from instrument.cli import command_parser, main

# (command line, words the error must hold): the flag, and what would be accepted
BAD: list[tuple[str, tuple[str, ...]]] = [
    # play: rates, counts and sizes
    ("play --fps 0", ("--fps", "above 0")),
    ("play --fps -1", ("--fps", "above 0")),
    ("play --fps inf", ("--fps", "finite")),
    ("play --fps nan", ("--fps", "finite")),
    ("play --fps fast", ("--fps", "not a number")),
    ("play --fps 1e9", ("--fps", "at most 1000")),
    ("play --frames -5", ("--frames", "from 0")),
    ("play --frames 1.5", ("--frames", "whole number")),
    ("play --frames 99999999999", ("--frames", "out of range")),
    ("play --duration -1", ("--duration", "from 0")),
    ("play --duration nan", ("--duration", "finite")),
    ("play --size 0", ("--size", "from 8 to 8192")),
    ("play --size 5", ("--size", "from 8")),
    ("play --size 100000", ("--size", "8192")),
    ("play --size 10x", ("--size", "N or WxH")),
    ("play --size 64x64x64", ("--size", "N or WxH")),
    ("play --size=-64", ("--size", "from 8")),
    ("play --window 0", ("--window", "from 8")),
    ("play --window 99999x10", ("--window", "8192")),
    ("play --out-size 7", ("--out-size", "from 8")),
    ("play --out-size wide", ("--out-size", "N or WxH")),
    ("play --frame-cache-mb 0", ("--frame-cache-mb", "from 32")),
    ("play --frame-cache-mb -1", ("--frame-cache-mb", "from 32")),
    ("play --prefetch 0", ("--prefetch", "from 1 to 64")),
    ("play --prefetch -2", ("--prefetch", "from 1")),
    ("play --prefetch 1000", ("--prefetch", "to 64")),
    ("play --read-ahead-ms -1", ("--read-ahead-ms", "from 0")),
    ("play --read-ahead-ms inf", ("--read-ahead-ms", "finite")),
    ("play --bank-size -1", ("--bank-size", "from 0 to 128")),
    ("play --bank-size 100000", ("--bank-size", "to 128")),
    ("play --seed -1", ("--seed", "from 0 to 4294967295")),
    ("play --seed 99999999999999999999", ("--seed", "4294967295")),
    ("play --seed 1.5", ("--seed", "whole number")),
    # play: words from a fixed vocabulary
    ("play --midi-api alssa", ("--midi-api", "invalid choice", "alsa")),
    ("play --midi-api=", ("--midi-api", "invalid choice")),
    ("play --compile fastest", ("--compile", "max-autotune")),
    ("play --fit stretch", ("--fit", "crop")),
    ("play --family sd21", ("--family", "sdxl")),
    ("play --dtype fp8", ("--dtype", "bf16")),
    ("play --dtype float64", ("--dtype", "fp32")),
    ("play --channels-last maybe", ("--channels-last", "auto", "on", "off")),
    ("play --subpixel 2", ("--subpixel", "off")),
    ("play --cuda-graphs yes", ("--cuda-graphs", "on")),
    ("play --device gpu", ("--device", "unknown device", "cuda:N")),
    ("play --device cuda:x", ("--device", "unknown device")),
    ("play --device meta", ("--device", "cpu, cuda or mps")),
    ("play --model /no/such/taesd_decoder.pth", ("/no/such/taesd_decoder.pth", "no such file", "--model")),
    ("play --full-model ./missing.safetensors", ("missing.safetensors", "no such file", "--full-model")),
    # the other commands
    ("encode x.png -o out --size 0", ("--size", "from 8")),
    ("encode x.png -o out --seed -3", ("--seed", "from 0")),
    ("encode x.png -o out --encoder best", ("--encoder", "invalid choice")),
    ("encode x.png", ("--output", "required")),
    ("encode x.png -o out --fps 30", ("unrecognized arguments", "--fps")),
    ("walk a b -o out --steps 0", ("--steps", "from 1")),
    ("walk a b -o out --steps -5", ("--steps", "from 1")),
    ("walk a b -o out --batch 0", ("--batch", "from 1 to 256")),
    ("walk a b -o out --step-size 0", ("--step-size", "above 0")),
    ("walk a b -o out --bound nan", ("--bound", "finite")),
    ("walk a b -o out --path zigzag", ("--path", "slerp")),
    ("walk a b -o out --midi-ports x", ("unrecognized arguments", "--midi-ports")),
    ("render take --fps -1", ("--fps", "from 0")),
    ("render take --decoder best", ("--decoder", "fast")),
    ("render take --size 0", ("--size", "from 8")),
    ("render take --dtype fp64", ("--dtype", "fp32")),
    ("render take --device gpu", ("--device", "unknown device")),
    ("learn --api alssa", ("--api", "invalid choice")),
    ("learn --timeout 0", ("--timeout", "above 0")),
    ("learn --timeout nan", ("--timeout", "finite")),
    ("ports --api alssa", ("--api", "invalid choice")),
    ("atlas pics -o out --clusters -1", ("--clusters", "from 0 to 64")),
    ("atlas pics -o out --picture-size 0", ("--picture-size", "from 64")),
    ("atlas pics -o out --method tsne", ("--method", "pca")),
    ("curvature a b -o m.png --grid 0", ("--grid", "from 3")),
    ("curvature a b -o m.png --grid 10000", ("--grid", "to 512")),
    ("curvature a b -o m.png --span 0", ("--span", "above 0")),
    ("curvature a b -o m.png -k 0", ("-k", "from 1")),
    ("curvature a b -o m.png --picture-size 10", ("--picture-size", "from 64")),
    ("bench --seconds 0", ("--seconds", "above 0")),
    ("bench --sizes 0", ("--sizes", "from 8")),
    ("bench --sizes 256,abc", ("--sizes", "'abc'")),
    ("bench --devices gpu", ("--devices", "'gpu'", "cuda")),
    ("bench --variants turbo", ("--variants", "'turbo'")),
    ("bench --latents slow", ("--latents", "latent_at")),
    ("bench --soak -1", ("--soak", "from 0")),
    ("bench --dtypes fp8", ("--dtypes", "bf16")),
    ("bench --live-fps -1", ("--live-fps", "from 0")),
    ("bench --model taesd.pth", ("taesd.pth", "no such file", "--model")),
    ("doctor --device gpu", ("--device", "unknown device")),
    ("doctor --family x", ("--family", "invalid choice")),
    ("doctor --fps 30", ("unrecognized arguments", "--fps")),
    ("nonsense", ("'nonsense' is neither a command nor an anchor file", "Commands: play, encode")),
    ("encod x.png -o out", ("did you mean encode?",)),
    ("--fps 0", ("latent-instrument play: error: argument --fps",)),  # no command: play's flags
    ("--debug --frames -1", ("latent-instrument play: error: argument --frames",)),
]


@pytest.mark.parametrize(("line", "words"), BAD, ids=[line for line, _ in BAD])
def test_an_absurd_value_is_one_line_exit_2_and_nothing_runs(line, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a command wrongly ran would write here
    assert main(line.split()) == 2
    captured = capsys.readouterr()
    lines = [text for text in captured.err.splitlines() if text.strip()]
    assert len(lines) == 1 and len(lines[0]) < 400, captured.err
    assert "error:" in lines[0] and "Traceback" not in captured.err + captured.out
    for word in words:
        assert word in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


def test_the_corpus_is_large_and_covers_every_command():
    assert len(BAD) >= 80
    commands = {line.split()[0] for line, _ in BAD}
    assert commands >= {"play", "encode", "walk", "render", "learn", "ports", "atlas", "curvature", "bench",
                        "doctor"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_device_that_is_not_here_is_refused_at_once(capsys):
    assert main(["play", "--device", "cuda"]) == 2
    assert "no CUDA GPU; use auto or cpu" in capsys.readouterr().err


# Values at the edges of each range, and every word of each vocabulary, are accepted.
GOOD = [
    ("play", "--fps 0.5 --fps 1000 --frames 0 --duration 0 --size 8 --size 8192x8 --window 1280x800 "
             "--out-size 640x360 --frame-cache-mb 32 --prefetch 1 --prefetch 64 --read-ahead-ms 0 "
             "--bank-size 0 --seed 0 --seed 4294967295 --device cpu --device auto --dtype bf16"),
    ("play", "--midi-api alsa --midi-api jack --midi-api coremidi --midi-api winmm --midi-api auto "
             "--compile off --compile max-autotune --compile reduce-overhead --fit pad --family flux2 "
             "--channels-last on --subpixel off --cuda-graphs auto --no-midi-virtual"),
    ("walk", "a b -o out --steps 1 --batch 256 --step-size 10 --bound 0.001"),
    ("bench", "--sizes 8,8192 --devices cpu --variants plain --latents fast,eager,latent_at "
              "--anchors-on device,cpu --live-sizes= --soak 0 --family sdxl --fps 60 --compile off"),
    ("curvature", "a b c -o m.png --grid 3 --span 0.1 -k 64"),
    ("render", "take --fps 0 --size 1024x576 --device cpu --dtype fp16"),
]


@pytest.mark.parametrize(("command", "line"), GOOD)
def test_values_inside_the_ranges_are_accepted(command, line):
    parser, _ = command_parser(command)
    args = parser.parse_args(line.split())
    if "--size 8192x8" in line:  # the last value given wins, parsed
        assert (args.size, args.out_size, args.window, args.fps) == ((8192, 8), (640, 360), (1280, 800), 1000)
        assert (args.seed, args.prefetch, args.frame_cache_mb) == (4294967295, 64, 32)


def test_without_a_command_the_line_plays(tmp_path):
    from instrument.cli import split_command

    picture = tmp_path / "dog.png"
    picture.write_bytes(b"")
    assert split_command([]) == ([], "play", [])
    line = [str(picture), "--fps", "24"]
    assert split_command(["-v", *line]) == (["-v"], "play", line)
    assert split_command(["seed:3", "seed:4"]) == ([], "play", ["seed:3", "seed:4"])
    assert split_command(["--debug", "encode", "--help"]) == (["--debug"], "encode", ["--help"])
