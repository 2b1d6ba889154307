"""Scenes on the control state, without threads: store (shift + pad, or a store button), recall with a
linear crossfade, takeover during it, quantised recall; the scenes file beside the mapping."""

from __future__ import annotations

import json

import pytest
from mapping.helpers import Rig, cc, note_off, note_on

from instrument.control import ControlState
from instrument.scenes import SceneFile, read_scenes, scene_params, scenes_path, scenes_text

MAPPING = """
controls:
  - {cc: 1, param: noise, smoothing: 0}
  - {cc: 2, param: position, smoothing: 0}
  - {cc: 3, param: path}
  - {cc: 4, param: scene_fade, range: [0, 4], smoothing: 0}
  - {cc: 5, param: offset, smoothing: 0}
  - {note: 36, scene: recall, slot: 0}
  - {note: 37, scene: recall, slot: 1}
  - {note: 38, scene: store, slot: 5}
  - {note: 48, param: shift, action: hold}
  - {note: 49, param: quantise, action: step}
notes:
  - {notes: 60-67, anchor: 0, behaviour: jump}
"""


def press(rig: Rig, t: float, note: int) -> None:
    rig.send(t, note_on(note), note_off(note))


def test_shift_and_pad_store_the_scene_and_the_pad_recalls_it_with_a_crossfade():
    rig = Rig(MAPPING)
    st = rig.state
    rig.send(0.0, cc(4, 64))  # scene_fade ~2 s
    fade = st.value("scene_fade")
    # A look: anchor 2, the last path kind.
    rig.send(0.1, cc(1, 100), cc(2, 40), cc(3, 127), cc(5, 127), note_on(62))
    rig.send(0.2, note_on(48))  # shift held
    press(rig, 0.3, 36)  # stores scene 1 (slot 0)
    rig.send(0.4, note_off(48))
    assert st.scenes.slots[0]["noise"] == pytest.approx(100 / 127)
    assert st.scenes.slots[0]["path"] == "geodesic"
    assert st.scenes.slots[0]["anchor"] == 2 and "master" not in st.scenes.slots[0]
    rig.value("noise", 0.5)
    st.pop_actions()

    rig.send(1.0, cc(1, 0), cc(2, 0), cc(3, 0), cc(5, 64), note_on(60))  # somewhere else
    assert rig.value("path", 1.1) == "slerp" and rig.value("noise") == 0.0
    st.pop_actions()
    press(rig, 2.0, 36)  # recall: path at once, numbers on straight lines over `fade` seconds
    assert rig.value("path") == "geodesic" and rig.value("position") == pytest.approx(40 / 127)
    assert ("anchor", 2) in st.pop_actions() and rig.value("transition") == pytest.approx(fade)
    assert rig.value("noise", 2.0 + fade / 2) == pytest.approx(50 / 127)
    offset_then = rig.value("offset")
    assert rig.value("noise", 2.0 + fade) == pytest.approx(100 / 127)
    assert rig.value("offset") == pytest.approx(3.0) and offset_then == pytest.approx(1.5, abs=0.03)
    assert not st.scenes.fades and st.scenes.recalled == 0 and "[1]" in st.scenes.line()


def test_a_control_moved_during_the_crossfade_takes_its_parameter_over():
    rig = Rig(MAPPING)
    st = rig.state
    rig.send(0.0, cc(4, 127), cc(1, 127), cc(5, 127))  # fade 4 s
    press(rig, 0.1, 38)  # a store button: slot 5
    rig.send(0.2, cc(1, 0), cc(5, 0))
    st.scenes.recall(st, 5, 1.0)
    assert rig.value("noise", 2.0) == pytest.approx(0.25)
    rig.send(2.5, cc(1, 10))  # the hand takes noise; offset fades on
    assert rig.value("noise", 3.5) == pytest.approx(10 / 127) and rig.value("offset") == pytest.approx(0.75)
    assert rig.value("offset", 5.0) == pytest.approx(3.0)


def test_an_empty_slot_changes_nothing_and_says_so():
    rig = Rig(MAPPING)
    rig.send(0.0, cc(1, 90))
    press(rig, 0.5, 37)
    assert rig.value("noise", 1.0) == pytest.approx(90 / 127)
    assert "scene 2 is empty" in rig.state.scenes.said and rig.state.pop_actions() == []


def test_a_quantised_recall_waits_for_the_beat():
    rig = Rig(MAPPING + "tempo: 120\n")  # 2 beats a second
    st = rig.state
    st.advance(0.0)
    rig.send(0.0, cc(1, 127))
    st.scenes.store(st, 0)
    rig.send(0.1, cc(1, 0), cc(4, 0), note_on(49))  # no crossfade; quantise: beat
    assert st.value("quantise") == "beat"
    press(rig, 0.7, 36)  # beat 1.4: lands on beat 2 (t = 1.0)
    assert rig.value("noise", 0.9) == 0.0
    assert rig.value("noise", 1.0) == 1.0


def test_scenes_hold_the_picture_not_the_session():
    names = scene_params()
    for picture in ("anchor", "bank", "path", "position", "speed", "noise", "lock_channels", "lock_region",
                    "offset", "freeze", "atlas", "pacing", "sculpt", "steps", "prompt_mix"):
        assert picture in names
    for session in ("master", "blackout", "tempo", "record", "quit", "hud", "scene_recall", "gesture_record",
                    "transition", "velocity", "decoder", "tap"):
        assert session not in names


def test_the_bank_travels_in_the_state_snapshot():
    st = ControlState()
    st.set("noise", 0.7, 0.0)
    st.scenes.store(st, 3)
    st.scenes.recall(st, 3, 1.0)  # (nothing to fade: already there)
    data = json.loads(json.dumps(st.state_dict()))
    again = ControlState()
    again.load_state_dict(data)
    assert again.scenes.slots == st.scenes.slots and again.scenes.recalled == 3


def test_the_scenes_file_keeps_scenes_between_sessions(tmp_path):
    path = scenes_path(tmp_path / "my.yaml")
    assert path == tmp_path / "my.scenes.json"
    st = ControlState()
    store = SceneFile(path)
    assert store.load(st.scenes) is None and not st.scenes.slots  # no file yet: an empty bank
    assert store.sync(st.scenes) is None and not path.exists()  # nothing stored, nothing written
    st.set("noise", 0.4, 0.0)
    st.set("path", "loop", 0.0)
    st.scenes.store(st, 7)
    assert store.sync(st.scenes) is None
    later = ControlState()
    assert SceneFile(path).load(later.scenes) is None
    assert later.scenes.slots == {7: st.scenes.slots[7]}
    later.scenes.recall(later, 7, 0.0)
    later.advance(5.0)
    assert later.value("path") == "loop" and later.value("noise") == pytest.approx(0.4)


def test_a_preset_keeps_its_scenes_in_the_config_folder(tmp_path, monkeypatch):
    from instrument.mapping import DEFAULT_MAPPING

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = scenes_path(DEFAULT_MAPPING)
    assert path.is_relative_to(tmp_path / "config") and path.name == "default.scenes.json"


def test_a_damaged_scenes_file_is_said_once_and_never_written_over(tmp_path):
    path = tmp_path / "my.scenes.json"
    good = scenes_text({0: {"noise": 0.5}})
    cases = {
        "not json {": "Expecting value",
        json.dumps({"scenes": []}): "not a scenes file",
        good.replace("0.5", "7.5"): "scene 1: noise: 7.5 is outside 0..1",
        good.replace("0.5", '"loud"'): "scene 1: noise: 'loud' is not a finite number",
        good.replace('"slot": 0', '"slot": 500'): "scene 1: slot 500 is not 0..127",
        good.replace('"noise": 0.5', '"path": "zigzag"'): "zigzag' is not one of slerp",
        good.replace('"noise": 0.5', '"freeze": 1'): "freeze: 1 is not true or false",
        "[" * 100_000: "",
    }
    for text, expected in cases.items():
        path.write_text(text)
        st = ControlState()
        store = SceneFile(path)
        problem = store.load(st.scenes)
        assert problem and str(path) in problem and expected in problem and "\n" not in problem, problem
        st.scenes.store(st, 1)  # kept in memory, said, and the file stays as it was
        said = store.sync(st.scenes)
        assert said and "end of the session" in said and path.read_text() == text
        assert st.scenes.slots[1]
    path.write_bytes(b" " * (2 << 20))
    assert "larger than" in SceneFile(path).load(ControlState().scenes)


def test_unknown_parameters_in_a_scenes_file_are_left_out(tmp_path):
    path = tmp_path / "s.scenes.json"
    path.write_text(scenes_text({2: {"noise": 0.25, "a_future_param": 3, "master": 0.1}}))
    assert read_scenes(path) == {2: {"noise": 0.25}}


def test_a_scenes_file_that_cannot_be_written_is_said_and_the_scene_kept(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    st = ControlState()
    store = SceneFile(tmp_path / "file" / "my.scenes.json")
    assert store.load(st.scenes) is None
    st.scenes.store(st, 0)
    problem = store.sync(st.scenes)
    assert problem.startswith("scenes not saved:") and st.scenes.slots[0]
