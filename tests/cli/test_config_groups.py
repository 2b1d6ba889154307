"""Settings groups: composed per command, flat to read, saved with what the command used."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from instrument.config import (
    AnchorConfig,
    AudioSettings,
    BenchConfig,
    Config,
    MidiSettings,
    ModelSettings,
    PictureSettings,
    PlaySettings,
    RigSettings,
    SculptingSettings,
    SpeedSettings,
    number,
    parse_size,
)
from instrument.replay import take_config


def names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def parsed(cls, argv: list[str], **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser, **defaults)
    return parser.parse_args(argv)


def test_config_is_every_group_flat():
    groups = (ModelSettings, PictureSettings, MidiSettings, PlaySettings, SculptingSettings, SpeedSettings,
              RigSettings, AudioSettings)
    assert names(Config) == set().union(*(names(g) for g in groups))
    assert sum(len(names(g)) for g in groups) == len(names(Config))  # no field in two groups
    config = Config(fps=60, size=(256, 128), compile="off", midi_ports="none")
    assert (config.fps, config.size, config.compile, config.midi_ports) == (60, (256, 128), "off", "none")
    assert config.family == "sd15" and config.out_size is None
    with pytest.raises(TypeError):
        Config(60)  # keyword only: a field's place in a group is not part of the interface


def test_a_command_config_reads_its_flags_and_saves_only_them(tmp_path):
    args = parsed(AnchorConfig, ["--size", "768x512", "--seed", "7", "--fit", "pad", "--offline"])
    config = AnchorConfig.from_args(args)
    assert (config.size, config.seed, config.fit, config.offline) == ((768, 512), 7, "pad", True)
    assert not hasattr(config, "fps") and not hasattr(config, "midi_api")
    saved = json.loads(config.save(tmp_path).read_text())
    assert set(saved) == names(ModelSettings) | names(PictureSettings)
    assert saved["size"] == [768, 512] and saved["seed"] == 7
    assert dataclasses.replace(config, full_model="none").full_model == "none"  # lab.models does this


def test_a_whole_config_from_any_commands_flags_keeps_the_rest_at_defaults():
    args = parsed(BenchConfig, ["--compile", "off", "--fps", "12", "--family", "sdxl"])
    config = Config.from_args(args)  # what bench hands its live sweep
    assert (config.compile, config.fps, config.family) == ("off", 12.0, "sdxl")
    assert config.size == (512, 512) and config.frame_cache_mb == 256 and config.mapping == ""
    assert names(BenchConfig) == names(SpeedSettings) | {"family", "fps", "model", "full_model", "offline"}


def test_a_command_can_show_its_own_default():
    assert parsed(AnchorConfig, [], size=(128, 128)).size == (128, 128)
    assert parsed(AnchorConfig, ["--size", "64"], size=(128, 128)).size == (64, 64)


def test_out_size_is_a_size_like_the_window():
    args = parsed(Config, ["--out-size", "1280x720", "--window", "640"])
    assert (args.out_size, args.window) == ((1280, 720), (640, 640))
    assert parsed(Config, []).out_size is None
    assert parse_size((1280, 720)) == (1280, 720) == parse_size([1280, 720])  # a take's saved settings
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size((4, 4))


def test_a_takes_settings_come_back_as_the_config(tmp_path):
    config = Config(size=(256, 256), window=(800, 600), fps=24.0, seed=3, midi_api="jack", compile="off")
    sidecar = {"settings": json.loads(json.dumps(config.to_dict()))}
    assert take_config(sidecar) == config
    old = {"settings": {**sidecar["settings"], "out_size": "", "retired_flag": 1}}  # an older take
    assert take_config(old).out_size is None  # the decode size, as before


def test_numbers_say_their_range():
    fps = number(float, 0, 1000, above=True)
    assert fps("29.97") == pytest.approx(29.97)
    for text, words in (("0", "above 0 and at most 1000"), ("-0.0", "above 0"), ("inf", "finite"),
                        ("nan", "finite"), ("30fps", "not a number"), ("1001", "at most 1000")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            fps(text)
    count = number(int, 0, 10)
    assert count(" 10 ") == 10
    with pytest.raises(argparse.ArgumentTypeError, match="whole number from 0 to 10"):
        count("2.5")
