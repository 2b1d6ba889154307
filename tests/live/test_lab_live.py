"""The lab in live play with the real taef2 decoder: atlas mode, pacing (and its exact replay), banks,
the stretch indicator."""

from __future__ import annotations

import json
import time

import mido
import numpy as np
import pygame
import pytest
import support
import torch
from PIL import Image

from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.lab.atlas import Atlas
from instrument.lab.live import LiveLab, centre
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.mailbox import Mailbox, Status
from instrument.mapping import parse_mapping
from instrument.params import PARAMS
from instrument.performance import Performance, bank_anchor
from instrument.pixels import pixels_to_uint8
from instrument.recorder import EVENTS, FRAMES, SIDECAR, read_jsonl

from .conftest import SIZE, wait_for

MAPPING = """
version: 1
name: lab test
controls:
  - {cc: 1, param: position, smoothing: 0}
  - {cc: 2, param: record, action: toggle}
  - {cc: 3, param: atlas, action: toggle}
  - {cc: 4, param: atlas_x, smoothing: 0}
  - {cc: 5, param: atlas_y, smoothing: 0}
  - {cc: 6, param: pacing, action: toggle}
  - {program: true, param: bank}
notes:
  - {notes: 60-71, anchor: 0, behaviour: glide, glide: [1.0, 1.0]}
"""



def event(message: mido.Message) -> ControlEvent:
    return ControlEvent(time.monotonic(), "test", message)


def cc(control: int, value: int) -> ControlEvent:
    return event(mido.Message("control_change", control=control, value=value))


def press(queue, control: int) -> None:
    queue.put(cc(control, 127))
    time.sleep(0.15)
    queue.put(cc(control, 0))


@pytest.fixture(scope="module")
def three(taef2, shared) -> torch.Tensor:
    """dog, pastry and scribe at SIZE: [3, 32, SIZE/8, SIZE/8]."""
    from instrument.latent.anchors import load_anchors

    images = [str(shared / "images" / f"{name}.png") for name in ("dog", "pastry", "scribe")]
    anchors, errors = load_anchors(images, taef2, (SIZE, SIZE), cache=None)
    assert not errors
    return torch.stack([a.latent for a in anchors])


def make_renderer(taef2, anchors, names, tmp_path, **config):
    from instrument.render import Renderer

    mapping, errors = parse_mapping(MAPPING, "lab.yaml")
    assert not errors
    queue, mailbox = EventQueue(), Mailbox()
    config = Config(size=(SIZE, SIZE), fps=20, full_model="none", record_root=str(tmp_path / "takes"),
                    **config)
    renderer = Renderer(config, queue=queue, mailbox=mailbox,
                        load=lambda say: (taef2, None, anchors.clone(), list(names), []),
                        controls=lambda: Controls(mapping, queue=queue))
    return renderer, queue, mailbox


def controls(**changes):
    values = {name: p.default for name, p in PARAMS.items()} | {"tempo": 120.0, "beat": 0.0}
    return values | changes


def test_atlas_mode_renders_the_atlas_at_the_cursor_with_a_minimap(taef2, three, tmp_path):
    folder = tmp_path / "atlas"
    Atlas.fit(three, ["dog", "pastry", "scribe"]).save(folder)
    renderer, queue, mailbox = make_renderer(taef2, three, ["dog", "pastry", "scribe"], tmp_path,
                                             atlas=str(folder))
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        queue.put(cc(4, 20))
        queue.put(cc(5, 100))
        press(queue, 3)  # atlas on
        assert wait_for(lambda: mailbox.peek().coords.atlas and renderer.status.minimap is not None)
        frame, status = mailbox.peek(), renderer.status
        # The controls rest here: the stretch indicator gets measured.
        assert wait_for(lambda: any(line.startswith("stretch ") for line in renderer.status.lab))
    finally:
        renderer.stop()
        renderer.join(5)
    assert renderer.failure is None
    x, y = frame.coords.atlas_x, frame.coords.atlas_y
    assert (x, y) == pytest.approx((20 / 127, 100 / 127), abs=1e-2)
    atlas = Atlas.load(folder)
    with torch.inference_mode():
        expected = pixels_to_uint8(taef2.decode(atlas.from_map(x, y)[None]), (SIZE, SIZE))[0].numpy()
    assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1
    assert status.minimap.shape == (160, 160, 3) and status.minimap.dtype == np.uint8
    near = atlas.names[atlas.nearest(x, y)]
    assert any(line.startswith("atlas (") and line.endswith(f"near {near}") for line in status.lab)
    line = next(line for line in renderer.status.lab if line.startswith("stretch "))
    assert float(line.split()[1]) > 0 and line.split()[-1] in ("smooth", "even", "turbulent")


def test_a_damaged_atlas_is_reported_and_play_goes_on(taef2, anchor_latents, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "atlas.safetensors").write_bytes(b"not a safetensors file")
    renderer, queue, mailbox = make_renderer(taef2, anchor_latents, ["dog", "pastry"], tmp_path,
                                             atlas=str(folder))
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        assert any("atlas mode unavailable" in e and "atlas.safetensors" in e for e in renderer.status.errors)
        press(queue, 3)  # atlas on: still unavailable, said on the HUD, and the frames keep coming
        assert wait_for(lambda: any("atlas mode unavailable" in line for line in renderer.status.lab))
        count = mailbox.count
        assert wait_for(lambda: mailbox.count > count + 3)
        assert not mailbox.peek().coords.atlas
    finally:
        renderer.stop()
        renderer.join(5)
    assert renderer.failure is None


def test_two_anchors_and_no_atlas_folder_give_a_message(taef2, anchor_latents):
    performance = Performance(n_anchors=2)
    decoding = Decoding(anchor_latents, taef2, None, out_size=(SIZE, SIZE), seed=0)
    lab = LiveLab(performance, decoding, ["dog", "pastry"], decode=taef2.decode)
    coords = lab.step(controls(atlas=True), 0.0, None, 0)
    assert not coords.atlas and lab.atlas is None
    assert any("3+ anchors" in line for line in lab.hud(coords, controls(atlas=True))[0])


def glide_changes(taef2, anchors, pacing: bool) -> tuple[list[float], list]:
    """Frame-to-frame RMS pixel change over a 1 s glide from dog to pastry at 30 fps."""
    performance = Performance(n_anchors=2)
    decoding = Decoding(anchors, taef2, None, out_size=tuple(8 * d for d in anchors.shape[-2:]), seed=0)
    records: list = []
    lab = LiveLab(performance, decoding, ["dog", "pastry"], decode=taef2.decode, log_record=records.append)
    values = controls(pacing=pacing, transition=1.0)
    frames = []
    for n in range(33):
        coords = lab.step(values, n / 30, 1 if n == 1 else None, n)
        frames.append(decoding.render(coords).astype(np.float32) / 255)
    # From the third frame on: the first frame of a glide plays unpaced while its table is measured.
    changes = [float(np.sqrt(((b - a) ** 2).mean())) for a, b in zip(frames[2:], frames[3:], strict=False)]
    return changes, records


def test_pacing_evens_out_the_picture_change_along_a_glide(taef2, anchor_latents):
    small = centre(anchor_latents, 8)  # 64 px frames: quick on two cores
    plain, _ = glide_changes(taef2, small, pacing=False)
    paced, records = glide_changes(taef2, small, pacing=True)
    moving = [c for c in paced if c > 0]

    def cv(x):
        return float(np.std(x) / np.mean(x))

    assert len(moving) >= 25
    assert cv(moving) < 0.5 * cv([c for c in plain if c > 0])
    assert {r["pacing"].split()[0] for r in records} == {"path", "glide"}
    assert all(len(r["s"]) == len(r["length"]) and r["length"][-1] == pytest.approx(1.0) for r in records)


def test_a_take_with_pacing_and_banks_re_renders_exactly(taef2, three, tmp_path):
    from instrument.replay import rerender

    renderer, queue, mailbox = make_renderer(taef2, three, ["dog", "pastry", "scribe"], tmp_path,
                                             bank_size=2)
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        press(queue, 6)  # pacing on
        # (Once its first table is measured: a CC press during the measuring would be coalesced away.)
        assert wait_for(lambda: any(line.startswith("pacing on (1") for line in renderer.status.lab))
        press(queue, 2)  # record on
        assert wait_for(lambda: renderer.recorder is not None)
        queue.put(event(mido.Message("program_change", program=1)))  # bank 1: notes pick anchors 2, 3, ...
        queue.put(event(mido.Message("note_on", note=60, velocity=100)))  # bank 1, anchor 0 -> #2 (scribe)
        assert wait_for(lambda: mailbox.peek().coords.home == 2 and mailbox.peek().coords.glide == 1.0)
        queue.put(event(mido.Message("note_on", note=61, velocity=100)))  # -> #3: wraps to #0
        assert wait_for(lambda: any("wrapped" in line or "#0" in line for line in renderer.status.lab), 10)
        assert wait_for(lambda: mailbox.peek().coords.home == 0)
        queue.put(cc(1, 90))  # travel along the paced path
        time.sleep(0.3)
        press(queue, 3)  # atlas on: charted from the three anchors, mid-take
        assert wait_for(lambda: mailbox.peek().coords.atlas)
        queue.put(cc(4, 10))
        time.sleep(0.3)
        press(queue, 2)  # record off
        assert wait_for(lambda: renderer.recorder is None)
    finally:
        renderer.stop()
        renderer.join(5)
    assert renderer.failure is None
    take = renderer.takes[0]
    logged = {r["pacing"] for r in read_jsonl(take / EVENTS) if "pacing" in r}
    # The path's table was measured before the take: its starting state holds it; the glide's, in the take.
    start = json.loads((take / SIDECAR).read_text())["start"]["performance"]["tables"]["dict"]
    before = {key for key, _ in start}
    assert {key.split()[0] for key in logged | before} == {"path", "glide"} and before
    live = read_jsonl(take / FRAMES)
    result = rerender(take, load=lambda config: (taef2, None), progress=False)
    again = read_jsonl(result.folder / FRAMES)
    support.assert_as_played(result, again, live)
    assert any(0 < f["coords"]["glide"] < 1 for f in live)  # a paced glide was in the take
    assert any(f["coords"]["atlas"] for f in live) and (take / "atlas" / "atlas.safetensors").exists()
    by_n = {line["n"]: line for line in again}
    for a, b in [(line, by_n[line["n"]]) for line in live[-3:]]:  # atlas frames: the same pictures
        assert np.abs(np.asarray(Image.open(take / a["file"]), dtype=int)
                      - np.asarray(Image.open(result.folder / b["file"]), dtype=int)).max() <= 1


def test_program_change_selects_the_banks_anchors(taef2, three):
    mapping, errors = parse_mapping(MAPPING, "lab.yaml")
    assert not errors
    control = Controls(mapping)
    performance = Performance(n_anchors=7, bank_size=3)
    t = 0.0

    def play(*messages):
        nonlocal t
        t += 0.1
        for message in messages:
            control.apply(ControlEvent(t, "test", message))
        control.advance(t)
        pick = next((int(v) for name, v in control.pop_actions() if name == "anchor"), None)
        return performance.step(control.values(t), t, pick)

    assert play().home == 0
    assert play(mido.Message("note_on", note=61, velocity=64)).home == 1
    bank_2 = mido.Message("program_change", program=2)
    assert play(bank_2, mido.Message("note_on", note=60, velocity=64)).home == 6
    assert play(mido.Message("note_on", note=62, velocity=64)).home == 1  # #8 of 7 wraps round
    assert "wraps" not in performance.wrapped and "#8" in performance.wrapped
    assert bank_anchor(2, 1, 0, 7) == (2, False)  # bank size 0: no banks


def test_the_hud_shows_the_lab_lines_and_the_minimap(monkeypatch, three):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from instrument.display import Display
    from instrument.lab.atlas import draw_minimap

    atlas = Atlas.fit(three, ["dog", "pastry", "scribe"])
    minimap = draw_minimap(atlas, (0.5, 0.5), 160)
    status = Status(phase="playing", lab=("stretch 0.31 [####----] smooth",), minimap=minimap)
    display = Display(Mailbox(), EventQueue(), lambda: status, window_size=(400, 300))
    display.open()
    try:
        assert ("stretch 0.31 [####----] smooth", (235, 235, 235)) in display._hud_lines(status)
        display._draw(status)
        corner = pygame.surfarray.array3d(display.surface)[400 - 170:400 - 10, 10:170].transpose(1, 0, 2)
        assert np.array_equal(corner, minimap)
    finally:
        display.close()
