"""The sculpt stage of the loop: a few UNet steps between a frame's latent and its decode.

A frame's sculpt comes from its control values and the prompt anchors, ``Sculpting.view(values, coords) ->
View``: ``sculpt`` (the strength), ``steps``, ``noise_seed``, ``noise_mix``, ``prompt_mix``, ``guidance``,
and which step the screen shows (``step_view``, ``step_noisy``). At ``sculpt`` 0 there is no View: the frame
is exactly the unsculpted one and the UNet is not called. A View is part of the frame's cache key and comes
from control values alone, so a take's re-render computes the same Views.

How it runs depends on the device (``Sculpting.inline``):

- inline (CUDA, MPS, and a CPU sculptor without its thread, as ``render`` uses): ``Decoding`` sculpts every
  frame (``launch``) and decodes its view; on CUDA the steps and the decode are queued on the stream back to
  back, and ``settle`` checks the sculpt once the frame is in (a non-finite one is made again in fp32).
  With the sculptor's ``stream`` option (on by default on CUDA) a sculpt of k >= 2 steps runs as a stream
  batch (``sculpt.stream``): one UNet call a frame, and the picture is the sculpt of the frame k - 1 before.
  ``launch`` says which frame that is, and the loop publishes, caches and records the picture as that
  frame's (its coordinates and View), so that the HUD and the takes stay true. A View that shows a step
  (``step_view``: every step of one frame) is sculpted whole, and so is the first frame after anything that
  flushes the stream (``StreamBatch``; a frame from the cache flushes it too: it is newer than the frames in
  flight). So a knob that moves from rest (still frames come from the cache) shows its first frame at once;
  only a moving picture trails.
- in the background (a CPU, where the steps take longer than a frame): frames are shown unsculpted at the
  display's rate; when the controls rest on a point (a frame with the key of the frame before it),
  ``Backdrop`` sculpts it in the Sculptor's thread and decodes it on a frame pipeline of its own, and the loop
  shows it as soon as it lands. Moving on drops the sculpt (it stops inside the UNet). After the picture on
  screen every step's picture is decoded too: the HUD's strip, and ``step_view`` scrubbed at rest from the
  frame cache.

``Strip`` holds the thumbnails of every step's picture for the HUD; ``caption`` says what the screen shows.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from instrument.latent.anchors import prompt_of
from instrument.sculpt import (
    NonFiniteSculpt,
    SculptJob,
    SculptOptions,
    Sculptor,
    SculptResult,
    SculptSettings,
    StreamBatch,
    default_sculpt_options,
)

log = logging.getLogger("instrument.render")

THUMB = 80  # pixels: the height of a strip thumbnail
STRIP_SECONDS = 0.5  # inline, a moving picture's strip is redrawn this often (a decode per step)
GRID = 512  # strength, noise_mix and prompt_mix are rounded to 1/GRID: a knob's way back hits the cache


@dataclasses.dataclass(frozen=True)
class View:
    """A frame's sculpt and what the screen shows of it: ``step`` 0 is the result, 1..k that step's predicted
    clean latent (x0), or with ``noisy`` the noisy latent it started from (x_t). Made by ``make_view``, which
    gives one View per picture (step k's x0 is the result: step 0)."""

    settings: SculptSettings
    step: int = 0
    noisy: bool = False

    def of(self, result: SculptResult) -> torch.Tensor:
        """The latent this View shows of ``result``."""
        return result.view(self.step, self.noisy)

    def steps(self) -> list[View]:
        """The View of every step (1..k), x0 or x_t as this one: the strip."""
        return [make_view(self.settings, k, self.noisy) for k in range(1, self.settings.steps + 1)]

    def with_steps(self, steps: int) -> View:
        """The same sculpt in ``steps`` steps, showing the step at the same share of the way."""
        settings = dataclasses.replace(self.settings, steps=steps)
        step = self.step and max(1, round(self.step * steps / self.settings.steps))
        return make_view(settings, step, self.noisy)

    def to_json(self) -> dict[str, Any]:
        return {**self.settings.to_json(), "step_view": self.step, "step_noisy": self.noisy}


def make_view(settings: SculptSettings, step: int, noisy: bool) -> View:
    """The View of ``step`` (clamped to 0..k) of ``settings``; equal pictures give equal Views."""
    k = settings.steps
    step = min(max(int(step), 0), k)
    noisy = bool(noisy) and step > 0
    return View(settings, 0 if step == k and not noisy else step, noisy)


def _grid(x: float) -> float:
    return round(x * GRID) / GRID


@dataclasses.dataclass(frozen=True)
class Prompts:
    """The text of a session's sculpts: ``texts`` in anchor order, and ``along_path``: every anchor is a
    prompt anchor, so the path itself moves through the prompts (else the ``prompt_mix`` control does)."""

    texts: tuple[str, ...] = ("",)
    along_path: bool = False

    @classmethod
    def from_anchors(cls, names: Sequence[str], default: str = "") -> Prompts:
        """From the anchors' names (``prompt:TEXT`` ones carry prompts); ``default`` when none does."""
        texts = [prompt_of(name) for name in names]
        carried = tuple(t for t in texts if t)
        if not carried:
            return cls((default,), False)
        return cls(carried, len(carried) == len(texts) and len(carried) > 1)

    def at(self, values: dict[str, Any], coords: Any) -> tuple[tuple[str, ...], float]:
        """(prompts, mix) of a frame: along the path at the frame's point (the glide's way included), or at
        the ``prompt_mix`` control."""
        if not self.along_path or coords.atlas:
            return self.texts, _grid(min(max(float(values.get("prompt_mix", 0.0)), 0.0), 1.0))
        s = coords.glide_from + coords.glide * (coords.s - coords.glide_from)
        if coords.path == "loop":  # a closed path: the first prompt again at its end
            return (*self.texts, self.texts[0]), round(s % 1.0, 6)
        return self.texts, round(min(max(s, 0.0), 1.0), 6)

    def to_json(self) -> dict[str, Any]:
        return {"prompts": list(self.texts), "along_path": self.along_path}


def thumbnail(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> the same picture THUMB pixels high."""
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, round(w * THUMB / h)), THUMB), Image.BILINEAR)
    return np.asarray(small)


class Strip:
    """Thumbnails of every step's picture of one sculpt, step 1 first, for the HUD."""

    def __init__(self) -> None:
        self.base: tuple | None = None  # (coords, decoder, settings, noisy) the strip shows
        self.keys: list[tuple] = []
        self._thumbs: dict[tuple, np.ndarray] = {}

    def expect(self, base: tuple, keys: list[tuple]) -> None:
        """The strip of ``base`` is being made: frames of ``keys`` will come."""
        if base != self.base:
            self.base, self.keys, self._thumbs = base, list(keys), {}

    def add(self, key: tuple, image: np.ndarray) -> None:
        if key in self.keys and key not in self._thumbs:
            self._thumbs[key] = thumbnail(image)

    def images(self) -> tuple[np.ndarray, ...]:
        """The thumbnails made so far, in step order."""
        return tuple(self._thumbs[k] for k in self.keys if k in self._thumbs)


class Sculpting:
    """The sculpt stage of a session (see the module docstring). Built by ``build_sculpting``; belongs to
    the render thread. ``decoding`` is the session's ``loop.decoding.Decoding``, whose ``sculpting`` it is;
    ``frames`` (background only) the frame pipeline that decodes the sculpted frames; ``source`` says where
    the model came from (a take's sidecar); ``error(text)`` shows a problem."""

    def __init__(self, sculptor: Sculptor, decoding: Any, prompts: Prompts, *, source: dict[str, Any],
                 frames: Any = None, error: Callable[[str], None] = log.error) -> None:
        self.sculptor = sculptor
        self.decoding = decoding
        self.prompts = prompts
        self.source = source
        self.error = error
        self._cuda = sculptor.device.type == "cuda"
        self.inline = self._cuda or not sculptor.asynchronous
        self.backdrop = None if self.inline else Backdrop(self, frames)
        self.stream = StreamBatch(sculptor) if self.inline and sculptor.options.stream else None
        self.strip = Strip()
        self._last: tuple[tuple, SculptResult] | None = None  # ((coords, settings), result): the newest
        self._previous: tuple | None = None  # the frame key of the frame before
        self._strip_at = 0.0
        self._caption = ""
        self._shown_step = 0

    # -- a frame's sculpt ------------------------------------------------------------------------------------

    def view(self, values: dict[str, Any], coords: Any) -> View | None:
        """The View of a frame with control ``values`` at ``coords``; None at sculpt 0."""
        strength = _grid(min(max(float(values.get("sculpt", 0.0)), 0.0), 1.0))
        if strength <= 0.0:
            return None
        texts, mix = self.prompts.at(values, coords)
        numbers = {**values, "sculpt": strength, "prompt_mix": mix,
                   "noise_mix": _grid(min(max(float(values.get("noise_mix", 0.0)), 0.0), 1.0))}
        settings = SculptSettings.from_params(numbers, texts)
        return make_view(settings, int(values.get("step_view", 0)), bool(values.get("step_noisy", False)))

    def launch(self, latent: torch.Tensor, view: View,
               coords: Any) -> tuple[torch.Tensor, SculptJob, tuple[Any, View]]:
        """Inline: start sculpting ``latent`` [C, h, w], the frame at ``coords``. Returns (the latent to
        decode: queued on the device's stream where the device allows it, else made now; the job, for
        ``settle``; (coords, View) of the frame it shows: this one, or with the stream batch an earlier
        one)."""
        if self.stream is not None and view.step == 0:
            job, (coords, view) = self.stream.push(latent, view.settings, (coords, view))
        else:
            self.flush()
            job = self.sculptor.begin(latent, view.settings)
        queued = self.sculptor.queued_view(job, view.step, view.noisy)
        if queued is None:
            queued = view.of(self.sculptor.finish(job))
        return queued, job, (coords, view)

    def flush(self) -> None:
        """The frame on screen is newer than the stream batch's frames in flight (or of another kind): drop
        them, so that the picture never steps back in time."""
        if self.stream is not None:
            self.stream.flush()

    def warmup(self, steps: Sequence[int]) -> None:
        """Compile and capture now what the first frames would: one step, and the stream batch of each of
        ``steps`` (those >= 2) where there is one."""
        self.sculptor.warmup()
        if self.stream is not None:
            for k in steps:
                if k >= 2:
                    self.stream.warmup(k)

    def settle(self, job: SculptJob, coords: Any, view: View) -> torch.Tensor | None:
        """Inline, once the frame of ``launch`` is decoded: finish its sculpt. Returns a latent to decode
        instead (the sculpt was made again in fp32; or, when even that was not finite, the unsculpted latent),
        else None."""
        fallbacks = self.sculptor.fallbacks
        try:
            result = self.sculptor.finish(job)
        except NonFiniteSculpt as exc:
            self.error(f"sculpt: {exc}; showing the unsculpted frame")
            return job.latent
        self._last = ((coords, view.settings), result)
        return view.of(result) if self.sculptor.fallbacks != fallbacks else None

    def result(self, coords: Any, settings: SculptSettings) -> SculptResult:
        """The sculpt of ``coords`` (the newest one again when it is the same), made now."""
        if self._last is None or self._last[0] != (coords, settings):
            self._last = ((coords, settings), self.sculptor(self.decoding.latent(coords), settings))
        return self._last[1]

    def sculpted(self, coords: Any, view: View) -> torch.Tensor:
        """The latent ``view`` shows at ``coords``, made now (offline: ``render``, ``walk``)."""
        return view.of(self.result(coords, view.settings))

    def step_pictures(self, coords: Any, which: str, view: View) -> list[tuple[str, np.ndarray]]:
        """(folder, picture) of every step at ``coords``: ``step_K`` its predicted clean latent, ``noisy_K``
        the noisy one it started from (the sculptor's snapshots, for ``render --step-frames``)."""
        result = self.result(coords, view.settings)
        out = []
        for k in range(1, view.settings.steps + 1):
            out.append((f"step_{k}", self.decoding.picture(result.x0s[k - 1], which)))
            out.append((f"noisy_{k}", self.decoding.picture(result.xts[k - 1], which)))
        return out

    # -- between frames --------------------------------------------------------------------------------------

    def after_frame(self, coords: Any, which: str, view: View | None, shown_key: tuple | None,
                    resting: bool) -> np.ndarray | None:
        """Spare time after a frame at ``coords`` (``shown_key``: the key of the picture shown, None if it
        failed): the background sculpt, the strip, the caption. Returns a sculpted frame of this very point
        that just landed (the loop shows it), else None. Inline, the strip and the caption follow the frame
        whose sculpt is on screen (the stream batch's is an earlier frame's)."""
        if self.backdrop is None and shown_key is not None and len(shown_key) == 3:
            coords, view = shown_key[0], shown_key[2]
        key = self.decoding.key(coords, which, view)
        still, self._previous = key == self._previous, key
        landed = None
        due = resting or self._cuda and time.monotonic() - self._strip_at >= STRIP_SECONDS
        if self.backdrop is not None:
            landed = self.backdrop.follow(coords, view if which == "fast" else None, still)
        elif view is not None and due:
            self._inline_strip(coords, which, view)
        self._describe(key, view, which, key if landed is not None else shown_key)
        return landed

    def _inline_strip(self, coords: Any, which: str, view: View) -> None:
        """Decode every step's picture of the frame's sculpt (one batch where the pipeline has one)."""
        base = (coords, which, view.settings, view.noisy)
        if self.strip.base == base:
            return
        self._strip_at = time.monotonic()
        decoding, views = self.decoding, view.steps()
        keys = [decoding.key(coords, which, v) for v in views]
        self.strip.expect(base, keys)
        result = self.result(coords, view.settings)
        latents = [v.of(result) for v in views]
        frames = decoding.fast_frames if decoding.which(which) == "fast" else decoding.full_frames
        if frames is not None and frames.device.type != "cpu" and frames.options.prefetch > 1:
            with torch.inference_mode():
                images = [image.copy() for image in frames.decode_batch(torch.stack(latents))]
        else:
            images = [decoding.picture(latent, which) for latent in latents]
        for key, image in zip(keys, images, strict=True):
            decoding.cache.put(key, image)
            self.strip.add(key, image)

    def _describe(self, key: tuple, view: View | None, which: str, shown_key: tuple | None) -> None:
        if view is None:
            self._caption, self._shown_step = "", 0
            return
        s = view.settings
        what = f"{s.steps} step{'s' * (s.steps > 1)} at {s.strength:.2f}"
        if view.step:
            what += f", showing step {view.step} ({'x_t' if view.noisy else 'x0'})"
        elif self.stream is not None and self.stream.delay:
            what += f", stream batch ({self.stream.delay} frame{'s' * (self.stream.delay > 1)} behind)"
        self._shown_step = view.step or s.steps
        if shown_key is not None and len(shown_key) == 3:
            self._caption = f"sculpted: {what}"
        elif self.backdrop is not None and self.backdrop.wanted == key:
            self._caption = f"unsculpted, sculpting… ({what})"
        elif self.backdrop is not None and which != "fast":
            self._caption = "unsculpted: on this device the fast decoder shows sculpted frames"
        else:
            self._caption = f"unsculpted: sculpts when the controls rest ({what})"

    def status(self) -> dict[str, Any]:
        """The stage's Status fields: ``sculpt`` (the caption), ``steps`` (thumbnails), ``step_shown``."""
        if not self._caption:
            return {}
        return {"sculpt": self._caption, "steps": self.strip.images(), "step_shown": self._shown_step}

    def close(self) -> None:
        """Stop the sculptor's thread and the sculpted frames' pipeline (the render thread's ``finally``)."""
        try:
            if self.backdrop is not None:
                self.backdrop.close()
        finally:
            self.sculptor.close()


class Backdrop:
    """A CPU's sculpted frames, made beside the loop while the controls rest (see the module docstring).

    ``follow`` after every frame takes in what landed, drops what the controls moved away from and starts
    the sculpt of a still point. The sculpt runs in the Sculptor's thread; the decodes run on ``frames``, a
    frame pipeline of the fast decoder with a thread of its own (the loop's pipeline is busy with the
    unsculpted frames), the picture on screen first, then every step's.
    """

    def __init__(self, stage: Sculpting, frames: Any) -> None:
        self.stage = stage
        self.frames = frames
        self.wanted: tuple | None = None  # the key of the point the controls rest on
        self.landed = 0  # sculpted frames shown
        self.landed_at = 0.0  # when the last one landed (time.perf_counter)
        self.sculpt_seconds = 0.0  # the last sculpt's own time, its steps in the sculptor's thread
        self.decode_seconds = 0.0  # the last frame shown's decode, from its launch to its landing
        self._job: SculptJob | None = None
        self._job_base: tuple | None = None  # (coords, settings) of the job
        self._result: tuple[tuple, SculptResult] | None = None
        self._todo: collections.deque[tuple[tuple, torch.Tensor]] = collections.deque()  # (key, latent)
        self._flight: tuple | None = None  # the key decoding on ``frames``
        self._launched = 0.0  # when it was launched (time.perf_counter)
        self._failed: tuple | None = None  # (coords, settings) whose sculpt raised: not tried again

    def follow(self, coords: Any, view: View | None, still: bool) -> np.ndarray | None:
        decoding = self.stage.decoding
        key = decoding.key(coords, "fast", view) if view is not None else None
        if key != self.wanted:
            self._drop()
        if still and key is not None and key not in decoding.cache:
            self._start(key, coords, view)
        return self._poll(key)

    def _start(self, key: tuple, coords: Any, view: View) -> None:
        base = (coords, view.settings)
        if self.wanted == key or base == self._failed:
            return
        self.wanted = key
        if self._result is not None and self._result[0] == base:  # (scrubbing the steps: no new sculpt)
            self._plan()
        elif self._job_base != base:
            self._job = self.stage.sculptor.begin(self.stage.decoding.latent(coords), view.settings)
            self._job_base = base

    def _drop(self) -> None:
        self.wanted = None
        self._todo.clear()
        if self._job is not None:
            self.stage.sculptor.drop(self._job)
            self._job = self._job_base = None

    def _plan(self) -> None:
        """Queue the decodes of the wanted point's pictures from the sculpt made for it."""
        decoding, strip = self.stage.decoding, self.stage.strip
        coords, _, view = self.wanted
        result = self._result[1]
        steps = view.steps()
        strip.expect((coords, "fast", view.settings, view.noisy),
                     [decoding.key(coords, "fast", v) for v in steps])
        self._todo.clear()
        for v in [view, *(v for v in steps if v != view)]:
            key = decoding.key(coords, "fast", v)
            image = decoding.cache.get(key)
            if image is None:
                self._todo.append((key, v.of(result)))
            else:
                strip.add(key, image)

    def _poll(self, key: tuple | None) -> np.ndarray | None:
        """Take in a finished sculpt and a finished decode, launch the next decode; returns the frame of
        ``key`` if it just landed. Raises what the sculpt or the decode raised (after tidying up)."""
        sculptor, decoding = self.stage.sculptor, self.stage.decoding
        if self._job is not None and sculptor.ready(self._job):
            job, base = self._job, self._job_base
            self._job = self._job_base = None
            try:
                self._result = (base, sculptor.finish(job))
                self.sculpt_seconds = job.seconds
            except Exception:
                self.wanted, self._failed = None, base
                raise
            self._plan()
        landed = None
        if self._flight is not None and self.frames.ready():
            flight, self._flight = self._flight, None
            image = self.frames.collect()
            decoding.cache.put(flight, image)
            self.stage.strip.add(flight, image)
            if flight == key:
                landed = image
                self.landed += 1
                self.landed_at = time.perf_counter()
                self.decode_seconds = self.landed_at - self._launched
        if self._flight is None and self._todo:
            self._flight, latent = self._todo.popleft()
            self.frames.launch(latent)
            self._launched = time.perf_counter()
        return landed

    def close(self) -> None:
        self._drop()
        if self.frames is not None:
            self.frames.close()


def sculpt_options(device: torch.device, background: bool, stream: bool | None = None) -> SculptOptions:
    """The sculptor's options: the device's defaults (``sculpt.default_sculpt_options``), without the CPU
    thread when not ``background`` (a re-render sculpts every frame in turn); ``stream`` True or False
    turns the stream batch on or off (None: the device's default) where the stage runs inline (the CPU's
    sculpt thread makes one still frame at a time: nothing to stream)."""
    options = default_sculpt_options(device)
    if device.type == "cpu" and not background:
        options = dataclasses.replace(options, background=False)
    stream = options.stream if stream is None else stream
    return dataclasses.replace(options, stream=stream and not (device.type == "cpu" and options.background))


def build_sculpting(model: Any, decoding: Any, *, names: Sequence[str], prompt: str = "",
                    frames: Callable[[], Any] | None = None, background: bool = True,
                    stream: bool | None = None, warm_steps: Sequence[int] = (2, 3, 4),
                    prompt_cache_dir: Any = None, error: Callable[[str], None] = log.error,
                    say: Callable[[str], None] = lambda text: None) -> Sculpting | None:
    """The sculpt stage for ``decoding`` with ``model`` (a ``sculpt.SculptModel``; None: no stage), or None
    when the model does not fit the decoder (said through ``error``: the instrument plays on unsculpted).

    ``names``: the anchors' names (prompt anchors carry the prompts); ``prompt``: the prompt without them.
    Prompt embeddings are computed here, once (cached on disk), never per frame. ``frames()`` makes the
    pipeline of the background's sculpted frames (a CPU); ``background`` False sculpts inline on a CPU too.
    ``stream``: the stream batch on or off (None: on where the device's default has it, CUDA). On CUDA the
    UNet is compiled and captured here (the first start takes a while), for one step and for the stream
    batch of each of ``warm_steps`` (another step count compiles when first played).
    """
    from instrument.decoders.autoencoder import ModelLoadError

    if model is None:
        return None
    options = sculpt_options(model.device, background, stream)
    try:
        sculptor = Sculptor(model, tuple(decoding.anchors.shape[1:]), family=decoding.fast.family,
                            options=options, prompt_cache_dir=prompt_cache_dir)
    except (ModelLoadError, ValueError) as exc:
        error(f"sculpting off: {exc}")
        return None
    prompts = Prompts.from_anchors(names, prompt)
    try:
        for text in dict.fromkeys(prompts.texts):
            if text:
                say(f"encoding the prompt {text!r}")
            sculptor.prompts.embedding(text)
    except Exception as exc:  # (no tokenizer offline, a broken encoder): the geometry still sculpts
        error(f"prompts off ({type(exc).__name__}: {exc}); sculpting without a prompt")
        prompts = Prompts()
    # (stream_batch: a frame of k >= 2 steps may show the sculpt of the frame k - 1 before it; its line in the
    # take's frames.jsonl then says which, as "shown")
    source = {"model": model.source, "lora": model.lora, "label": model.label, "family": model.family.name,
              "stream_batch": options.stream, **prompts.to_json()}
    background = None
    if model.device.type != "cuda" and sculptor.asynchronous:
        background = frames() if frames is not None else None
        if background is None:
            sculptor.close()
            error("sculpting off: no frame pipeline for the background's sculpted frames")
            return None
    stage = Sculpting(sculptor, decoding, prompts, source=source, frames=background, error=error)
    if model.device.type == "cuda":
        say(f"preparing the sculpt model {model.label} (compiling: the first start takes a while)")
        stage.warmup(warm_steps)
    return stage


def redraws(parts: Any, frame: Any, shown: str | None, idle: bool,
            error: Callable[[str], None]) -> list[tuple[np.ndarray, str]]:
    """After a frame (``render._Frame``, shown from decoder ``shown``; None: it failed), the better pictures
    of it made beside the loop that just landed, as (picture, decoder): the full decoder's redraw of an
    unsculpted still frame (``loop.refine``; started while ``idle``: nothing queued behind the frame), and a
    sculpted frame from the stage's background. Each one's failure is said through ``error``."""
    out = []
    try:
        still = frame.resting and idle and shown == "fast" and frame.view is None
        redrawn = parts.decoding.refinement.follow(frame.coords, still)
        if redrawn is not None:
            out.append((redrawn, "full"))
    except Exception as exc:
        error(f"full decode: {type(exc).__name__}: {exc}")
    if parts.sculpting is None:
        return out
    try:
        key = frame.job.key if shown is not None and frame.job is not None else None
        sculpted = parts.sculpting.after_frame(frame.coords, frame.which, frame.view, key, frame.resting)
        if sculpted is not None:
            out.append((sculpted, shown or "fast"))
    except Exception as exc:
        error(f"sculpt: {type(exc).__name__}: {exc}")
    return out


def take_sculpting(sidecar: dict[str, Any], decoding: Any, config: Any, *, model: str | None = None,
                   error: Callable[[str], None]) -> Sculpting | None:
    """The sculpt stage to re-render a take with: the model its sidecar names (``model``: another one), on
    the decoder's device, sculpting every frame in turn; None for a take played without one. A model that
    does not load or fit is said through ``error``, which must raise."""
    from instrument.sculpt import load_sculpt_model

    info = sidecar.get("sculpt") or {}
    source = model or info.get("model")
    if not source or source.strip().lower() == "none":
        return None
    lora = config.sculpt_lora or None if model else info.get("lora")
    try:
        loaded = load_sculpt_model(source, lora=lora, family=decoding.fast.family.name,
                                   device=decoding.fast.device, dtype=config.dtype, offline=config.offline)
    except Exception as exc:
        error(f"the sculpt model {source}: {exc}")
        raise
    return build_sculpting(loaded, decoding, names=sidecar.get("anchors", []), prompt=config.prompt,
                           background=False, stream=False, error=error)  # (each frame sculpted whole)


def write_step_frames(stage: Sculpting, out: Any, name: str, coords: Any, which: str, view: View) -> None:
    """Every step's pictures of a frame into ``out/step_K/name`` (predicted clean latent) and
    ``out/noisy_K/name`` (the noisy latent the step started from): one folder per step."""
    from instrument.recorder import atomic_write, encode_png

    for folder, image in stage.step_pictures(coords, which, view):
        (out / folder).mkdir(exist_ok=True)
        atomic_write(out / folder / name, encode_png(image))


def sculpt_view(stage: Sculpting | None, values: dict[str, Any], coords: Any,
                steps: int | None = None) -> View | None:
    """A re-rendered frame's View (``steps``: in that many steps instead), None without sculpting."""
    view = stage.view(values, coords) if stage is not None else None
    return view.with_steps(steps) if view is not None and steps else view
