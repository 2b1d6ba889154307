"""The decode stage: a frame's coordinates -> its picture, with the frame cache. Used live and offline.

``Decoding`` holds the anchors, the decoders, their frame pipelines (``accel.FastDecoder``) and the frame
cache. ``begin(coords, which) -> DecodeJob`` starts a frame and ``finish(job)`` gets it, so that the loop can
read the next frame's controls while a GPU decodes; on a CPU, ``progressive`` answers at once with a blend of
the nearest decoded frames while the exact frame decodes in the background (``framecache.Progressive``).
A frame with a sculpt ``view`` (``loop.sculpting``) is keyed by it too, and sculpted before its decode where
the stage runs inline; elsewhere it shows unsculpted until the stage's background has made it. Inline, the
stage's stream batch may show an earlier frame's sculpt: the job's ``key`` is then that frame's, and the
picture is cached, published and recorded as that frame's.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from instrument.accel import make_frame_fn, running_mean
from instrument.config import Config
from instrument.framecache import FrameCache, Progressive
from instrument.latent.fast import FastLatents, Mix
from instrument.loop.refine import Refinement
from instrument.performance import Coords
from instrument.pixels import pixels_to_uint8


def frame_pipeline(fast, out_size: tuple[int, int], config: Config, *, prefetch: bool = True):
    """The speed helper's fixed-shape frame pipeline (``accel.FastDecoder``) for a decoder, used live and by
    ``render`` alike so that both make the same pictures; None for the procedural decoder.
    ``prefetch``: also capture the ``config.prefetch`` batch (the fast decoder's cache filling).

    GPU: compile, CUDA graphs, resize and uint8 on the device (and a ``config.prefetch`` batch pipeline).
    CPU: channels_last and a background decode thread. That thread is a worker the render thread owns: it
    runs only the frames the render thread launches, hands each back through ``collect``, and stops in the
    render thread's ``finally`` (``close``); every other torch call stays in the render thread. MPS: no
    background thread (``accel.default_options``). Built and warmed up in the calling (render) thread.
    """
    if fast.arch == "procedural":
        return None
    frames = make_frame_fn(fast, out_size, config)
    frames.warmup()
    batch = frames.options.prefetch
    if prefetch and batch > 1 and frames.device.type != "cpu":  # capture the batch now, not in mid-play
        frames.decode_batch(torch.zeros(batch, *frames.latent_shape))
    return frames


def full_pipeline(full, out_size: tuple[int, int], config: Config):
    """``frame_pipeline`` for the full decoder (no prefetch batch), or None without one. On a CPU it is not
    warmed up (a full decode takes seconds there): it first runs when a still frame is refined, in its
    background decode thread, so that the loop never waits for it."""
    if full is None or full.arch == "procedural":
        return None
    if full.device.type == "cpu":
        return make_frame_fn(full, out_size, config)
    return frame_pipeline(full, out_size, config, prefetch=False)


@dataclasses.dataclass
class DecodeJob:
    """A frame between ``Decoding.begin`` and ``Decoding.finish``: ``key`` (coords, decoder); ``result``
    (frame, exact) once known; ``frames``: the frame pipeline decoding it meanwhile; ``began``: when it was
    launched (``time.perf_counter``; 0 for a frame from the cache); ``seconds``: after ``finish``, the
    decode's own time, from its launch or the end of the frame queued before it, whichever came later."""

    key: tuple
    result: tuple[np.ndarray, bool] | None = None
    frames: Any = None
    began: float = 0.0
    seconds: float = 0.0
    sculpt: Any = None  # the sculpt.SculptJob of a sculpted frame, settled in finish

    @property
    def decoding(self) -> bool:
        """Is the device still on it (``finish`` will wait)?"""
        return self.frames is not None


class Decoding:
    """Coordinates -> picture: the anchors, the decoders and the frame cache. Used live and offline.

    ``anchors``: [N, C, h, w] float32 diffusion latents on the decoders' device. ``out_size`` = (w, h) of the
    frames handed out. ``fast_frames`` and ``full_frames`` (see ``frame_pipeline``) replace the plain decodes.
    ``progressive`` (live, on a CPU): ``frame`` answers at once with a blend while the exact fast frame
    decodes in the background (needs ``fast_frames``). A frame's latent is ``latent.fast.FastLatents`` of its
    coordinates, live and offline: the same function as ``performance.latent_at``, and the same rounding.
    """

    def __init__(self, anchors: torch.Tensor, fast, full, *, out_size: tuple[int, int], seed: int,
                 cache: FrameCache | None = None, fast_frames=None, full_frames=None,
                 progressive: bool = False) -> None:
        self.anchors = anchors
        self.fast = fast
        self.full = full
        self.out_size = out_size
        self.seed = seed
        self.std = fast.family.latent_std
        self.cache = cache if cache is not None else FrameCache()
        self.fast_frames = fast_frames  # latent [C, h, w] -> [h, w, 3] uint8 at out_size (frame_pipeline)
        self.full_frames = full_frames
        self.latents = FastLatents(anchors, seed=seed, std=self.std)
        self.progressive = Progressive(fast_frames, self.cache) if progressive and fast_frames else None
        self.decode_seconds = {"fast": 0.0, "full": 0.0}  # running estimate of one decode, per decoder
        self._decoded_at = 0.0  # when the last decode finished (time.perf_counter)
        self.refinement = Refinement(self)  # the full decoder's redraw of a still frame
        self.sculpting: Any = None  # loop.sculpting.Sculpting, when the session sculpts

    @property
    def atlas(self):
        """lab.atlas.Atlas for coordinates in atlas mode (set by lab.live.LiveLab), or None."""
        return self.latents.atlas

    @atlas.setter
    def atlas(self, atlas) -> None:
        self.latents.atlas = atlas

    def latent(self, coords: Coords) -> torch.Tensor:
        """The frame's latent [C, h, w] on the anchors' device."""
        with torch.inference_mode():
            return self.latents(coords)

    def which(self, asked: str) -> str:
        """The decoder that serves a request: "full" when asked for and loaded, else "fast"."""
        return "full" if asked == "full" and self.full is not None else "fast"

    def decoder(self, which: str):
        return self.full if self.which(which) == "full" else self.fast

    def key(self, coords: Coords, which: str, view: Any = None) -> tuple:
        """The frame cache's key: (coords, decoder), and the sculpt ``view`` when there is one."""
        return (coords, self.which(which)) if view is None else (coords, self.which(which), view)

    def on_screen(self, coords: Coords, which: str, image: np.ndarray,
                  resting: bool) -> tuple[np.ndarray, str]:
        """(the picture to show for a frame of ``which`` decoder, the decoder it is from): the full
        decoder's redraw instead of the fast frame while the controls rest on a point it has drawn."""
        shown = self.which(which)
        refined = self.key(coords, "full")
        if resting and shown == "fast" and refined[1] == "full" and refined in self.cache:
            return self.cache.get(refined), "full"
        return image, shown

    def image(self, coords: Coords, which: str = "fast") -> np.ndarray:
        """The frame at ``coords`` ([h, w, 3] uint8): see ``frame``."""
        return self.frame(coords, which)[0]

    def frame(self, coords: Coords, which: str = "fast") -> tuple[np.ndarray, bool]:
        """(the frame at ``coords`` [h, w, 3] uint8, exact), from the cache or decoded. Progressive: a blend
        (exact False) while the exact frame decodes in the background. Raises NonFiniteDecode."""
        return self.finish(self.begin(coords, which))

    def begin(self, coords: Coords, which: str = "fast", view: Any = None) -> DecodeJob:
        """``frame`` in two steps: start it here, get it from ``finish``. Where the decoder's frame pipeline
        is asynchronous (a GPU) the decode runs on the device in between, while the caller does other work
        (but no other decode); else the frame is made here. With a sculpt ``view``: the sculpted frame from
        the cache, else sculpted now where the stage runs inline, else the unsculpted frame."""
        if view is not None and self.sculpting is not None:
            image = self.cache.get(self.key(coords, which, view))
            if image is not None:
                self.sculpting.flush()
                return DecodeJob(self.key(coords, which, view), result=(image, True))
            if self.sculpting.inline:
                return self._begin_sculpted(coords, which, view)
        key = self.key(coords, which)
        if self.progressive is not None and key[1] == "fast":
            return DecodeJob(key, result=self.progressive.frame(key, lambda: self.latent(coords)))
        image = self.cache.get(key)
        if image is not None:
            return DecodeJob(key, result=(image, True))
        source = self.source(coords)
        job = DecodeJob(key, began=time.perf_counter())
        frames = self.fast_frames if key[1] == "fast" else self.full_frames
        if key[1] == "full":
            self.refinement.settle()  # (the redraw in flight shares the full pipeline)
        if frames is not None and frames.asynchronous:
            frames.launch(source)
            job.frames = frames
        else:
            job.result = (self.picture(source, key[1]), True)
        return job

    def _begin_sculpted(self, coords: Coords, which: str, view: Any) -> DecodeJob:
        which = self.which(which)
        if which == "full":
            self.refinement.settle()
        began = time.perf_counter()
        # (the sculptor runs under no_grad, as it was compiled and captured: not in inference mode)
        latent, sculpt, (shown, view) = self.sculpting.launch(self.latent(coords), view, coords)
        job = DecodeJob(self.key(shown, which, view), began=began, sculpt=sculpt)
        frames = self.fast_frames if which == "fast" else self.full_frames
        shared = self.progressive is not None and frames is self.fast_frames  # (its decodes are in flight)
        if frames is not None and frames.asynchronous and not shared:
            frames.launch(latent)
            job.frames = frames
        else:
            if shared:
                self.progressive.flush()
            job.result = (self.picture(latent, which), True)
        return job

    def time_left(self, job: DecodeJob) -> float:
        """Seconds until ``job``'s decode is expected to be done (may be < 0), from the device's own time
        per frame (``FastDecoder.device_seconds``): a host-side estimate would count the caller's waits."""
        seconds = getattr(job.frames, "device_seconds", 0.0) or self.decode_seconds[job.key[1]]
        if job.sculpt is not None:
            seconds += self.sculpting.sculptor.device_seconds
        return self._started(job) + seconds - time.perf_counter()

    def _started(self, job: DecodeJob) -> float:
        """When the device started on ``job``: its launch, or the end of the frame queued before it."""
        return max(job.began, self._decoded_at)

    def finish(self, job: DecodeJob) -> tuple[np.ndarray, bool]:
        """The (frame, exact) of a ``begin``: waits for its decode; raises NonFiniteDecode."""
        if not job.began:  # from the cache, or a blend
            return job.result
        image = job.frames.collect() if job.frames is not None else job.result[0]
        if job.sculpt is not None:
            again = self.sculpting.settle(job.sculpt, job.key[0], job.key[2])
            if again is not None:
                image = self.picture(again, job.key[1])
        job.frames, job.sculpt, job.result = None, None, (image, True)
        done = time.perf_counter()
        job.seconds = done - self._started(job)
        self._decoded_at = done
        which = job.key[1]
        self.decode_seconds[which] = running_mean(self.decode_seconds[which], job.seconds)
        self.cache.put(job.key, image)
        return job.result

    def prefetch(self, coords: list[Coords]) -> None:
        """Decode fast frames ahead into the cache: one batch through the frame pipeline when it has a batch
        pipeline (GPU, ``config.prefetch`` > 1), else one at a time."""
        pipeline = self.fast_frames
        if pipeline is None or pipeline.options.prefetch <= 1 or pipeline.device.type == "cpu" \
                or len(coords) < 2:
            for c in coords:
                self.image(c, "fast")
            return
        with torch.inference_mode():
            latents = torch.stack([self.latent(c) for c in coords])
            images = pipeline.decode_batch(latents)
        for c, image in zip(coords, images, strict=True):
            self.cache.put(self.key(c, "fast"), image.copy())  # (a view would keep the whole batch alive)

    def render(self, coords: Coords, which: str = "fast", view: Any = None) -> np.ndarray:
        """Decode ``coords`` (sculpted as ``view`` says) without the cache."""
        if view is not None and self.sculpting is not None:
            return self.picture(self.sculpting.sculpted(coords, view), which)
        return self.picture(self.source(coords), which)

    def source(self, coords: Coords) -> torch.Tensor | Mix:
        """What a frame pipeline decodes for ``coords``: the latent's ``Mix`` where FastLatents has one
        (a CUDA graph sums it on the device), else the latent [C, h, w]."""
        with torch.inference_mode():
            mix = self.latents.mix(coords)
        return mix if mix is not None else self.latent(coords)

    def picture(self, latent: torch.Tensor | Mix, which: str = "fast") -> np.ndarray:
        """latent [C, h, w] (or its Mix) -> [h, w, 3] uint8 through the decoder's frame pipeline, else its
        plain decode."""
        ae = self.decoder(which)
        frames = self.fast_frames if ae is self.fast else self.full_frames
        with torch.inference_mode():
            if frames is not None:
                return frames(latent)
            if isinstance(latent, Mix):
                latent = latent.latent()
            return pixels_to_uint8(ae.decode(latent[None]), self.out_size)[0].cpu().numpy()

    def close(self) -> None:
        """Stop the frame pipelines' decode threads (in the render thread's ``finally``)."""
        self.refinement.close()
        if self.sculpting is not None:
            self.sculpting.close()
        for pipeline in (self.fast_frames, self.full_frames):
            if pipeline is not None:
                pipeline.close()
