"""`latent-instrument learn` as a player meets it: in a terminal (a pty), with a knob turned on a real JACK
MIDI port. The prompts come in order, q finishes at "Move a control", Ctrl-C stops with a summary, a control
the base mapping used is replaced with a word about it, and the base's comments are kept."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
import uuid
from pathlib import Path

import mido
import pytest

from instrument.mapping import load_mapping

pytestmark = pytest.mark.jack

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
# My mapping: this comment must survive learn.
version: 1
name: Mine
controls:
  - {cc: 74, channel: 4, param: offset, label: knob 5}   # keep me
  - {cc: 75, channel: 4, param: speed, label: knob 6}
"""


class Terminal:
    """A command running on a pseudo-terminal: what it prints is read back, what is typed goes in."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its terminal (and Ctrl-C there sends it SIGINT)
            os.execvpe(argv[0], argv, env)
        self.seen = ""
        self.read = 0  # how far read_until has looked: each prompt is waited for once

    def read_until(self, text: str, timeout: float = 15.0) -> bool:
        """Wait until ``text`` is printed after what earlier calls found."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.read:]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return False
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # the command ended
                chunk = b""
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        found = self.seen.find(text, self.read)
        if found < 0:
            return False
        self.read = found + len(text)
        return True

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mark = self.read
            self.read_until("\0", 0.05)  # keep the pty drained
            self.read = mark
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"learn did not end; it printed:\n{self.seen}")


@pytest.fixture
def knob(jack_server):
    """(port name, turn): ``turn()`` sweeps CC 74 on channel 4 for about half a second."""
    import rtmidi

    name = f"pty-learn-{uuid.uuid4().hex[:6]}"
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
    out.open_virtual_port("out")

    def turn() -> None:
        for value in range(20, 70):
            out.send_message(mido.Message("control_change", channel=3, control=74, value=value).bytes())
            time.sleep(0.01)

    try:
        yield f"{name}:out", turn
    finally:
        out.close_port()
        out.delete()


def learn(tmp_path: Path, port: str) -> tuple[Terminal, Path]:
    base = tmp_path / "mine.yaml"
    base.write_text(BASE)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="dumb")
    argv = [sys.executable, "-m", "instrument", "learn", "--base", str(base), "--port", port, "--api", "jack"]
    return Terminal(argv, env), tmp_path / "mine-learned.yaml"


def bind_the_knob(term: Terminal, turn) -> None:
    """Turn the knob until learn has seen it, then answer noise."""
    assert term.read_until("Move a control"), term.seen
    for _ in range(20):  # the port connects a moment after the prompt: turn until learn sees it
        turn()
        if term.read_until("Got cc 74 on channel 4", 1.0):
            break
    assert term.read_until("Parameter (number or name, Enter to skip, q to finish): "), term.seen
    term.type("noise\n")
    assert term.read_until("saved"), term.seen


def test_learn_in_a_terminal_replaces_keeps_comments_and_q_finishes(knob, tmp_path):
    port, turn = knob
    term, output = learn(tmp_path, port)
    bind_the_knob(term, turn)
    assert "cc 74 on channel 4 was used by offset -3..3 (line 5, knob 5): this replaces it." in term.seen
    assert term.read_until("Move a control", 5), term.seen  # the next round
    term.type("q\n")  # q at "Move a control": done, no control needed
    assert term.wait() == 0
    assert f"Learned 1 control, saved in {output}:" in term.seen
    assert "  noise 0..1 <- cc 74 on channel 4 (replaces offset -3..3 (line 5, knob 5))" in term.seen
    text = output.read_text()
    assert "# My mapping: this comment must survive learn." in text and "# keep me" in text
    assert [(c.number, c.param, c.label) for c in load_mapping(output).controls] == \
        [(74, "noise", "knob 5"), (75, "speed", "knob 6")]


def test_ctrl_c_stops_learn_with_a_summary(knob, tmp_path):
    port, turn = knob
    term, output = learn(tmp_path, port)
    bind_the_knob(term, turn)
    assert term.read_until("Move a control", 5), term.seen
    term.type("\x03")  # Ctrl-C, as typed: the terminal sends SIGINT
    assert term.wait() == 0
    assert "Stopped (Ctrl-C)." in term.seen and "Traceback" not in term.seen
    assert f"Learned 1 control, saved in {output}:" in term.seen
    assert load_mapping(output).controls[0].param == "noise"
