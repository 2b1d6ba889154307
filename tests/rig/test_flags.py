"""The rig's flags: all off by default, a listener on this computer only, every value checked when read."""

from __future__ import annotations

import argparse

import pytest

from instrument.config import Config


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="play")
    Config.add_arguments(made)
    return made


def test_everything_is_off_unless_asked_for():
    config = Config.from_args(parser().parse_args([]))
    assert (config.sink, config.osc_in, config.osc_out) == ("", 0, "")
    assert config.osc_host == "127.0.0.1"


def test_the_flags_read_back():
    args = parser().parse_args(["--sink", "ndi,virtualcam", "--ndi-name", "Stage left", "--osc-in", "9000",
                                "--osc-host", "0.0.0.0", "--osc-out", "127.0.0.1:7000"])
    config = Config.from_args(args)
    assert (config.sink, config.ndi_name, config.osc_in, config.osc_host, config.osc_out) == (
        "ndi,virtualcam", "Stage left", 9000, "0.0.0.0", "127.0.0.1:7000")


@pytest.mark.parametrize("argv,said", [
    (["--osc-in", "70000"], "--osc-in: '70000' is out of range"),
    (["--osc-in", "nine"], "--osc-in: 'nine' is not a whole number"),
    (["--osc-out", "7000"], "--osc-out: '7000' is not HOST:PORT"),
    (["--sink", "ndi,obs"], "--sink: 'obs' is not a frame sink; use syphon, spout, ndi, virtualcam"),
])
def test_a_bad_value_is_one_line_naming_the_flag(argv, said, capsys):
    with pytest.raises(SystemExit) as raised:
        parser().parse_args(argv)
    assert raised.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert said in error
