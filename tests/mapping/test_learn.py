"""MIDI learn: detection of what moved, binding, and files that load back with the same binding."""

from __future__ import annotations

import mido
import pytest

from instrument.events import ControlEvent
from instrument.mapping import Mapping, load_mapping
from instrument.mapping.detect import Detected, Detector, classify_cc
from instrument.mapping.learn import LearnDialogue, bind
from instrument.mapping.model import NoteRange
from instrument.params import PARAMS

from .helpers import cc, mapping, note_on


@pytest.mark.parametrize("values, kind", [
    ([1, 1, 1, 2], "twos_complement"), ([127, 127, 126, 127], "twos_complement"),
    ([65, 65, 63, 65], "offset_binary"), ([1, 1, 65, 65], "sign_bit"),
    (list(range(40, 52)), "absolute"), ([127, 0], "absolute"), ([127], "absolute"),
    ([63, 64, 63, 64, 63], None), ([64], None),
])
def test_classify_cc(values, kind):
    assert classify_cc(values) == kind


def events(messages, start=0.0, step=0.02, source="port"):
    return [ControlEvent(start + i * step, source, m) for i, m in enumerate(messages)]


def detect(messages, settle=0.3):
    detector = Detector(settle)
    found = None
    evs = events(messages)
    for e in evs:
        found = found or detector.feed(e)
    return found or detector.decide(evs[-1].time + settle)


def test_detector_kinds():
    assert detect([cc(74, v, channel=2) for v in range(30, 45)]) == Detected("cc", 74, channel=2)
    assert detect([cc(16, 1)] * 6) == Detected("cc", 16, channel=0, relative="twos_complement")
    assert detect([m for v in range(20, 30) for m in (cc(3, v), cc(35, 5))]) == Detected("cc14", 3, 35, 0)
    nrpn = [cc(99, 1), cc(98, 2)] + [m for v in range(10) for m in (cc(6, 60 + v), cc(38, 0))]
    assert detect(nrpn) == Detected("nrpn", 130, channel=0)
    assert detect([mido.Message("pitchwheel", pitch=p) for p in range(0, 8000, 500)]) == \
        Detected("pitchbend", channel=0)
    assert detect([note_on(61, 90, channel=9)]) == Detected("note", 61, channel=9)
    assert detect([mido.Message("program_change", program=3)]) == Detected("program", channel=0)


def test_detector_ignores_jitter_and_picks_the_moved_control():
    jitter = [cc(7, 63 + i % 2) for i in range(20)]
    assert detect(jitter) is None
    mixed = [m for i in range(20) for m in (cc(7, 63 + i % 2), cc(74, 20 + i))]
    assert detect(mixed) == Detected("cc", 74, channel=0)


def test_bind_replaces_and_splits_note_ranges():
    m = mapping("controls:\n  - {cc: 74, param: speed}\nnotes:\n  - {notes: 60-72, anchor: 0}\n")
    m = bind(m, Detected("cc", 74, channel=0), "noise")
    assert [(c.number, c.param) for c in m.controls] == [(74, "noise")]
    m = bind(m, Detected("note", 64, channel=0), "record")
    assert m.notes == (NoteRange(60, 63, anchor=0), NoteRange(65, 72, anchor=5))
    assert m.controls[-1].source == "note" and m.controls[-1].action == "toggle"


class Script:
    """A fake MIDI input: each drain hands out the next batch of events; the clock advances per call."""

    def __init__(self, batches):
        self.batches = list(batches)
        self.now = 0.0

    def drain(self):
        return self.batches.pop(0) if self.batches else []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Talk:
    """A scripted console: answers to questions in order, lines typed while waiting, and what was said."""

    def __init__(self, answers=(), typed=()):
        self.answers, self.typed_lines, self.said = list(answers), list(typed), []

    def say(self, text):
        self.said.append(text)

    def ask(self, prompt):
        self.said.append(prompt)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)

    def typed(self):
        return self.typed_lines.pop(0) if self.typed_lines else None


def dialogue(script, talk, base, out, **kw):
    return LearnDialogue(script.drain, talk, base, out, clock=script.clock, sleep=script.sleep, timeout=5,
                         **kw)


def test_scripted_learn_from_stdin_round_trips(tmp_path):
    out = tmp_path / "learned.yaml"
    knob = events([cc(21, v, channel=0) for v in range(50, 70)], start=0.0)
    encoder = events([cc(16, 127)] * 8, start=1.0)
    script = Script([[], knob, [], encoder])
    talk = Talk([str(list(PARAMS).index("speed") + 1), "noise", "q"])
    learn = dialogue(script, talk, Mapping(), out)
    final = learn.run()
    loaded = load_mapping(out)
    assert loaded == final
    speed, noise = loaded.controls
    assert (speed.source, speed.number, speed.channel, speed.param) == ("cc", 21, 0, "speed")
    assert speed.relative is None
    assert (noise.number, noise.param, noise.relative) == (16, "noise", "twos_complement")
    assert any("Got cc 16 on channel 1 (twos_complement encoder)" in line for line in talk.said)
    assert learn.summary().splitlines()[1:] == [
        "  speed -2..2 <- cc 21 on channel 1",
        "  noise 0..1 (twos complement encoder) <- cc 16 on channel 1 (twos_complement encoder)"]


def test_assign_non_interactive(tmp_path):
    out = tmp_path / "assigned.yaml"
    script = Script([[], events([mido.Message("pitchwheel", pitch=p) for p in range(0, 8000, 400)]),
                     [], events([note_on(36, channel=9)])])
    talk = Talk()
    talk.ask = lambda prompt: pytest.fail("asked")
    final = dialogue(script, talk, Mapping(), out, assign=["offset", "freeze"]).run()
    loaded = load_mapping(out)
    assert loaded == final
    assert [(c.source, c.param, c.action) for c in loaded.controls] == \
        [("pitchbend", "offset", "follow"), ("note", "freeze", "toggle")]


def test_timeout_ends_without_binding(tmp_path):
    learn = dialogue(Script([]), Talk(), Mapping(), tmp_path / "x.yaml")
    assert learn.run() == Mapping() and not (tmp_path / "x.yaml").exists()
    assert learn.summary() == "Nothing learned; nothing written."


def test_q_while_waiting_for_a_control_finishes(tmp_path):
    script = Script([[]] * 50)
    talk = Talk(typed=[None, "", "hello", "q"])
    learn = dialogue(script, talk, Mapping(), tmp_path / "x.yaml")
    learn.run()
    assert script.now < 0.1  # finished at the q, long before the timeout
    assert any("Waiting for a control" in line for line in talk.said)


def test_a_control_that_cannot_drive_the_param_is_refused(tmp_path):
    out = tmp_path / "x.yaml"
    script = Script([[], events([mido.Message("program_change", program=2)]),
                     [], events([cc(71, v) for v in range(0, 30)], start=1.0)])
    talk = Talk()
    final = dialogue(script, talk, Mapping(), out, assign=["noise"]).run()
    assert any("cannot drive noise" in line for line in talk.said)
    assert [(c.source, c.number, c.param) for c in final.controls] == [("cc", 71, "noise")]


BASE = """\
# My own mapping: keep this comment.
version: 1
name: Mine
controls:
  # The knobs.
  - {cc: 16, channel: 1, param: offset_channel, label: knob 1}   # first knob
  - {cc: 17, channel: 1, param: lock_channels, label: knob 2}
notes:
  - {notes: 60-72, anchor: 0}  # the keys
"""


def test_rebinding_keeps_comments_and_says_what_it_replaces(tmp_path):
    base_path = tmp_path / "mine.yaml"
    base_path.write_text(BASE)
    out = tmp_path / "mine-learned.yaml"
    script = Script([[], events([cc(16, v) for v in range(30, 60)]), [], events([note_on(64)], start=2.0)])
    talk = Talk(["noise", "anchor", "q"])
    learn = dialogue(script, talk, load_mapping(base_path), out)
    learn.run()
    text = out.read_text()
    for comment in ("# My own mapping: keep this comment.", "# The knobs.", "# first knob", "# the keys"):
        assert comment in text
    assert text.splitlines()[5].endswith("# first knob") and "noise" in text.splitlines()[5]
    loaded = load_mapping(out)
    assert [(c.number, c.param, c.label) for c in loaded.controls] == \
        [(16, "noise", "knob 1"), (17, "lock_channels", "knob 2"), (64, "anchor", "")]
    assert loaded.controls[2].action == "set" and loaded.controls[2].value == 4  # the note's own anchor
    assert loaded.notes == (NoteRange(60, 63, anchor=0), NoteRange(65, 72, anchor=5))
    said = "\n".join(talk.said)
    assert "cc 16 on channel 1 was used by offset_channel 0..63 (line 6, knob 1): this replaces it." in said
    assert "note 64 on channel 1 was used by notes 60-72 (line 9)" in said
    assert "anchor 5 <- note 64 on channel 1" in learn.summary()  # anchors counted from 1 on screen


def test_pads_learned_for_anchor_select_anchors_in_turn(tmp_path):
    m = Mapping()
    for n, note in enumerate((36, 37, 38)):
        m = bind(m, Detected("note", note, channel=9), "anchor")
        assert (m.controls[-1].action, m.controls[-1].value) == ("set", n)


def test_ctrl_c_ends_with_what_was_learned(tmp_path):
    out = tmp_path / "x.yaml"
    script = Script([[], events([cc(74, v) for v in range(10, 40)])])

    def interrupted(prompt):
        raise KeyboardInterrupt

    talk = Talk(["noise"])
    learn = dialogue(script, talk, Mapping(), out)
    talk.typed = lambda: interrupted("") if learn.learned else None
    learn.run()
    assert "Stopped (Ctrl-C)." in "\n".join(talk.said)
    assert learn.summary().startswith(f"Learned 1 control, saved in {out}:")
    assert load_mapping(out).controls[0].param == "noise"


def test_a_failed_save_is_said_and_ends_learn(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the output's folder is a file: saving fails as on a read-only or full disk
    script = Script([[], events([cc(74, v) for v in range(10, 40)])])
    talk = Talk(["noise"])
    learn = dialogue(script, talk, Mapping(), blocker / "x.yaml")
    learn.run()
    assert any(line.startswith(f"Could not save {blocker / 'x.yaml'}") for line in talk.said)
    assert learn.summary() == "Nothing learned; nothing written."
