"""Master and blackout on the output frames (what the screen and frame sinks get), never on the take; a
take renders with them (``--master``) or without."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
from PIL import Image

from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.loop.output import Output
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping
from instrument.recorder import FRAMES, read_jsonl
from instrument.render import Renderer

from .conftest import SIZE

MAPPING = """
version: 1
controls:
  - {cc: 1, param: position}
  - {cc: 7, param: master, smoothing: 0}
  - {cc: 8, param: blackout}
  - {cc: 9, param: blackout_time, range: [0, 1], smoothing: 0}
"""


def test_master_scales_and_blackout_fades_on_straight_lines():
    image = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    out = Output()
    values = {"master": 1.0, "blackout": False, "blackout_time": 2.0}
    assert out(image, values, 0.0) is image  # full brightness: the frame itself, no copy
    half = out(image, values | {"master": 0.5}, 0.1)
    assert half is not image and np.array_equal(half, np.round(image * 0.5).astype(np.uint8))
    levels = [out.level(values | {"blackout": True}, t) for t in (0.1, 0.6, 1.1, 2.1, 3.0)]
    assert levels == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0])
    assert [out.level(values, t) for t in (3.5, 4.0, 5.0, 6.0)] == pytest.approx([0.25, 0.5, 1.0, 1.0])
    assert not out(image, values | {"blackout": True, "blackout_time": 0.0}, 7.0).any()  # at once
    assert out.level(values | {"master": 0.5}, 8.0) == pytest.approx(0.25)  # halfway back, at half
    assert np.array_equal(image, np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3))  # untouched


def cc(control: int, value: int, at: float) -> ControlEvent:
    return ControlEvent(at, "test", mido.Message("control_change", control=control, value=value))


def test_the_screen_fades_and_the_take_does_not(session_loader, taef2, tmp_path):
    from instrument.replay import rerender

    mapping, errors = parse_mapping(MAPPING, "test.yaml")
    assert not errors
    queue, mailbox, clock = EventQueue(), Mailbox(), SteppedClock(start=100.0)
    config = Config(size=(SIZE, SIZE), fps=10.0, record_root=str(tmp_path), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=session_loader,
                        controls=lambda: Controls(mapping, queue=queue), clock=clock,
                        decoding=lambda *a, **k: Decoding(*a, **{**k, "progressive": False}),
                        record=str(tmp_path / "take"))
    renderer.prepare()
    shown = []
    try:
        queue.put(cc(9, 127, clock.now()))  # blackout_time: 1 s = 10 frames
        queue.put(cc(1, 64, clock.now()))
        for k in range(30):
            if k == 3:
                queue.put(cc(7, 64, clock.now()))  # master about half
            if k == 8:
                queue.put(cc(8, 127, clock.now()))  # blackout on (toggle on the press)
            renderer.step()
            shown.append(mailbox.latest().image)
    finally:
        renderer.close()
    take = renderer.takes[0]
    live = read_jsonl(take / FRAMES)
    recorded = [np.asarray(Image.open(take / line["file"])) for line in live]
    master = 64 / 127
    for k, (screen, kept) in enumerate(zip(shown, recorded, strict=True)):
        # (the fade runs from the frame before the one that reads the press: it came in between)
        level = 1.0 if k < 3 else master * max(0.0, 1.0 - (k - 7) / 10) if k >= 8 else master
        expected = np.round(np.arange(256) * level).astype(np.uint8)[kept]
        assert np.array_equal(screen, expected), k  # the take holds the picture, the screen the faded one
    assert recorded[-1].mean() > 50 and not shown[-1].any()

    plain = rerender(take, load=lambda c: (taef2, None), progress=False, out=tmp_path / "plain")
    faded = rerender(take, load=lambda c: (taef2, None), progress=False, out=tmp_path / "faded", master=True)
    assert plain.mismatches == faded.mismatches == 0
    for k, line in enumerate(read_jsonl(faded.folder / FRAMES)):
        assert np.array_equal(np.asarray(Image.open(plain.folder / line["file"])), recorded[k])
        assert np.array_equal(np.asarray(Image.open(faded.folder / line["file"])), shown[k]), k
    assert json.loads((faded.folder / "render.json").read_text())["frames"] == 30
