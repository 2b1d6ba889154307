"""``Scrubber``: a picture with sliders that scrub latent space live, in JupyterLab and VS Code notebooks.

It plays on the same fast path as ``play``: a slider move is a frame's ``Coords``; ``loop.decoding.Decoding``
makes its picture (the frame cache, the fast decoder's frame pipeline; on a CPU a blend of the nearest
decoded frames at once while the exact frame decodes in the background), and when the sliders rest for
``REST_SECONDS`` the full decoder redraws the picture (``loop.refine``). The ``geodesic`` path plays SLERP
until the lab has found its routes (``lab.measure.routes_job``), a batch of decodes at a time, as ``play``
does. Follow-up work runs on the kernel's own event loop (``ticks``); driven from a script, a change waits
for its exact frame instead.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

try:
    import ipywidgets as widgets
except ImportError:  # (the core install has no notebook packages)
    raise ImportError("li.Scrubber needs ipywidgets: pip install 'latent-instrument[notebook]'") from None

from instrument.api.models import Anchors, latents_of
from instrument.config import Config
from instrument.decoders import Autoencoder
from instrument.framecache import FrameCache
from instrument.lab.jobs import Job
from instrument.lab.live import job_line
from instrument.lab.measure import routes_job
from instrument.loop.decoding import Decoding, frame_pipeline, full_pipeline
from instrument.notebook.ticks import Ticks
from instrument.params import LOCK_REGIONS, PATH_KINDS
from instrument.performance import ROUTES_KEY, WALK_FLOOR, Coords
from instrument.render import REST_SECONDS

log = logging.getLogger(__name__)

TICK = 1 / 30  # seconds between follow-up checks while a frame or a redraw is on its way
# The picture travels to the browser as a JPEG without chroma subsampling: a third of a PNG's bytes, and a
# fiftieth of its encoding time at 512 px.
JPEG_QUALITY = 95
# Decoded frames kept for reuse, per scrubber: a notebook may hold several (re-running a cell makes one).
FRAME_CACHE_MB = 64
SETTLE_SECONDS = 120.0


class Scrubber:
    """A picture of ``anchors`` (``Anchors`` or latents [N, C, h, w]) decoded by ``model``, and sliders:
    ``position`` along the path (0 = first anchor, 1 = last), ``path`` (slerp, lerp, loop, spline, walk,
    geodesic: SLERP until its routes are found, the status line says how far),
    ``noise`` (random-walk wandering, in latent std) and ``wander`` (the walk's clock: scrub it), the locks
    (``hold``: the anchor they hold, ``lock_channels``: the first N channels, ``lock_region``), ``offset``
    on ``offset_channel``. ``full``: a full-quality decoder that redraws the picture when the sliders rest.

    Show it by ending a cell with it. Drive it from Python with ``set(position=0.5, noise=0.2)`` or a
    slider's ``.value``; from a controller with ``listen(mapping)``. ``frame`` (uint8 [H, W, 3]),
    ``image`` (PIL), ``latent`` ([C, h, w]), ``coords`` and ``shown`` ("fast" or "full") say what is on
    screen. ``close()`` (or a ``with`` block) stops its decode threads and its MIDI.
    """

    def __init__(self, model: Autoencoder, anchors: Anchors | torch.Tensor, *,
                 full: Autoencoder | None = None, names: list[str] | None = None, seed: int = 0,
                 size: tuple[int, int] | None = None) -> None:
        latents = latents_of(anchors).to(model.device, torch.float32)
        channels = model.family.latent_channels
        if latents.dim() != 4 or len(latents) < 1 or latents.shape[1] != channels:
            raise ValueError(f"{model.label} plays anchors [N, {channels}, h, w], not {tuple(latents.shape)}")
        self.names = list(names or (anchors.names if isinstance(anchors, Anchors) else
                                    [f"anchor {i}" for i in range(len(latents))]))
        f = model.downscale
        decoded = (latents.shape[-1] * f, latents.shape[-2] * f)
        self.size = tuple(size or decoded)
        self.decoding = self._decoding(model, full, latents, decoded, seed)
        self.midi = None
        self._routes: Job | None = None  # the geodesic path's routes being found
        self._routes_failed = ""
        self.frame: np.ndarray | None = None
        self.shown = ""
        self.exact = False
        self._moved = time.monotonic()
        self._quiet = False
        self._ticks = Ticks(self._tick, TICK)
        self._build(channels)
        self.refresh()

    def _decoding(self, model: Autoencoder, full: Autoencoder | None, latents: torch.Tensor,
                  decoded: tuple[int, int], seed: int) -> Decoding:
        """The decode stage as ``play`` builds it: frame pipelines, the frame cache, blends on a CPU."""
        config = Config(size=decoded, seed=seed, full_model="none")
        pipelines = []
        for build, ae in ((frame_pipeline, model), (full_pipeline, full)):
            try:
                pipelines.append(build(ae, self.size, config) if ae is not None else None)
            except Exception as exc:  # the plain decode works everywhere; say why the fast one is off
                log.warning("%s: accelerated decoding off (%s: %s)", ae.label, type(exc).__name__, exc)
                pipelines.append(None)
        fast_frames, full_frames = pipelines
        progressive = fast_frames is not None and fast_frames.asynchronous and model.device.type == "cpu"
        return Decoding(latents, model, full, out_size=self.size, seed=seed,
                        cache=FrameCache(FRAME_CACHE_MB * 2**20), fast_frames=fast_frames,
                        full_frames=full_frames, progressive=progressive)

    def _build(self, channels: int) -> None:
        slider = dict(continuous_update=True, style={"description_width": "96px"})
        self.position = widgets.FloatSlider(0.0, min=0, max=1, step=0.001, readout_format=".3f",
                                            description="position", **slider)
        self.path = widgets.Dropdown(options=PATH_KINDS, value="slerp", description="path")
        self.noise = widgets.FloatSlider(0.0, min=0, max=1, step=0.01, description="noise", **slider)
        self.wander = widgets.FloatSlider(0.0, min=0, max=60, step=0.01, description="wander", **slider)
        self.hold = widgets.Dropdown(options=[(name, i) for i, name in enumerate(self.names)], value=0,
                                     description="locks hold")
        self.lock_channels = widgets.IntSlider(0, min=0, max=channels, description="lock channels", **slider)
        self.lock_region = widgets.Dropdown(options=LOCK_REGIONS, value="none", description="lock region")
        self.offset = widgets.FloatSlider(0.0, min=-3, max=3, step=0.01, description="offset", **slider)
        self.offset_channel = widgets.IntSlider(0, min=0, max=channels - 1, description="offset channel",
                                                **slider)
        names = ("position", "path", "noise", "wander", "hold", "lock_channels", "lock_region", "offset",
                 "offset_channel")
        self.controls: dict[str, widgets.ValueWidget] = {name: getattr(self, name) for name in names}
        for control in self.controls.values():
            control.observe(self._changed, "value")
        self.picture = widgets.Image(format="jpeg", width=self.size[0], height=self.size[1])
        self.status = widgets.Label()
        travel = widgets.VBox([self.position, self.path, self.noise, self.wander])
        locks = widgets.VBox([self.hold, self.lock_channels, self.lock_region, self.offset,
                              self.offset_channel])
        self.widget = widgets.VBox([self.picture, widgets.HBox([travel, locks]), self.status])

    # -- what is on screen -----------------------------------------------------------------------------------

    @property
    def coords(self) -> Coords:
        """The frame's coordinates, from the sliders (the walk path wanders even at noise 0, and the geodesic
        path is SLERP until its routes are found, as in play)."""
        path = self.path.value
        if path == "geodesic" and self.decoding.latents.routes is None:
            path = "slerp"
        noise = self.noise.value + (WALK_FLOOR if path == "walk" else 0.0)
        return Coords(path=path, s=float(self.position.value), noise=noise,
                      walk_t=float(self.wander.value) if noise > 0 else 0.0, home=int(self.hold.value),
                      offset_channel=int(self.offset_channel.value), offset=float(self.offset.value),
                      lock_channels=int(self.lock_channels.value), lock_region=self.lock_region.value)

    @property
    def latent(self) -> torch.Tensor:
        """The latent on screen: [C, h, w] on the model's device."""
        return self.decoding.latent(self.coords)

    @property
    def image(self) -> Image.Image | None:
        return Image.fromarray(self.frame, "RGB") if self.frame is not None else None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- changes ---------------------------------------------------------------------------------------------

    def set(self, **values: Any) -> None:
        """Move several sliders at once (one picture for all): ``set(position=0.5, path="loop")``. Values
        are fitted to each slider's range; a choice it does not offer raises ValueError."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise KeyError(f"no slider called {', '.join(unknown)}; the sliders: {', '.join(self.controls)}")
        self._quiet = True
        try:
            for name, value in values.items():
                self.controls[name].value = _fitted(self.controls[name], value)
        finally:
            self._quiet = False
        self._changed()

    def _changed(self, change: Any = None) -> None:
        if self._quiet:
            return
        self._moved = time.monotonic()
        self.refresh()

    def refresh(self) -> None:
        """Show the picture for the sliders now: the exact frame when it is known, else a blend, with the
        exact frame (and, once the sliders rest, the full decoder's) to follow on the kernel's loop. Outside
        a kernel, wait here for the exact frame."""
        if self._tick() and not self._ticks.start():
            self.settle(full=False)

    def settle(self, full: bool = True, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until the exact frame is on screen and, with ``full`` and a full decoder, its redraw (as if
        the sliders had rested). TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._tick(rest=full) and (full or not self.exact):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the picture did not settle within {timeout:g} s")
            time.sleep(0.005)

    def _tick(self, rest: bool = False) -> bool:
        """Show what is known for the sliders now; True while more is to come (the geodesic's routes, the
        exact frame, or the full decoder's redraw once resting)."""
        notice = self._find_routes()
        decoding, coords = self.decoding, self.coords
        try:
            image, exact = decoding.frame(coords, "fast")
            exact = exact and self._routes is None  # (a SLERP stands in for the geodesic meanwhile)
            resting = exact and (rest or time.monotonic() - self._moved >= REST_SECONDS)
            redrawn = decoding.refinement.follow(coords, resting)
            screen, shown = decoding.on_screen(coords, "fast", image, resting)
        except Exception as exc:  # a bad frame must not end the widget: say why and keep the last picture
            self.status.value = f"frame failed: {type(exc).__name__}: {exc}"
            return False
        if redrawn is not None:
            screen, shown = redrawn, "full"
        self._show(screen, shown, exact)
        if notice:
            self.status.value = notice
        return not exact or (decoding.full is not None and shown != "full")

    def _find_routes(self) -> str:
        """While the geodesic path waits for its routes: one batch of their search (``self._routes`` until
        it ends), and the status line that says how far it is or why it failed; "" where nothing is
        missing (another path, a single anchor, the routes installed)."""
        decoding = self.decoding
        if self.path.value != "geodesic" or decoding.latents.routes is not None or len(decoding.anchors) < 2:
            return ""
        if self._routes_failed:
            return f"geodesic unavailable, SLERP instead: {self._routes_failed}"
        if self._routes is None:  # (backward passes hold many activations: one point at a time on a CPU)
            self._routes = routes_job(decoding.fast.decode, decoding.anchors,
                                     1 if decoding.anchors.device.type == "cpu" else 2)
        try:
            return job_line(ROUTES_KEY, next(self._routes))
        except StopIteration as done:
            decoding.latents.routes = torch.stack([g.points for g in done.value]).to(decoding.anchors)
        except Exception as exc:  # (the same anchors and decoder would fail again: the path stays SLERP)
            self._routes_failed = f"{type(exc).__name__}: {exc}"
        self._routes = None
        return self._find_routes()

    def _show(self, image: np.ndarray, shown: str, exact: bool) -> None:
        if image is not self.frame:
            buffer = io.BytesIO()
            Image.fromarray(image, "RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
            self.picture.value = buffer.getvalue()
            self.frame = image
        self.shown, self.exact = shown, exact
        label = self.decoding.decoder(shown).label
        self.status.value = f"{label} · {'exact' if exact else 'blend of decoded neighbours'}"

    # -- MIDI and the end ------------------------------------------------------------------------------------

    def listen(self, mapping: Any = None, *, ports: list[str] | None = None, api: str = "auto",
               virtual: bool = True) -> Any:
        """Let a controller move the sliders through a mapping file (the ones ``play`` reads; default:
        mappings/default.yaml): see ``MidiLink``. Returns the link (``stop()`` ends it)."""
        from instrument.notebook.midi import MidiLink

        if self.midi is not None:
            self.midi.stop()
        self.midi = MidiLink(self, mapping, ports=ports, api=api, virtual=virtual)
        return self.midi

    def close(self) -> None:
        """Stop the follow-up work, the MIDI link and the decode threads; close the widgets."""
        self._ticks.cancel()
        self.decoding.refinement.drop()  # (a full redraw in flight stops at its next layer)
        try:
            if self.midi is not None:
                self.midi.stop()
        finally:
            self.decoding.close()
            self.widget.close()

    def __enter__(self) -> Scrubber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fitted(control: widgets.ValueWidget, value: Any) -> Any:
    """``value`` as ``control`` takes it: clamped into a slider's range, or one of a dropdown's choices."""
    if isinstance(control, widgets.Dropdown):
        choices = [option[1] if isinstance(option, tuple) else option for option in control.options]
        if value not in choices:
            raise ValueError(f"{control.description}: {value!r} is not one of {choices}")
        return value
    kind = int if isinstance(control, widgets.IntSlider) else float
    return kind(min(max(kind(value), control.min), control.max))
