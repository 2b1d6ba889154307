"""The lab in live play with the real taef2 decoder, composed as the render thread composes it (LiveLab,
Performance, Decoding with the CPU frame pipeline; or the Renderer itself): atlas mode, pacing measured on the
frames played (and its exact replay), the stretch and bend readout, geodesics, phase boundaries, banks."""

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
from instrument.lab.live import LiveLab, phase_line
from instrument.lab.measure import GEODESIC, probe_coords
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding, frame_pipeline
from instrument.mailbox import Mailbox, Status
from instrument.mapping import parse_mapping
from instrument.params import PARAMS
from instrument.performance import Coords, Performance, bank_anchor, path_key
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


def test_atlas_mode_renders_the_atlas_at_the_cursor_with_a_minimap(taef2, three, tmp_path, caplog):
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
    words = line.split()
    assert float(words[1]) > 0 and words[3] in ("smooth", "even", "turbulent")
    assert words[5] == "bend" and 0 <= float(words[6]) <= 1
    assert "jvp unusable" not in caplog.text  # the readout needs no forward-mode autodiff


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
        # (A tap shorter than a render-thread stall is coalesced away in the event queue, and on two busy
        # cores a decode the lab makes between frames can be that long: wait until it has measured.)
        lab = renderer.parts.lab
        assert wait_for(lambda: lab.readout is not None and not lab.jobs.running, 60)
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


@pytest.fixture(scope="module")
def five(taef2, shared) -> torch.Tensor:
    """The five shared pictures at 64 px (whole latents, quick on two cores): [5, 32, 8, 8]."""
    from instrument.latent.anchors import load_anchors

    images = [str(shared / "images" / f"{n}.png") for n in ("dog", "pastry", "scribe", "panda", "family")]
    anchors, errors = load_anchors(images, taef2, (64, 64), cache=None)
    assert not errors
    return torch.stack([a.latent for a in anchors])


class Player:
    """LiveLab + Performance + Decoding with the CPU frame pipeline, as the render thread composes them."""

    def __init__(self, taef2, anchors: torch.Tensor) -> None:
        side = 8 * anchors.shape[-1]
        self.pipeline = frame_pipeline(taef2, (side, side), Config(size=(side, side)))
        self.decoding = Decoding(anchors, taef2, None, out_size=(side, side), seed=0,
                                 fast_frames=self.pipeline)
        self.performance = Performance(n_anchors=len(anchors))
        self.records: list = []
        self.lab = LiveLab(self.performance, self.decoding, [f"a{i}" for i in range(len(anchors))],
                           decode=taef2.decode, log_record=self.records.append,
                           settle=0.0)  # frames here come faster than real time
        self.n = 0

    def frame(self, values, pick=None, *, render=True, resting=False):
        coords = self.lab.step(values, self.n / 30, pick, self.n)
        image = self.decoding.render(coords).astype(np.float32) / 255 if render else None
        self.lab.after_frame(coords, resting)
        self.n += 1
        return coords, image

    def settle(self, values, limit=2000) -> int:
        for k in range(limit):
            self.frame(values, render=False)
            if not self.performance.wanted and not self.lab._finished:
                return k + 1
        raise AssertionError(f"still wanted after {limit} frames: {self.performance.wanted}")

    def close(self) -> None:
        self.pipeline.close()


@pytest.fixture
def player(taef2):
    players = []

    def make(anchors):
        players.append(Player(taef2, anchors))
        return players[-1]

    yield make
    for p in players:
        p.close()


def changes(frames) -> np.ndarray:
    return np.array([np.sqrt(((b - a) ** 2).mean()) for a, b in zip(frames, frames[1:], strict=False)])


def cv(x) -> float:
    return float(np.std(x) / np.mean(x))


def travel(p: Player, kind: str, frames: int, pacing: bool) -> tuple[np.ndarray, list[bool]]:
    """Frame changes over one pass along the path at constant speed; which of them straddle an anchor."""
    values = controls(path=kind, pacing=pacing)
    p.settle(values)
    played = [p.frame(values | {"speed": 60 / frames}) for _ in range(frames + 1)]  # 120 bpm, 30 fps
    n = p.performance.n_anchors
    knots = [k / (n - 1) for k in range(1, n - 1)]
    s = [coords.s for coords, _ in played]
    corners = [any(min(a, b) < k < max(a, b) for k in knots) for a, b in zip(s, s[1:], strict=False)]
    return changes([image for _, image in played]), corners


def test_paced_travel_changes_the_picture_evenly(player, five):
    """Travel at constant speed, measured on the frames played: the variation of the picture's change from
    frame to frame on dog -> pastry, and on a spline through all five pictures."""
    for anchors, kind, frames, limit in ((five[:2], "slerp", 40, 0.02), (five, "spline", 100, 0.03)):
        plain = cv(travel(player(anchors), kind, frames, pacing=False)[0])
        paced = cv(travel(player(anchors), kind, frames, pacing=True)[0])
        print(f"{len(anchors)} anchors, {kind}: CV {plain:.4f} unpaced -> {paced:.4f} paced")
        assert paced < limit and paced < plain / 4


def test_at_a_corner_the_picture_turns_and_elsewhere_it_changes_evenly(player, five):
    """A SLERP through five pictures turns at every anchor: the frame pair that straddles one shows less
    change whatever the timing (a chord across a corner). Every other pair changes evenly."""
    changed, corners = travel(player(five), "slerp", 100, pacing=True)
    inside = changed[[not c for c in corners]]
    assert sum(corners) == 3 and cv(inside) < 0.03
    assert changed[corners].max() < inside.min()


def test_a_paced_glide_changes_the_picture_evenly_and_waits_for_its_table(player, five):
    def glide(pacing: bool):
        p = player(five[:2])
        values = controls(pacing=pacing, transition=1.0)
        p.settle(values)
        coords, _ = p.frame(values, pick=1, render=False)
        waited = 0
        while p.performance.wanted:  # the glide waits at its start while its table is measured
            assert coords.glide == 0.0
            coords, _ = p.frame(values, render=False)
            waited += 1
        shown = []
        while not shown or coords.glide < 1.0:
            coords, image = p.frame(values)
            shown.append(image)
        return changes(shown), waited, p.records

    plain, _, _ = glide(False)
    paced, waited, records = glide(True)
    print(f"glide CV {cv(plain):.4f} eased -> {cv(paced):.4f} paced, after {waited} frames of measuring")
    assert cv(paced) < 0.02 and waited > 0
    assert {r["pacing"].split()[0] for r in records} == {"path", "glide"}
    assert all(len(r["s"]) == len(r["length"]) and r["length"][-1] == pytest.approx(1.0) for r in records)


def test_the_stretch_readout_follows_the_real_change(player, five):
    """At rest at 16 points along dog -> pastry, the HUD's stretch ranks the change between the frames
    around each point, rendered as play renders them; its bend tracks their non-linear residual."""
    from instrument.lab.stretch import spearman

    p = player(five[:2])
    readout, real, residual = [], [], []
    for k in range(16):
        s = (k + 0.5) / 16
        f = [p.decoding.render(c).astype(np.float32) / 255 for c in probe_coords(Coords("slerp", s), 2)]
        real.append(np.sqrt(((f[2] - f[0]) ** 2).mean()))
        chords = np.sqrt(((f[2] - f[1]) ** 2).mean()) + np.sqrt(((f[1] - f[0]) ** 2).mean())
        residual.append(np.sqrt(((2 * f[1] - f[0] - f[2]) ** 2).mean()) / chords)
        p.lab.readout = None
        while p.lab.readout is None:
            coords, _ = p.frame(controls(position=s), render=False, resting=True)
        readout.append(p.lab.readout)
    rho = spearman(torch.tensor([r[0] for r in readout]), torch.tensor(real))
    rho_bend = spearman(torch.tensor([r[1] for r in readout]), torch.tensor(residual))
    print(f"Spearman: stretch vs change {rho:.3f}, bend vs residual {rho_bend:.3f}")
    assert rho >= 0.8 and rho_bend >= 0.8
    line = next(line for line in p.lab.hud(coords, controls(position=s))[0] if line.startswith("stretch "))
    assert f"bend {readout[-1][1]:.2f}" in line


def test_the_geodesic_path_plays_once_found_and_replays(player, five, monkeypatch, tmp_path):
    """Chosen as a path kind, the geodesic is found while SLERP plays; then it plays, changes the picture
    less than SLERP over the same travel, says so on the HUD, and a take's record brings it back."""
    monkeypatch.setitem(GEODESIC, "cpu", (6, 3))  # 6 control points, 3 steps: quick on two cores
    p = player(five[:2])
    values = controls(path="geodesic")
    coords, _ = p.frame(values, render=False)
    assert coords.path == "slerp" and "routes geodesic" in p.performance.wanted
    assert any(line.startswith("geodesic: finding the routes") for line in p.lab.hud(coords, values)[0])
    p.settle(values)
    played = {kind: [p.frame(controls(path=kind, position=k / 24))[1] for k in range(25)]
              for kind in ("geodesic", "slerp")}
    energy = {kind: 24 * float((changes(frames) ** 2).sum()) for kind, frames in played.items()}
    coords, _ = p.frame(values, render=False)
    assert coords.path == "geodesic" and energy["geodesic"] < energy["slerp"]
    assert any(line.startswith("geodesic: pixel energy") and "vs SLERP" in line
               for line in p.lab.hud(coords, values)[0])
    record = next(r for r in p.records if "geodesic" in r)
    p.lab.save_take(tmp_path)
    replay = Decoding(five[:2], p.decoding.fast, None, out_size=(64, 64), seed=0)
    lab = LiveLab(Performance(n_anchors=2), replay, ["a0", "a1"])
    assert lab.apply(record, tmp_path) and lab.performance.routes_ready
    middle = Coords("geodesic", 0.37)
    assert torch.equal(replay.latent(middle), p.decoding.latent(middle))
    (tmp_path / "geodesic" / "routes.safetensors").write_bytes(b"junk")
    with pytest.raises(Exception, match="routes.safetensors"):
        lab.apply(record, tmp_path)


def test_phase_boundaries_show_on_the_hud_after_a_rest(player, five):
    p = player(five[:3])
    values = controls(position=0.1)
    for _ in range(60):  # resting: the lab surveys the path between frames
        coords, _ = p.frame(values, render=False, resting=True)
    boundaries = p.lab.boundaries[path_key("slerp")]
    assert len(boundaries) == 2 and 0 < boundaries[0] < 0.5 < boundaries[1] < 1
    line = next(line for line in p.lab.hud(coords, values)[0] if line.startswith("phase "))
    assert line.startswith("phase 1/3 [") and line.count("|") == 2
    assert phase_line(0.8, [0.3, 0.6]).startswith("phase 3/3") and phase_line(0.0, [])[:9] == "phase 1/1"
    assert any(r.get("pacing") == "path slerp" and len(r["phases"]) == 2 for r in p.records)


def test_a_path_that_cannot_be_measured_plays_unpaced_and_the_glide_goes_on(taef2, five):
    """A decoder that fails while the lab measures: said once on the HUD, the tables stay even (and are
    logged, so a replay agrees), the glide does not wait for ever, and frames keep coming."""
    errors, records = [], []

    def broken(latents):
        raise RuntimeError("out of memory")

    performance = Performance(n_anchors=2)
    decoding = Decoding(five[:2], taef2, None, out_size=(64, 64), seed=0)
    lab = LiveLab(performance, decoding, ["dog", "pastry"], decode=broken, error=errors.append,
                  log_record=records.append)
    values = controls(pacing=True, transition=0.5)
    lab.step(values, 0.0, None, 0)
    coords = lab.step(values, 0.1, 1, 1)
    for n in range(2, 40):
        coords = lab.step(values, n / 10, None, n)
        assert decoding.image(coords).shape == (64, 64, 3)
    assert coords.glide == 1.0 and coords.s == 1.0
    assert sorted(e.split(":")[0] for e in errors) == ["lab glide slerp 0.0 1.0", "lab path slerp"]
    assert all(r["length"] == [0.0, 1.0] for r in records) and len(records) == 2


def test_pacing_on_or_off_keeps_the_picture_where_it_is():
    """Turning pacing on (its table arrives) or off mid-path moves the origin, not the picture."""
    from instrument.lab.pacing import PacingTable

    p = Performance(n_anchors=3)
    u = torch.linspace(0, 1, 65)
    p.tables["path slerp"] = PacingTable(u, u ** 2, 1.0)  # the picture changes faster later on
    t = 0.0
    for position in (0.3, 0.8):
        before = p.step(controls(position=position), t).s
        for pacing in (True, False, True, False):
            t += 1 / 30
            assert p.step(controls(position=position, pacing=pacing), t).s == pytest.approx(before, abs=1e-4)
    # Paced, the position fader moves in even steps of picture change: from s = 0.8 (0.64 of the change
    # done), a quarter of the fader back leaves 0.39 of it done, at s = √0.39.
    p.step(controls(position=0.8, pacing=True), t)
    assert p.step(controls(position=0.55, pacing=True), t).s == pytest.approx(0.39 ** 0.5, abs=1e-3)
    # With pacing on, a note lands on its anchor: the picture arrives at the anchor's own path position.
    t += 0.1
    p.step(controls(pacing=True, transition=0.0), t, pick=1)
    assert p.step(controls(pacing=True, transition=0.0), t + 0.05).s == pytest.approx(0.5, abs=1e-4)


def test_a_take_with_pacing_and_banks_re_renders_exactly(taef2, three, tmp_path):
    from instrument.replay import rerender

    renderer, queue, mailbox = make_renderer(taef2, three, ["dog", "pastry", "scribe"], tmp_path,
                                             bank_size=2)
    renderer.start()
    try:
        assert wait_for(lambda: mailbox.count > 0)
        press(queue, 6)  # pacing on
        # (Once its first table is measured: a CC press during the measuring would be coalesced away.)
        assert wait_for(lambda: any(line.startswith("pacing on: 1 path") for line in renderer.status.lab))
        press(queue, 2)  # record on
        assert wait_for(lambda: renderer.recorder is not None)
        queue.put(event(mido.Message("program_change", program=1)))  # bank 1: notes pick anchors 2, 3, ...
        queue.put(event(mido.Message("note_on", note=60, velocity=100)))  # bank 1, anchor 0 -> #2 (scribe)
        assert wait_for(lambda: mailbox.peek().coords.home == 2 and mailbox.peek().coords.glide == 1.0)
        queue.put(event(mido.Message("note_on", note=61, velocity=100)))  # -> #3: wraps to #0
        assert wait_for(lambda: any("playing anchor 1" in line for line in renderer.status.lab), 10)
        assert wait_for(lambda: mailbox.peek().coords.home == 0)
        queue.put(cc(1, 90))  # travel along the paced path
        time.sleep(0.3)
        assert wait_for(lambda: not renderer.parts.lab.jobs.running, 60)  # (let the measuring finish first)
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
    assert "is anchor 9, but there are 7 anchors: playing anchor 2" in performance.wrapped  # (from 1)
    assert bank_anchor(2, 1, 0, 7) == (2, False)  # bank size 0: no banks


def test_the_hud_shows_the_lab_lines_and_the_minimap(monkeypatch, three):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from instrument.display import Display, hud_lines
    from instrument.lab.atlas import draw_minimap

    atlas = Atlas.fit(three, ["dog", "pastry", "scribe"])
    minimap = draw_minimap(atlas, (0.5, 0.5), 160)
    status = Status(phase="playing", lab=("stretch 0.31 [####----] smooth · bend 0.12",), minimap=minimap)
    display = Display(Mailbox(), EventQueue(), lambda: status, window_size=(400, 300))
    display.open()
    try:
        line = ("stretch 0.31 [####----] smooth · bend 0.12", (235, 235, 235))
        assert line in hud_lines(status, display.measured)
        display._draw(status)
        corner = pygame.surfarray.array3d(display.surface)[400 - 170:400 - 10, 10:170].transpose(1, 0, 2)
        assert np.array_equal(corner, minimap)
    finally:
        display.close()
