"""A short take recorded by the live loop with the real taef2 pair (64 px, on the CPU), and ways to run the
``render`` command on it as a user does: in a new process, alone, through ``--processes`` or through
``accelerate launch``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mido
import pytest
import torch

from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping

REPO = Path(__file__).resolve().parents[2]
SIZE = 64
FPS = 20.0
RENDER_TIMEOUT = 300  # seconds for one render command on a busy two-core machine
# The random walk's wander gives every frame a new point; the fader and an anchor note move it further.
MAPPING = """
version: 1
name: render test
controls:
  - {cc: 1, param: position}
notes:
  - {notes: 60, anchor: 0, behaviour: jump}
initial: {noise: 0.3}
"""


def cc(control: int, value: int, at: float) -> ControlEvent:
    return ControlEvent(at, "test", mido.Message("control_change", control=control, value=value))


def note(number: int, at: float) -> ControlEvent:
    return ControlEvent(at, "test", mido.Message("note_on", note=number, velocity=100))


@pytest.fixture(scope="session")
def take(taef2, shared, tmp_path_factory) -> Path:
    """A take of about 60 frames at 64 px: played frames, a stall of 40 frames the re-render fills in
    (glimpsed), a fader move and more frames. Its settings name the taef2 file, so that a render in another
    process loads it as a user's would."""
    from instrument.latent.anchors import load_anchors
    from instrument.render import Renderer

    images = [str(shared / "images" / name) for name in ("dog.png", "pastry.png")]
    anchors, errors = load_anchors(images, taef2, (SIZE, SIZE), cache=None)
    assert not errors
    latents = torch.stack([a.latent for a in anchors])
    mapping, errors = parse_mapping(MAPPING, "render-test.yaml")
    assert not errors
    root = tmp_path_factory.mktemp("takes")
    queue, clock = EventQueue(), SteppedClock(start=100.0)
    config = Config(size=(SIZE, SIZE), fps=FPS, record_root=str(root), device="cpu", dtype="fp32",
                    family="flux2", model=str(shared / "models" / "taef2_decoder.pth"), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=Mailbox(), clock=clock, record=str(root / "take"),
                        load=lambda say: (taef2, None, latents.clone(), ["dog", "pastry"], []),
                        controls=lambda: Controls(mapping, queue=queue),
                        decoding=lambda *a, **k: Decoding(*a, **{**k, "progressive": False}))
    renderer.prepare()
    try:
        renderer.run_frames(8)
        clock.advance(40 / FPS)  # the stall
        renderer.step()
        queue.put(cc(1, 100, clock.now()))
        renderer.run_frames(6)
        queue.put(note(60, clock.now()))
        renderer.run_frames(6)
    finally:
        renderer.close()
    return renderer.takes[0]


def render_command(*args: str | Path, timeout: float = RENDER_TIMEOUT,
                   launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    """``python -m instrument render ARGS`` (or ``launcher`` + ``-m instrument render ARGS``) from the
    repository, as a user runs it; its output captured."""
    command = [sys.executable, *(launcher or []), "-m", "instrument", "render", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def pictures(folder: Path) -> dict[str, bytes]:
    """Every frame file in ``folder``: name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("frame_*.png")) if p.is_file()}


@pytest.fixture(scope="session")
def reference(take, tmp_path_factory) -> Path:
    """The take rendered by one process with one CPU thread: what every split must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "one"
    done = render_command(take, "--out", out, "--threads", "1")
    assert done.returncode == 0, done.stderr
    return out
