"""A session's stages, built once in the render thread from the factories the renderer was given."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instrument.accel import make_frame_fn
from instrument.config import Config
from instrument.framecache import FrameCache
from instrument.loop.controls import Controls, FrameInput
from instrument.loop.decoding import Decoding, frame_pipeline, full_pipeline
from instrument.loop.feedback import Feedback
from instrument.loop.sculpting import build_sculpting
from instrument.loop.status import StatusBoard
from instrument.loop.takes import Takes
from instrument.params import model_ranges
from instrument.performance import Performance
from instrument.recorder import Recorder


@dataclasses.dataclass(frozen=True)
class Factories:
    """What the renderer builds its stages from. ``load(say)`` returns ``(fast, full, anchors [N, C, h, w],
    names, problems)``, and a sixth item, the sculpt model (``sculpt.SculptModel`` or None), when the session
    sculpts (``say(text)`` shows progress); ``controls()`` makes the ``Controls``; ``decoding`` and
    ``pipeline`` make the decode stage and its frame pipelines; ``sculpting`` the sculpt stage
    (``loop.sculpting.build_sculpting``); ``recorder`` a take's writer; ``record`` names a folder to record
    into from the first frame; ``feedback`` gives the lights-and-state hook (its owner, the session, closes
    it)."""

    load: Callable[[Callable[[str], None]], tuple]
    controls: Callable[[], Controls]
    decoding: Callable[..., Decoding] = Decoding
    pipeline: Callable[..., Any] = frame_pipeline
    sculpting: Callable[..., Any] = build_sculpting
    recorder: Callable[..., Recorder] = Recorder
    record: str | None = None
    feedback: Callable[[], Feedback] = Feedback


@dataclasses.dataclass
class Parts:
    """The stages of one session."""

    controls: Controls
    lab: Any  # lab.live.LiveLab: the performance stage (Performance with the lab's measurements)
    decoding: Decoding
    takes: Takes
    names: list[str]
    notice: str  # why the decoder is a stand-in, if it is
    sculpting: Any = None  # loop.sculpting.Sculpting, when the session sculpts
    feedback: Feedback = dataclasses.field(default_factory=Feedback)  # lights and state, after each frame

    def log_input(self, inp: FrameInput, board: StatusBoard) -> None:
        """Log a frame's input into the take and say on the HUD what needs saying."""
        for text in inp.errors:
            board.error(text)
        if inp.mapping_error is not None:
            board.error(inp.mapping_error, key="mapping")
        self.takes.log_events(inp.n, inp.events)
        for event in inp.unmapped:
            board.unmapped(event, self.controls.name, self.controls.path)
        if inp.moved is not None:
            board.moved(*inp.moved)
        if inp.reload is not None:
            board.mapping_changed(Path(self.controls.path).name)
            self.takes.log_record({"n": inp.n, "t": inp.t, "mapping": inp.reload,
                                   "file": str(self.controls.path)})

    def close(self, take_grace: float) -> None:
        """Finish the takes (waiting up to ``take_grace`` seconds for their writers), stop the decode threads
        and the mapping watcher."""
        try:
            self.takes.finish(take_grace)
        finally:
            self.decoding.close()
            self.controls.close()

    def on_take(self, folder: Path | None) -> None:
        """A take started in ``folder`` (None: it ended): the lab saves what it needs beside it."""
        self.lab.take_folder = folder
        if folder is not None:
            self.lab.save_take(folder)


def out_size(config: Config) -> tuple[int, int]:
    """(w, h) of the frames shown and recorded: ``config.out_size``, else the decode size."""
    return tuple(config.out_size or config.size)


def build_parts(config: Config, make: Factories, board: StatusBoard, *, interval: float,
                say: Callable[[str], None]) -> Parts:
    """Load the decoders and anchors and build every stage (in the render thread)."""
    fast, full, anchors, names, problems, *sculpt_model = make.load(say)
    for problem in problems:
        board.error(problem)
    controls = make.controls()
    controls.fit(model_ranges(anchors.shape[1]))  # (offset_channel spans this model's latent channels)
    size = out_size(config)
    if fast.device.type != "cpu":
        say(f"preparing the {fast.device.type} decoder (compiling: the first start takes a while)")
    fast_frames = _pipeline("accelerated decoding", make.pipeline, fast, size, config, board)
    full_frames = _pipeline("accelerated full decoding", full_pipeline, full, size, config, board)
    # A CPU decodes slower than the display: blends in between, exact frames in the background.
    decoding = make.decoding(anchors, fast, full, out_size=size, seed=config.seed,
                             cache=FrameCache(config.frame_cache_mb * 2**20), fast_frames=fast_frames,
                             full_frames=full_frames, progressive=fast.device.type == "cpu")
    decoding.sculpting = make.sculpting(
        sculpt_model[0] if sculpt_model else None, decoding, names=names, prompt=config.prompt,
        frames=lambda: make_frame_fn(fast, size, config), error=board.error, say=say,
        prompt_cache_dir=Path(config.cache_dir) / "prompts" if config.cache_dir else None)
    performance = Performance(n_anchors=anchors.shape[0], bank_size=config.bank_size)
    parts: list[Parts] = []  # (the takes tell the lab, which logs into the takes)
    takes = Takes(config, decoding=decoding, controls=controls, performance=performance, names=names,
                  start=0.0, interval=interval, error=board.error,
                  on_take=lambda folder: parts[0].on_take(folder), recorder_factory=make.recorder,
                  record_first=make.record)
    from instrument.lab.live import LiveLab

    lab = LiveLab(performance, decoding, names, decode=fast.decode, log_record=takes.log_record,
                  error=board.error, seed=config.seed)
    if config.atlas:
        lab.load_atlas(config.atlas)
    parts.append(Parts(controls, lab, decoding, takes, list(names), fast.notice or "", decoding.sculpting,
                       make.feedback()))
    return parts[0]


def _pipeline(what: str, build: Callable[..., Any], ae: Any, size: tuple[int, int], config: Config,
              board: StatusBoard) -> Any:
    if ae is None:
        return None
    try:
        return build(ae, size, config)
    except Exception as exc:  # the plain path works everywhere; say why the fast one is off
        board.error(f"{what} off: {type(exc).__name__}: {exc}")
        return None
