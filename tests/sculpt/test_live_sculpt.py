"""The sculpt stage in the live loop (a stepped Renderer), in takes and their re-render, on the HUD.

The decoder is a tiny TAESD of SD 1.x latents and the sculpt model a tiny SD 1.x-shaped pipeline, both
randomly initialised and loaded through the user's paths (a diffusers folder each), on the CPU.
"""

from __future__ import annotations

import functools
import json
import time

import mido
import numpy as np
import pytest
import torch

from instrument.accel import make_frame_fn
from instrument.config import Config
from instrument.decoders import load_autoencoder
from instrument.events import ControlEvent, EventQueue
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.loop.sculpting import build_sculpting
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping
from instrument.render import Renderer
from instrument.sculpt import SculptOptions, Sculptor, SculptSettings, load_sculpt_model

SIZE = 64  # pixels: [4, 8, 8] latents
MAPPING = """
version: 1
name: sculpt test
initial: {{sculpt: {sculpt}, steps: 2}}
controls:
  - {{cc: 1, param: position, smoothing: 0}}
  - {{cc: 2, param: record, action: toggle}}
  - {{cc: 3, param: sculpt, smoothing: 0}}
  - {{cc: 4, param: step_view}}
"""


@pytest.fixture
def decoder(taesd_folder):
    return load_autoencoder(str(taesd_folder), family="sd15", device="cpu")


@pytest.fixture
def turbo(models):
    return load_sculpt_model(str(models / "tiny-turbo"), device="cpu")


def anchors() -> torch.Tensor:
    return torch.randn(2, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(7))


def cc(control: int, value: int, at: float) -> ControlEvent:
    return ControlEvent(at, "test", mido.Message("control_change", control=control, value=value))


def every_frame_decoded(*args, **kwargs):
    return Decoding(*args, **{**kwargs, "progressive": False})


def renderer_for(decoder, model, tmp_path, *, sculpt=0.75, inline=True, record=None, clock=None,
                 names=("a", "b"), latents=None, stream=False):
    """A renderer stepped by hand: inline sculpting (every frame sculpted, as on a GPU; ``stream``: as a
    stream batch, as on a GPU), or the CPU's own path (unsculpted blends at once, the sculpted frame from the
    background at rest)."""
    mapping, errors = parse_mapping(MAPPING.format(sculpt=sculpt), "sculpt.yaml")
    assert not errors
    queue, mailbox = EventQueue(), Mailbox()
    latents = anchors() if latents is None else latents
    load = (lambda say: (decoder, None, latents.clone(), list(names), [], model)) if model is not None else \
        (lambda say: (decoder, None, latents.clone(), list(names), []))
    inline_stage = functools.partial(build_sculpting, background=False, stream=stream)
    factories = dict(decoding=every_frame_decoded, sculpting=inline_stage) if inline else {}
    config = Config(size=(SIZE, SIZE), fps=20.0, full_model="none", record_root=str(tmp_path / "takes"),
                    cache_dir=str(tmp_path / "cache"))
    renderer = Renderer(config, queue=queue, mailbox=mailbox, load=load, record=record,
                        controls=lambda: Controls(mapping, queue=queue), clock=clock or SteppedClock(10.0),
                        **factories)
    return renderer, queue, mailbox


def count_calls(unet) -> list[int]:
    calls: list[int] = []
    unet.register_forward_hook(lambda module, args, output: calls.append(int(args[0].shape[0])))
    return calls


def expected_frame(renderer, model, coords, settings: SculptSettings, step: int = 0) -> np.ndarray:
    """The frame a sculpt should show, made apart from the loop: the latent at ``coords`` sculpted by a
    fresh Sculptor, decoded by a frame pipeline of the same decoder."""
    decoding = renderer.decoding
    sculptor = Sculptor(model, (4, SIZE // 8, SIZE // 8), options=SculptOptions(background=False),
                        prompt_cache_dir=decoding.sculpting.sculptor.prompts.root)
    result = sculptor(decoding.latent(coords), settings)
    frames = make_frame_fn(decoding.fast, (SIZE, SIZE), renderer.config)
    try:
        return frames(result.view(step))
    finally:
        frames.close()


def test_sculpt_zero_is_exactly_the_unsculpted_frame_without_a_unet_call(decoder, turbo, tmp_path):
    calls = count_calls(turbo.unet)
    images = []
    for model in (turbo, None):
        renderer, queue, mailbox = renderer_for(decoder, model, tmp_path, sculpt=0.0)
        renderer.prepare()
        try:
            seen = []
            for k in range(6):
                queue.put(cc(1, 20 * k, renderer.clock.now()))
                renderer.step()
                seen.append(mailbox.latest().image)
            images.append(seen)
            assert all(len(key) == 2 for key in renderer.decoding.cache._items)  # today's keys
            assert renderer.status.sculpt == "" and renderer.status.steps == ()
        finally:
            renderer.close()
    assert calls == []
    assert all(np.array_equal(a, b) for a, b in zip(*images, strict=True))


def test_inline_every_frame_is_sculpted_and_step_view_shows_a_step(decoder, turbo, tmp_path):
    renderer, queue, mailbox = renderer_for(decoder, turbo, tmp_path, sculpt=0.75)
    renderer.prepare()
    try:
        assert renderer.decoding.sculpting.inline
        renderer.run_frames(2)
        frame = mailbox.latest()
        settings = SculptSettings(strength=0.75, steps=2)
        assert np.array_equal(frame.image, expected_frame(renderer, turbo, frame.coords, settings))
        unsculpted = renderer.decoding.render(frame.coords)
        assert not np.array_equal(frame.image, unsculpted)
        queue.put(cc(4, 16, renderer.clock.now()))  # step_view 1: the first step's prediction
        renderer.run_frames(2)
        frame = mailbox.latest()
        assert np.array_equal(frame.image, expected_frame(renderer, turbo, frame.coords, settings, step=1))
        renderer.run_frames(8)  # resting: the strip of both steps
        status = renderer.status
        assert status.sculpt.startswith("sculpted: 2 steps at 0.75, showing step 1")
        assert len(status.steps) == 2 and status.step_shown == 1 and status.steps[0].shape[0] == 80
    finally:
        renderer.close()
    assert renderer.failure is None and not renderer.board.errors


def assert_close_images(a: np.ndarray, b: np.ndarray) -> None:
    """The same picture up to the float rounding of a batched UNet call (a level of uint8 at most)."""
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_inline_stream_batch_shows_publishes_and_records_the_frame_whose_sculpt_it_is(decoder, turbo,
                                                                                     tmp_path):
    """Inline with the stream batch (2 steps: one frame behind): a moving knob shows, at each frame, the
    sculpt of the frame before, published and recorded with that frame's coordinates; at rest the picture
    comes to the point's own sculpt; a step view sculpts each frame whole, with no delay."""
    from instrument.performance import Coords
    from instrument.recorder import FRAMES, read_jsonl

    calls = count_calls(turbo.unet)
    renderer, queue, mailbox = renderer_for(decoder, turbo, tmp_path, record=str(tmp_path / "take"),
                                            stream=True)
    renderer.prepare()
    try:
        stage = renderer.decoding.sculpting
        assert stage.stream is not None and "stream_batch" in stage.sculptor.describe()
        published = []
        for n in range(6):
            queue.put(cc(1, 5 + 20 * n, renderer.clock.now()))
            renderer.step()
            published.append(mailbox.latest())
        assert "stream batch (1 frame behind)" in renderer.status.sculpt
        assert calls[:2] == [1, 1] and calls[2:] == [2] * 5  # a refill, then one call of 2 a frame
        renderer.run_frames(3)  # at rest
        rest = mailbox.latest()
        queue.put(cc(4, 16, renderer.clock.now()))  # step_view 1: every step of one frame
        renderer.run_frames(2)
        stepped = mailbox.latest()
        assert stage.stream.delay == 0
    finally:
        renderer.close()
    assert renderer.failure is None and not renderer.board.errors
    lines = read_jsonl(renderer.takes[0] / FRAMES)
    assert "shown" not in lines[0]  # the refill shows its own frame
    settings = SculptSettings(strength=0.75, steps=2)
    for n in range(1, 6):
        shown = lines[n]["shown"]
        assert shown["coords"] == lines[n - 1]["coords"] != lines[n]["coords"]
        assert shown["sculpt"]["steps"] == 2 and Coords.from_json(shown["coords"]) == published[n].coords
        want = expected_frame(renderer, turbo, published[n].coords, settings)
        assert_close_images(published[n].image, want)
    assert rest.coords == Coords.from_json(lines[5]["coords"]) and "shown" not in lines[-1]
    assert_close_images(rest.image, expected_frame(renderer, turbo, rest.coords, settings))
    assert stepped.coords == rest.coords
    assert np.array_equal(stepped.image, expected_frame(renderer, turbo, rest.coords, settings, step=1))


def test_cpu_shows_unsculpted_at_once_and_the_sculpted_frame_when_the_controls_rest(decoder, turbo,
                                                                                   tmp_path):
    """The CPU path: each step of the UNet takes 0.3 s. Frames keep coming while it sculpts, unsculpted,
    and say so; the sculpted frame replaces them once it is made; moving on drops a sculpt in flight."""
    calls = []

    def slow(module, args):
        calls.append(time.monotonic())
        time.sleep(0.3)

    turbo.unet.register_forward_pre_hook(slow)
    renderer, queue, mailbox = renderer_for(decoder, turbo, tmp_path, sculpt=0.75, inline=False)
    renderer.prepare()
    try:
        stage = renderer.decoding.sculpting
        assert not stage.inline and stage.backdrop is not None
        renderer.run_frames(2)  # the second frame has the first one's key: a rest; the sculpt starts
        longest, shown, began = 0.0, [], time.monotonic()
        while time.monotonic() - began < 20:
            t0 = time.monotonic()
            renderer.step()
            longest = max(longest, time.monotonic() - t0)
            frame = mailbox.latest()
            shown.append((renderer.status.sculpt, frame))
            if renderer.status.sculpt.startswith("sculpted"):
                break
            time.sleep(0.02)
        assert longest < 0.3, f"a frame waited {longest:.2f} s for the sculpt"  # a step takes 0.3 s
        assert any(text.startswith("unsculpted, sculpting") for text, _ in shown)
        assert renderer.status.sculpt.startswith("sculpted: 2 steps at 0.75")
        assert len(calls) == 2  # one sculpt of two steps
        sculpted = [f for _, f in shown if f is not None][-1]
        settings = SculptSettings(strength=0.75, steps=2)
        assert np.array_equal(sculpted.image, expected_frame(renderer, turbo, sculpted.coords, settings))
        # Moving on drops a sculpt in flight: the UNet stops at its next layer.
        queue.put(cc(1, 127, renderer.clock.now()))
        renderer.run_frames(3)  # resting at the new point: a sculpt starts
        before, wait = len(calls), time.monotonic() + 10
        while len(calls) == before and time.monotonic() < wait:
            renderer.step()
            time.sleep(0.01)
        queue.put(cc(1, 0, renderer.clock.now()))
        renderer.step()
        time.sleep(1.0)
        renderer.step()
        assert len(calls) == before + 1, "the dropped sculpt went on to its second step"
    finally:
        renderer.close()
    assert renderer.failure is None and not renderer.board.errors


def test_a_take_with_sculpting_re_renders_to_the_same_frames(decoder, turbo, models, tmp_path):
    from instrument.recorder import FRAMES, SIDECAR, read_jsonl
    from instrument.replay import rerender

    take = str(tmp_path / "take")
    renderer, queue, mailbox = renderer_for(decoder, turbo, tmp_path, sculpt=0.5, record=take)
    renderer.prepare()
    try:
        renderer.run_frames(2)
        queue.put(cc(3, 100, renderer.clock.now()))  # the sculpt knob turns
        renderer.run_frames(2)
        queue.put(cc(1, 90, renderer.clock.now()))
        queue.put(cc(4, 16, renderer.clock.now()))
        renderer.run_frames(2)
        queue.put(cc(3, 0, renderer.clock.now()))  # and back to the unsculpted picture
        renderer.run_frames(2)
    finally:
        renderer.close()
    take = renderer.takes[0]
    sidecar = json.loads((take / SIDECAR).read_text())
    assert sidecar["sculpt"]["model"] == str(models / "tiny-turbo")
    live = read_jsonl(take / FRAMES)
    strengths = [line.get("sculpt", {}).get("strength") for line in live]
    assert strengths[:2] == [0.5, 0.5] and strengths[2] > 0.7 and strengths[-1] is None
    load = lambda config: (decoder, None)  # noqa: E731
    again = rerender(take, load=load, progress=False)
    lines = read_jsonl(again.folder / FRAMES)
    assert [line.get("sculpt") for line in lines] == [line.get("sculpt") for line in live]
    from PIL import Image

    for a, b in zip(live, lines, strict=True):
        played, made = Image.open(take / a["file"]), Image.open(again.folder / b["file"])
        assert np.array_equal(np.asarray(played), np.asarray(made)), a["n"]
    finer = rerender(take, load=load, progress=False, out=tmp_path / "finer", sculpt_steps=4,
                     step_frames=True)
    finer_lines = read_jsonl(finer.folder / FRAMES)
    assert {line["sculpt"]["steps"] for line in finer_lines if "sculpt" in line} == {4}
    for k in range(1, 5):
        assert (finer.folder / f"step_{k}" / live[0]["file"]).is_file()
        assert (finer.folder / f"noisy_{k}" / live[0]["file"]).is_file()
    assert not (finer.folder / "step_1" / live[-1]["file"]).exists()  # that frame was not sculpted


def test_a_decoder_of_another_latent_family_is_refused_with_a_message_and_play_goes_on(taef2, turbo,
                                                                                      tmp_path):
    latents = torch.randn(2, 32, SIZE // 8, SIZE // 8)
    renderer, queue, mailbox = renderer_for(taef2, turbo, tmp_path, sculpt=0.75, latents=latents)
    renderer.prepare()
    try:
        renderer.run_frames(3)
        assert mailbox.latest().index == 2 and renderer.decoding.sculpting is None
        errors = " ".join(renderer.board.errors)
        assert "sculpting off" in errors and "sd15" in errors and "flux2" in errors
    finally:
        renderer.close()


def test_play_loads_the_sculpt_model_prompt_anchors_and_says_why_not(taesd_folder, models, tmp_path):
    from instrument.play import load_session

    said = []
    base = dict(size=(SIZE, SIZE), model=str(taesd_folder), family="sd15", full_model="none",
                cache_dir=str(tmp_path / "cache"), offline=True)
    specs = ["seed:1", 'prompt:"a marble statue"']
    fast, full, latents, names, problems, model = load_session(
        Config(**base, sculpt_model=str(models / "tiny-turbo")), specs, said.append)
    assert names == ["seed:1", "prompt:a marble statue"] and problems == [] and model.family.name == "sd15"
    assert latents.shape == (2, 4, SIZE // 8, SIZE // 8)
    again = load_session(Config(**base, sculpt_model="none"), ['prompt:a marble statue'], said.append)
    assert again[5] is None and torch.equal(again[2][0], latents[1])  # the text's own seed latent
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    for source in (str(broken), "someone/not-cached-model"):
        began = time.monotonic()
        *_, problems, model = load_session(Config(**base, sculpt_model=source), ["seed:1"], said.append)
        assert model is None and len(problems) == 1 and problems[0].startswith("sculpting off: ")
        assert source.split("/")[-1] in problems[0] and time.monotonic() - began < 10


def test_prompt_anchors_steer_the_sculpt_along_the_path_encoded_once(decoder, models, tmp_path):
    from instrument.loop.sculpting import Prompts

    assert Prompts.from_anchors(["seed:1", "dog"]) == Prompts(("",), False)
    assert Prompts.from_anchors(["prompt:a", "dog"], "x") == Prompts(("a",), False)
    assert Prompts.from_anchors(["prompt:a", "prompt:'b c'"]) == Prompts(("a", "b c"), True)
    model = load_sculpt_model(str(models / "tiny-turbo"), device="cpu")
    names = ("prompt:a marble statue", "prompt:marble")
    renderer, queue, mailbox = renderer_for(decoder, model, tmp_path, sculpt=0.75, names=names)
    renderer.prepare()
    try:
        book = renderer.decoding.sculpting.sculptor.prompts
        encoded = book.encoded
        assert encoded == 2  # at the start, not per frame
        renderer.run_frames(2)
        at_start = mailbox.latest()
        queue.put(cc(1, 127, renderer.clock.now()))
        renderer.run_frames(2)
        at_end = mailbox.latest()
        view = renderer.decoding.sculpting.view(renderer.parts.controls.values(0.0), at_end.coords)
        assert view.settings.prompts == ("a marble statue", "marble") and view.settings.prompt_mix == 1.0
        settings = SculptSettings(strength=0.75, steps=2, prompts=view.settings.prompts, prompt_mix=1.0)
        assert np.array_equal(at_end.image, expected_frame(renderer, model, at_end.coords, settings))
        assert not np.array_equal(at_start.image, at_end.image) and book.encoded == encoded
    finally:
        renderer.close()


def test_the_hud_draws_the_step_strip_with_the_step_on_screen_framed(monkeypatch):
    import pygame

    from instrument.display import Display
    from instrument.mailbox import Status

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    thumbs = tuple(np.full((80, 80, 3), 40 * (k + 1), np.uint8) for k in range(3))
    status = Status(phase="playing", sculpt="sculpted: 3 steps at 0.75", steps=thumbs, step_shown=2)
    display = Display(Mailbox(), EventQueue(), lambda: status, window_size=(480, 360))
    display.open()
    try:
        display.pump()
        surface = display.surface
        colours = {tuple(surface.get_at((x, 360 - 10 - 6 - 40))[:3]) for x in range(0, 480)}
        for k in range(3):  # each thumbnail's grey, on the bottom-left panel
            assert (40 * (k + 1),) * 3 in colours
        framed = {tuple(surface.get_at((x, y))[:3]) for x in range(480) for y in range(240, 360)}
        assert (255, 170, 60) in framed
        display.hud = False
        display._draw(status)
        assert (120, 120, 120) not in {tuple(surface.get_at((x, 360 - 56))[:3]) for x in range(480)}
    finally:
        display.close()
        pygame.quit()


def test_a_take_whose_sculpt_model_is_gone_says_so(decoder, turbo, models, tmp_path):
    import shutil

    from instrument.replay import TakeError, rerender

    folder = tmp_path / "model-copy"
    shutil.copytree(models / "tiny-turbo", folder)
    model = load_sculpt_model(str(folder), device="cpu")
    renderer, queue, mailbox = renderer_for(decoder, model, tmp_path, record=str(tmp_path / "take"))
    renderer.prepare()
    try:
        renderer.run_frames(2)
    finally:
        renderer.close()
    shutil.rmtree(folder)
    with pytest.raises(TakeError, match="model-copy"):
        rerender(renderer.takes[0], load=lambda config: (decoder, None), progress=False)


def test_walk_writes_the_sculpted_frames_and_one_folder_per_step(taesd_folder, models, tmp_path):
    from PIL import Image

    from instrument.cli import main

    out = tmp_path / "walk"
    common = ["walk", "seed:1", "seed:2", "--steps", "3", "--size", str(SIZE), "--model", str(taesd_folder),
              "--family", "sd15", "--full-model", "none", "--offline", "--cache-dir", str(tmp_path / "c")]
    assert main([*common, "-o", str(tmp_path / "plain")]) == 0
    assert main([*common, "-o", str(out), "--sculpt", "0.75", "--sculpt-steps", "2",
                 "--sculpt-model", str(models / "tiny-turbo"), "--step-frames"]) == 0
    for folder in ("step_1", "step_2", "noisy_1", "noisy_2"):
        assert sorted(p.name for p in (out / folder).iterdir()) == [f"frame_{k:05d}.png" for k in range(3)]
    same = [np.array_equal(np.asarray(Image.open(out / "step_2" / f"frame_{k:05d}.png")),
                           np.asarray(Image.open(out / f"frame_{k:05d}.png"))) for k in range(3)]
    plain = [np.array_equal(np.asarray(Image.open(tmp_path / "plain" / f"frame_{k:05d}.png")),
                            np.asarray(Image.open(out / f"frame_{k:05d}.png"))) for k in range(3)]
    assert all(same) and not any(plain)  # the last step is the frame; sculpting changed it
    assert json.loads((out / "frames.json").read_text())["sculpt"]["steps"] == 2


def test_a_sculpt_that_is_not_finite_even_in_fp32_shows_the_unsculpted_frame_and_says_so(decoder, turbo,
                                                                                         tmp_path):
    with torch.no_grad():
        turbo.unet.conv_out.bias.fill_(float("nan"))
    renderer, queue, mailbox = renderer_for(decoder, turbo, tmp_path)
    renderer.prepare()
    try:
        renderer.run_frames(2)
        frame = mailbox.latest()
        assert frame.index == 1 and np.array_equal(frame.image, renderer.decoding.render(frame.coords))
        assert any("NaN/Inf" in error and "unsculpted" in error for error in renderer.board.errors)
    finally:
        renderer.close()
    assert renderer.failure is None


def test_the_sculpt_targets_are_judged_from_the_rows():
    from instrument.bench.sculpt import sculpt_checks, sculpt_table

    gpu = {"device": "cuda", "size": 512, "steps": 4, "fps": 61.0, "model": "m", "dtype": "fp16",
           "sculpt": {"steps": 4, "unet_ms": 12.0, "decode_ms": 1.0, "overhead_ms": 3.4}}
    cpu = {"device": "cpu", "size": 256, "steps": 1, "model": "m", "dtype": "fp32", "moving_fps": 31.0,
           "ratio": 1.4, "on_screen": {"median_ms": 900.0},
           "rests": [{"unet_s": 0.5, "decode_s": 0.1, "ratio": 1.4, "moving_fps": 31.0}]}
    met = {c["check"]: c["met"] for c in sculpt_checks([gpu, cpu, {"error": "x", "steps": 1}])}
    assert list(met.values()) == [True, False, True, False]
    assert len(sculpt_table([gpu, cpu])) == 9 and "| 1.4 |" in sculpt_table([gpu, cpu])[-2]
