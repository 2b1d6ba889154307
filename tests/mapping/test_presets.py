"""The shipped presets: picked by the connected port's name, described for the help overlay, and safe on
stage (a fader never flips a switch, no MIDI control quits or changes the window)."""

from __future__ import annotations

import shutil

import pytest

from instrument.mapping import (
    DEFAULT_MAPPING,
    PRESETS,
    describe_controls,
    describe_keys,
    load_mapping,
    match_preset,
    parse_mapping,
)

from .helpers import Rig, cc

CONTROLLER_PRESETS = [p for p in sorted(PRESETS.glob("*.yaml"))
                      if p.name not in ("default.yaml", "keyboard.yaml")]


@pytest.mark.parametrize("ports, preset", [
    (["nanoKONTROL2:nanoKONTROL2 _ CTRL 20:0"], "korg-nanokontrol2.yaml"),  # Linux (ALSA through rtmidi)
    (["nanoKONTROL2 SLIDER/KNOB"], "korg-nanokontrol2.yaml"),  # macOS
    (["MPK mini 3 MIDI 1"], "akai-mpk-mini-mk3.yaml"),
    (["Minilab3 MIDI"], "arturia-minilab-3.yaml"),
    (["Launch Control XL:Launch Control XL MIDI 1 24:0"], "novation-launchcontrol-xl.yaml"),
    (["launch control xl"], "novation-launchcontrol-xl.yaml"),  # any case
    (["Midi Through:Midi Through Port-0 14:0", "MPK mini 3 MIDI 1"], "akai-mpk-mini-mk3.yaml"),
    (["Minilab3 MIDI", "nanoKONTROL2 MIDI 1"], "arturia-minilab-3.yaml"),  # the first connected wins
])
def test_a_preset_is_picked_by_port_name(ports, preset):
    assert match_preset(ports) == PRESETS / preset


@pytest.mark.parametrize("ports", [[], ["Midi Through Port-0"], ["latent-instrument"], ["nanoKONTROL"]])
def test_no_preset_for_other_ports(ports):
    assert match_preset(ports) is None  # play then falls back on default.yaml


def test_every_controller_preset_names_its_ports():
    assert len(CONTROLLER_PRESETS) >= 4
    for path in CONTROLLER_PRESETS:
        mapping = load_mapping(path)
        assert mapping.ports, f"{path.name}: no `ports:`, so it can never be picked by port name"
        assert match_preset([f"{mapping.ports[0]} MIDI 1"]) == path


def test_matching_skips_broken_files_and_prefers_the_shipped_preset(tmp_path):
    for path in PRESETS.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    korg = tmp_path / "korg-nanokontrol2.yaml"
    shutil.copy(korg, tmp_path / "korg-nanokontrol2-learned.yaml")
    (tmp_path / "a-broken.yaml").write_text("version: 1\nports: [nanoKONTROL2]\ncontrols: [[[\n")
    (tmp_path / "b-any.yaml").write_text("version: 1\nports: any\n")
    assert match_preset(["nanoKONTROL2 MIDI 1"], tmp_path) == korg
    (tmp_path / "c-precise.yaml").write_text("version: 1\nports: [nanoKONTROL2 MIDI 1]\n")
    assert match_preset(["nanoKONTROL2 MIDI 1"], tmp_path) == tmp_path / "c-precise.yaml"  # names it best


def test_describe_controls_for_the_help_overlay():
    korg = describe_controls(load_mapping(PRESETS / "korg-nanokontrol2.yaml"))
    assert len(korg) == len(load_mapping(PRESETS / "korg-nanokontrol2.yaml").controls)
    assert ("CC 16 (knob 1)", "offset_channel 0..63") in korg
    assert ("CC 0 (fader 1)", "position 0..1 (pickup)") in korg
    assert ("CC 32 (S1)", "anchor 1") in korg and ("CC 71 (R8)", "anchor 16") in korg  # from 1 on screen
    assert ("CC 48 (M1)", "freeze while held") in korg and ("CC 49 (M2)", "freeze on/off") in korg
    assert ("CC 43 (<<)", "previous anchor") in korg and ("CC 59 (Track >)", "next bank") in korg
    default = dict(describe_controls(load_mapping(DEFAULT_MAPPING)))
    assert default["CC 64 (sustain pedal)"] == "freeze while held"
    assert default["pitch bend"] == "position -0.25..+0.25, springs back"
    assert default["notes 60-127"] == "anchors 1-68, glide"
    assert default["notes 36-59"] == "anchors 1-24, while held"


def test_describe_names_channels_only_where_they_tell_controls_apart():
    mapping, _ = parse_mapping(
        "version: 1\ncontrols:\n  - {cc: 7, channel: 1, param: noise, label: a}\n"
        "  - {cc: 7, channel: 2, param: speed, range: [0, 1], relative: twos_complement}\n"
        "  - {cc14: 1, param: position, invert: true}\n"
        "  - {note: 36, channel: 10, param: anchor, action: set, value: 0}\n"
        "keys:\n  - {key: '1', param: anchor, value: 0}\n"
        "  - {key: up, param: speed, rate: 0.5}\n  - {key: f, param: fullscreen}\n", "x")
    assert describe_controls(mapping) == [
        ("CC 7 ch 1 (a)", "noise 0..1"), ("CC 7 ch 2", "speed 0..1 (twos complement encoder)"),
        ("CC 1/33 (14-bit)", "position 0..1 (reversed)"), ("note 36", "anchor 1")]
    assert describe_keys(mapping) == [("1", "anchor 1"), ("up", "speed +0.5/s while held"),
                                      ("f", "fullscreen on/off")]


def faders_of_known_controllers() -> set[int]:
    """CCs that some shipped controller preset drives as a knob or fader (a continuous follow)."""
    out = set()
    for path in CONTROLLER_PRESETS:
        for c in load_mapping(path).controls:
            if c.source == "cc" and c.action == "follow" and not c.relative:
                out.add(c.number)
    return out


def test_default_has_no_switch_on_a_known_fader():
    """A fader on a toggle flips it at each pass through the middle: default.yaml keeps its buttons off
    every CC a known controller uses as a knob or fader (the Launch Control XL's faders are CC 77-84)."""
    faders = faders_of_known_controllers()
    assert {77, 80, 84} <= faders
    for c in load_mapping(DEFAULT_MAPPING).controls:
        if c.source == "cc" and c.action != "follow":
            assert c.number not in faders, f"CC {c.number} ({c.param}, {c.action}) is a fader somewhere"


def test_default_buttons_act_on_the_press_and_a_fader_through_cc_80_does_nothing():
    rig = Rig(DEFAULT_MAPPING.read_text().split("\n", 1)[1].replace("version: 1\n", ""))
    sweep = [cc(80, v) for v in list(range(0, 128, 8)) + list(range(127, -1, -8))] * 3
    rig.send(0.0, *sweep)
    assert rig.value("atlas") is False and rig.state.pop_actions() == []
    rig.send(1.0, cc(102, 127), cc(102, 0))  # atlas button: on at the press, the release does nothing
    assert rig.value("atlas") is True
    rig.send(2.0, cc(102, 127), cc(102, 100), cc(102, 0))
    assert rig.value("atlas") is False


def test_default_knob_block_fits_the_nanokontrol2():
    by_cc = {c.number: c.param for c in load_mapping(DEFAULT_MAPPING).controls if c.source == "cc"}
    assert [by_cc[n] for n in range(16, 21)] == [by_cc[n] for n in range(70, 75)]  # knobs 1-5, as elsewhere


def test_no_midi_control_quits_or_changes_the_window():
    """On stage a stray press must not end the show or change the window: those stay on computer keys."""
    for path in sorted(PRESETS.glob("*.yaml")):
        for c in load_mapping(path).controls:
            assert c.param not in ("quit", "fullscreen"), f"{path.name} line {c.line}: {c.param} on MIDI"


def test_korg_knobs_7_and_8_sculpt():
    korg = load_mapping(PRESETS / "korg-nanokontrol2.yaml")
    by_cc = {c.number: c.param for c in korg.controls if c.source == "cc"}
    assert (by_cc[22], by_cc[23]) == ("sculpt", "steps")
