"""Every command's --help lists its own options only, each default said once (and shown where it exists)."""

from __future__ import annotations

import re

import pytest

from instrument.cli import COMMANDS, main

MODEL = {"--family", "--model", "--full-model", "--device", "--dtype", "--offline", "--cache-dir"}
PICTURE = {"--size", "--seed", "--fit"}
LIVE = {"--mapping", "--midi-ports", "--midi-api", "--midi-virtual", "--fps", "--window", "--out-size",
        "--fullscreen", "--headless", "--record", "--record-root", "--duration", "--frames", "--atlas",
        "--bank-size"}
SPEED = {"--channels-last", "--subpixel", "--compile", "--cuda-graphs", "--prefetch", "--frame-cache-mb",
         "--read-ahead-ms"}


def help_text(command: str, capsys) -> str:
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def options(text: str) -> dict[str, str]:
    """Each option's first flag -> its help, from argparse's layout (one entry per "  -x, --y" line)."""
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^  (-{1,2}[\w-]+)", line)
        if match:
            current = match.group(1)
            found[current] = line
        elif current is not None and line.startswith("    "):
            found[current] += " " + line.strip()
        else:
            current = None
    return {flag: " ".join(body.split()) for flag, body in found.items()}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_default_is_said_once_and_never_empty(command, capsys):
    text = help_text(command, capsys)
    for body in options(text).values():
        assert body.count("(default:") <= 1, body
        assert "(default: )" not in body and "(default: None)" not in body, body
    assert "usage: latent-instrument " + command in text


def test_play_lists_every_setting(capsys):
    flags = set(options(help_text("play", capsys)))
    assert flags >= MODEL | PICTURE | LIVE | SPEED


def test_doctor_lists_only_the_model_settings(capsys):
    assert set(options(help_text("doctor", capsys))) == {"-h", "--download"} | MODEL


@pytest.mark.parametrize("command", ["encode", "walk", "atlas", "curvature"])
def test_anchor_commands_list_model_and_picture_settings_only(command, capsys):
    text = help_text(command, capsys)
    flags = set(options(text))
    assert flags >= MODEL | PICTURE and not flags & (LIVE | SPEED)
    assert len(text.splitlines()) < 90  # (play lists about 130)


def test_bench_lists_what_it_times(capsys):
    flags = set(options(help_text("bench", capsys)))
    timed = {"--family", "--model", "--full-model", "--offline"}  # (a named model is timed as play loads it)
    assert flags >= SPEED | timed | {"--fps", "--sizes", "--devices"}
    assert not flags & (MODEL - timed | PICTURE | (LIVE - {"--fps"}))


@pytest.mark.parametrize("command", ["render", "ports", "learn", "check-mapping"])
def test_commands_with_their_own_flags_take_no_settings_groups(command, capsys):
    flags = set(options(help_text(command, capsys)))
    own = {"--fps", "--frames"}  # (render's --frames A:B is a range of its output, not play's count)
    assert not flags & (LIVE - own | SPEED | PICTURE - {"--size"})


def test_curvature_shows_its_own_defaults(capsys):
    found = options(help_text("curvature", capsys))
    assert "(default: 128x128)" in found["--size"]  # its own, not play's 512
    assert "(default: 16)" in found["--grid"] and "(default: 1.5)" in found["--span"]
    assert "(default: 4)" in found["-k"] and "(default: 512)" in found["--picture-size"]


def test_sizes_show_as_sizes_and_defaults_show_where_help_is_silent(capsys):
    found = options(help_text("play", capsys))
    assert "(default: 512x512)" in found["--size"] and "(default: as large as fits" in found["--window"]
    assert "(default: the decode size)" in found["--out-size"]
    assert "(default: 30.0)" in found["--fps"] and "(default: auto)" in found["--compile"]
    assert "{auto,coremidi,alsa,jack,winmm}" in found["--midi-api"]


def test_the_top_level_help_names_debug(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "--debug" in text and all(name in text for name in COMMANDS)
