"""A take played with every piece of the craft (sound from a file, a scene stored and recalled, tap tempo, a
beat-quantised ``next``, a gesture loop on the MIDI clock, master and blackout) re-renders exactly: from
its log, from the sound file again (``--audio``, the sound muxed into the video), and with the output
stage (``--master``) as the screen showed it."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import mido
import numpy as np
import pytest
import torch
from PIL import Image
from render.conftest import render_command

from instrument.audio import FeatureExtractor, open_audio
from instrument.config import Config
from instrument.events import ControlEvent, EventQueue
from instrument.loop.clock import SteppedClock
from instrument.loop.controls import Controls
from instrument.loop.decoding import Decoding
from instrument.mailbox import Mailbox
from instrument.mapping import parse_mapping
from instrument.recorder import FRAMES, read_jsonl
from instrument.replay import rerender

from .conftest import click_track, write_wav

SIZE, FPS, START, FRAMES_PLAYED = 64, 20.0, 100.0, 64
MAPPING = """
version: 1
tempo: {source: clock, bpm: 100}
controls:
  - {audio: high, param: noise, range: [0, 0.4], smoothing: 0, release: 0.2}
  - {cc: 1, param: offset, smoothing: 0}
  - {cc: 7, param: master, smoothing: 0}
  - {cc: 8, param: blackout}
  - {note: 36, scene: recall, slot: 0}
  - {note: 37, param: shift, action: hold}
  - {note: 40, param: tap}
  - {note: 41, param: next}
  - {note: 42, param: quantise, action: set, value: beat}
  - {note: 43, param: gesture_record, action: hold}
"""


def message(kind: str, **fields) -> mido.Message:
    return mido.Message(kind, **fields)


def script(k: int) -> list[mido.Message]:
    """The performer's messages before frame ``k``."""
    out = []
    presses = {2: [("note_on", 37), ("note_on", 36), ("note_off", 36), ("note_off", 37)],  # store scene 1
               **{k: [("note_on", 40), ("note_off", 40)] for k in (4, 12, 20, 28)},  # taps: 150 BPM
               31: [("note_on", 42)], 33: [("note_on", 41)], 38: [("note_on", 36)],  # on the next beat
               44: [("note_on", 43)], 54: [("note_off", 43)]}  # a gesture on `offset`, looped
    for kind, note in presses.get(k, []):
        out.append(message(kind, note=note, velocity=100))
    if k in (3, 9):
        out.append(message("control_change", control=1, value=100 if k == 3 else 20))
    if 44 <= k < 54:
        out.append(message("control_change", control=1, value=10 * (k - 44)))
    if k == 46:
        out.append(message("control_change", control=7, value=80))
    if k == 42:  # blackout: black from frame 62 on (blackout_time 1 s)
        out.append(message("control_change", control=8, value=127))
    if k == 40:
        out.append(message("start"))
    return out


def pulses(k: int) -> list[ControlEvent]:
    """The MIDI clock's pulses before frame ``k``, each at its own time: from frame 40 on, 24 a beat at
    120 BPM."""
    first, gap = START + 40 / FPS, 60 / 120 / 24
    return [ControlEvent(first + p * gap, "midi port", message("clock")) for p in range(400)
            if START + (k - 1) / FPS < first + p * gap <= START + k / FPS]


@pytest.fixture(scope="module")
def played(taef2, shared, tmp_path_factory):
    """(the take, the sound file, the pictures the screen showed, the controls at the end)."""
    from instrument.latent.anchors import load_anchors
    from instrument.render import Renderer

    root = tmp_path_factory.mktemp("craft-take")
    samples, _ = click_track(4.0, 120, first=0.2)
    sound = write_wav(root / "clicks.wav", samples)
    audio = open_audio(sound)
    extractor = FeatureExtractor(audio.rate)
    hops = [f for block in audio.blocks() for f in extractor.feed(block)]
    interval = 1 / FPS
    due: dict[int, list] = {}  # frame -> its audio events (the first frame at or after each hop's time)
    for f in hops:
        due.setdefault(math.ceil(f.at / interval - 1e-9), []).append(f)

    images = [str(shared / "images" / name) for name in ("dog.png", "pastry.png")]
    anchors, errors = load_anchors(images, taef2, (SIZE, SIZE), cache=None)
    assert not errors
    latents = torch.stack([a.latent for a in anchors])
    mapping, errors = parse_mapping(MAPPING, "craft.yaml")
    assert not errors
    queue, mailbox, clock = EventQueue(), Mailbox(), SteppedClock(start=START)
    config = Config(size=(SIZE, SIZE), fps=FPS, record_root=str(root), device="cpu", dtype="fp32",
                    family="flux2", model=str(shared / "models" / "taef2_decoder.pth"), full_model="none")
    renderer = Renderer(config, queue=queue, mailbox=mailbox, clock=clock, record=str(root / "take"),
                        load=lambda say: (taef2, None, latents.clone(), ["dog", "pastry"], []),
                        controls=lambda: Controls(mapping, queue=queue),
                        decoding=lambda *a, **k: Decoding(*a, **{**k, "progressive": False}))
    renderer.prepare()
    shown = []
    try:
        for k in range(FRAMES_PLAYED):
            events = [ControlEvent(START + f.at, "audio:file:clicks.wav", f) for f in due.get(k, [])]
            events += [ControlEvent(clock.now(), "midi port", m) for m in script(k)] + pulses(k)
            for event in sorted(events, key=lambda e: e.time):  # (as they would arrive)
                queue.put(event)
            assert renderer.step()
            shown.append(mailbox.latest().image)
    finally:
        renderer.close()
    return renderer.takes[0], sound, shown, renderer.parts.controls.state


def pictures(folder, lines) -> list[np.ndarray]:
    return [np.asarray(Image.open(folder / line["file"])) for line in lines]


def test_every_piece_was_played(played):
    take, _, shown, state = played
    live = read_jsonl(take / FRAMES)
    assert len(live) == FRAMES_PLAYED and all(line["file"] for line in live)
    assert 0 in state.scenes.slots and state.scenes.recalled == 0
    assert set(state.gestures.loops) == {"offset"} and state.following_clock
    noise = [json.loads(json.dumps(line["coords"]))["noise"] for line in live]
    assert max(noise) > 0.2 and min(noise[5:]) < max(noise)  # the clicks moved it, and it fell between them
    homes = [line["coords"]["home"] for line in live]
    # Taps 8 frames apart (150 BPM) put a beat on frame 28, so beats fall on frames 36 and 44 ...: `next`,
    # pressed with frame 33, lands on frame 35's beat (read at its time); the recall, pressed with frame 38,
    # waits for the beat after it, but the MIDI clock starts on frame 40 and counts again from 0: it lands
    # on that count's first beat (24 pulses at 120 BPM: frame 50).
    assert homes[:35] == [0] * 35 and homes[35:50] == [1] * 15 and homes[50:] == [0] * 14
    assert not shown[-1].any() and pictures(take, live)[-1].any()  # blacked out on screen, not in the take


def test_the_take_renders_again_exactly_from_its_log(played, taef2, tmp_path):
    take, _, _, _ = played
    again = rerender(take, load=lambda c: (taef2, None), progress=False, out=tmp_path / "again")
    live = read_jsonl(take / FRAMES)
    assert again.mismatches == 0 and again.frames == len(live)
    for line, picture in zip(live, pictures(again.folder, read_jsonl(again.folder / FRAMES)), strict=True):
        assert np.array_equal(picture, np.asarray(Image.open(take / line["file"]))), line["n"]


def test_master_renders_what_the_screen_showed(played, taef2, tmp_path):
    take, _, shown, _ = played
    faded = rerender(take, load=lambda c: (taef2, None), progress=False, out=tmp_path / "faded", master=True)
    lines = read_jsonl(faded.folder / FRAMES)
    assert faded.mismatches == 0 and [line["level"] for line in lines][-1] == 0.0
    for k, picture in enumerate(pictures(faded.folder, lines)):
        assert np.array_equal(picture, shown[k]), k


def test_the_features_computed_again_from_the_file_render_the_same(played, taef2, tmp_path):
    take, sound, _, _ = played
    heard = rerender(take, load=lambda c: (taef2, None), progress=False, out=tmp_path / "heard", audio=sound)
    assert heard.mismatches == 0 and heard.audio_offset == pytest.approx(0.0, abs=1e-9)
    live = read_jsonl(take / FRAMES)
    assert [line["coords"] for line in read_jsonl(heard.folder / FRAMES)] == [line["coords"] for line in live]
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(48_000 * 4))
    other = rerender(take, load=lambda c: (taef2, None), progress=False, out=tmp_path / "quiet", audio=quiet)
    assert other.mismatches > 0  # another sound: another show


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is not installed")
def test_render_audio_puts_the_sound_into_the_video_in_time(played, tmp_path):
    take, sound, _, _ = played
    video = tmp_path / "show.mp4"
    done = render_command(take, "--audio", sound, "--audio-start", "0.5", "--video", video, "--out",
                          tmp_path / "show", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "sound: clicks.wav from +0.500 s" in done.stdout
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of",
                            "json", str(video)], capture_output=True, text=True, check=True)
    streams = {s["codec_type"]: float(s["duration"]) for s in json.loads(probe.stdout)["streams"]}
    assert set(streams) == {"video", "audio"}
    assert streams["video"] == pytest.approx(FRAMES_PLAYED / FPS, abs=0.06)
    assert streams["audio"] == pytest.approx(streams["video"], abs=0.1)  # cut at the picture's end
    bad = render_command(take, "--audio", tmp_path / "none.wav", "--out", tmp_path / "bad")
    assert bad.returncode == 2 and "none.wav" in bad.stdout + bad.stderr
