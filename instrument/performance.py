"""From control values and time to the latent of a frame: the same code live and offline.

Two steps, so that a take re-renders exactly:

1. ``Performance.step(controls, t) -> Coords``: a small deterministic state machine over the sequence of
   (control values, frame time). It integrates what depends on history (path travel from ``speed``, the
   random walk's clock, glides between anchors, freeze) and returns the frame's *coordinates*: a handful of
   numbers, rounded to a fixed grid, that say where the frame sits. Fed the same values at the same times it
   returns the same coordinates; its state is plain numbers.
2. ``latent_at(anchors, coords) -> Tensor[C, h, w]``: a pure function. Equal coordinates give equal latents,
   which is why the frame cache is keyed by them and why a loop's second lap costs no decoding.

The path: ``s`` in [0, 1] runs through the anchors (0 = the first, 1 = the last; closed for ``loop``).
``s = origin + position + travel``, folded back into [0, 1] at the ends of an open path and wrapped on a
loop. ``travel`` grows by ``speed`` path lengths per bar at the tempo. Picking an anchor (a note) moves
``origin`` so that ``s`` lands on that anchor, and the picture glides there from where it was, along a
straight (SLERP) line, with an ease-in-out over ``transition`` seconds (the mapping sets it per note, from
velocity; 0 jumps), ending on a beat when ``sync`` is on. What the position fader does next is
``position_mode``: ``relative`` (the default), it moves on from the picked anchor (its top is no longer the
end of the path); ``absolute``, the picture stays at the picked anchor until the fader moves, then glides
over ``transition`` seconds back to the place on the path the fader names (``held`` meanwhile).

Lab controls (instrument.lab.live measures and installs what they need; a take logs it, so replay agrees):
``bank`` shifts a picked anchor index by ``bank * bank_size``; ``pacing`` re-times path travel and glides
through ``tables`` of measured pixel arc length. A path's table covers the whole path, so travel runs in
*paced* units (the fraction of the path's picture change done) and an anchor sits where that fraction is
reached; whenever the table in use changes (pacing on or off, a table arriving, another path kind) the origin
moves so that the picture stays where it is. While a table is missing (listed in ``wanted``) travel stays
unpaced and a glide waits at its start. The ``geodesic`` path plays once its routes are installed
(``routes_ready``; ``latent_at`` takes them as ``routes``) and SLERP until then. ``atlas`` (once
``atlas_ready``) puts the frame at the atlas cursor instead of on the path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from instrument.latent import geometry

# Coordinates are rounded to these steps, so that a fader's return to a spot hits the frame cache; fine
# enough that equal steps of travel stay equal: on a grid of 1/256 a 30-frame glide's steps vary by ±6%.
S_STEP = 1 / 16384
GLIDE_STEP = 1 / 4096
AMOUNT_STEP = 1 / 512
WALK_STEP = 1 / 1000
WALK_FLOOR = 0.5  # the `walk` path wanders even with the noise control at 0


def _q(x: float, step: float) -> float:
    return round(round(x / step) * step, 9)


def ease(g: float) -> float:
    """Ease in and out: 0 -> 0, 1 -> 1, flat at both ends."""
    g = min(1.0, max(0.0, g))
    return 0.5 - 0.5 * math.cos(math.pi * g)


@dataclass(frozen=True)
class Coords:
    """Where a frame sits in latent space. Hashable: the frame cache's key."""

    path: str  # path kind: slerp, lerp, loop, spline, walk
    s: float  # path parameter in [0, 1]
    glide_from: float = 0.0  # path parameter the current glide started from
    glide: float = 1.0  # eased glide progress, 1 = arrived at s
    noise: float = 0.0  # random-walk amplitude, in latent std
    walk_t: float = 0.0  # the random walk's clock (0 when noise is 0, so that still frames cache)
    offset_channel: int = 0
    offset: float = 0.0  # in latent std
    home: int = 0  # index of the picked anchor: what locks hold
    lock_channels: int = 0
    lock_region: str = "none"
    atlas: bool = False  # at the atlas cursor (atlas_x, atlas_y in [0, 1]) instead of on the path
    atlas_x: float = 0.0
    atlas_y: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Coords:
        return cls(**data)


def anchor_position(k: int, n_anchors: int, loop: bool) -> float:
    """Path parameter of anchor ``k`` among ``n_anchors``."""
    if n_anchors <= 1:
        return 0.0
    return k / n_anchors if loop else k / (n_anchors - 1)


def bank_anchor(anchor: int, bank: int, bank_size: int, n_anchors: int) -> tuple[int, bool]:
    """Anchor ``anchor`` of bank ``bank`` -> (index into the anchors, wrapped). Banks of ``bank_size`` anchors
    (0: no banks) start at ``bank * bank_size``; an index past the last anchor wraps round (wrapped True)."""
    k = int(anchor) + (int(bank) * bank_size if bank_size > 0 else 0)
    n = max(1, n_anchors)
    return k % n, k >= n


ROUTES_KEY = "routes geodesic"  # in ``wanted`` while the geodesic path waits for its routes


def path_key(kind: str) -> str:
    """Pacing-table key of the whole path of this kind (``walk`` wanders around the slerp path)."""
    return f"path {'slerp' if kind == 'walk' else kind}"


def glide_key(kind: str, start: float, end: float) -> str:
    """Pacing-table key of the glide from path position ``start`` to ``end`` (a SLERP between them)."""
    return f"glide {'slerp' if kind == 'walk' else kind} {round(start, 9)!r} {round(end, 9)!r}"


def fold(s: float, loop: bool) -> float:
    """Bring a path parameter into [0, 1]: wrap around a loop, bounce off the ends of an open path."""
    if loop:
        return s % 1.0
    s = s % 2.0
    return 2.0 - s if s > 1.0 else s


@dataclass
class Performance:
    """The state behind ``step``. Create one per session (live) or per re-render, with the same arguments.

    ``controls`` passed to ``step`` maps every name in ``instrument.params.PARAMS`` to its current (smoothed)
    value, plus ``tempo`` (beats per minute in effect) and ``beat`` (beat position at ``t``, float).
    ``pick`` is an anchor index chosen in this frame (a note), even when it equals the current one; a
    negative ``pick`` is the anchor after the current one (the ``next`` control).
    """

    n_anchors: int
    travel: float = 0.0  # path lengths travelled by `speed`
    origin: float = 0.0  # path parameter of position 0
    home: int | None = None  # the picked anchor (None before the first step)
    glide_from: float = 0.0
    glide_start: float = 0.0
    glide_end: float = 0.0
    walk_t: float = 0.0
    last_t: float | None = None
    last_s: float = 0.0
    frozen: Coords | None = None
    bank_size: int = 0  # anchors per bank (0: banks off)
    glide_to: float = 0.0  # path position the current glide was aimed at (keys its pacing table)
    atlas_ready: bool = False  # an atlas is installed: the `atlas` toggle may use it
    routes_ready: bool = False  # the geodesic path's routes are installed: the `geodesic` path may play
    paced: str = ""  # key of the table that paced travel in the last step ("" unpaced)
    tables: dict[str, Any] = field(default_factory=dict)  # pacing tables by key, shared by copies
    wanted: tuple[str, ...] = ()  # keys of tables the last step would have used but lacked
    wrapped: str = ""  # the last bank pick that ran past the anchors, in words
    held: float | None = None  # absolute position mode: the fader's value when an anchor was picked

    def copy(self) -> Performance:
        return dataclasses.replace(self)

    def step(self, controls: Mapping[str, Any], t: float, pick: int | None = None) -> Coords:
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        self.wanted = ()
        if controls["freeze"] and self.frozen is not None:
            # Hold the picture and its clocks: unfreezing continues where freezing stopped.
            self.glide_start += dt
            self.glide_end += dt
            return self.frozen
        path = str(controls["path"])
        wanted = []
        if path == "geodesic" and not self.routes_ready:
            wanted.append(ROUTES_KEY)
            path = "slerp"
        loop = path == "loop"
        n = max(1, self.n_anchors)
        bars_per_second = float(controls["tempo"]) / 60.0 / 4.0
        self.travel += float(controls["speed"]) * bars_per_second * dt
        self.walk_t += float(controls["walk_speed"]) * dt
        position = float(controls["position"])
        pacing = bool(controls.get("pacing")) and self.n_anchors > 1
        table = self.tables.get(path_key(path)) if pacing else None
        if pacing and table is None:
            wanted.append(path_key(path))

        first = self.home is None
        aimed = pick is not None and not first  # a glide starts: its pacing table is keyed by where it goes
        if first:
            self.home = int(controls["anchor"]) % n
            self.origin = anchor_position(self.home, n, loop)
        self._keep_place(path_key(path) if table is not None else "", loop, position)
        if pick is not None and pick < 0 and not first:  # ``next`` (control.NEXT): the anchor after this one
            self._pick((self.home + 1) % n, controls, t, loop, position, table)
        elif pick is not None and not first:
            bank = int(controls.get("bank", 0))
            k, wrapped = bank_anchor(int(pick), bank, self.bank_size, n)
            if wrapped:
                asked = int(pick) + bank * self.bank_size
                self.wrapped = (f"bank {bank + 1} pad {int(pick) + 1} is anchor {asked + 1}, but there are "
                                f"{n} anchors: playing anchor {k + 1}")
            self._pick(k, controls, t, loop, position, table)
        aimed = self._absolute(controls, t, position) or aimed

        s = fold(self.origin + position + self.travel, loop)
        if table is not None:
            s = float(table(s))
        s = _q(s, S_STEP)
        if aimed:
            self.glide_to = s
        glide = self._glide(t, path, pacing, wanted) if t < self.glide_end else 1.0
        self.wanted = tuple(wanted)
        self.last_s = s if glide >= 1.0 else self.glide_from + (s - self.glide_from) * glide
        noise = float(controls["noise"]) + (WALK_FLOOR if path == "walk" else 0.0)
        noise = _q(noise, AMOUNT_STEP)
        coords = Coords(
            path=path,
            s=s,
            glide_from=self.glide_from if glide < 1.0 else 0.0,
            glide=glide,
            noise=noise,
            walk_t=_q(self.walk_t, WALK_STEP) if noise > 0 else 0.0,
            offset_channel=int(controls["offset_channel"]),
            offset=_q(float(controls["offset"]), AMOUNT_STEP),
            home=self.home,
            lock_channels=int(controls["lock_channels"]),
            lock_region=str(controls["lock_region"]),
        )
        if controls.get("atlas") and self.atlas_ready:
            coords = dataclasses.replace(coords, atlas=True, glide_from=0.0, glide=1.0,
                                         atlas_x=_q(float(controls["atlas_x"]), AMOUNT_STEP),
                                         atlas_y=_q(float(controls["atlas_y"]), AMOUNT_STEP))
        self.frozen = coords if controls["freeze"] else None
        return coords

    def _glide(self, t: float, path: str, pacing: bool, wanted: list[str]) -> float:
        """Progress of the glide in progress at ``t``: eased, or paced by its table (constant picture
        change), waiting at the start while that table is missing (its key added to ``wanted``)."""
        u = (t - self.glide_start) / (self.glide_end - self.glide_start)
        if not pacing:
            return _q(ease(u), GLIDE_STEP)
        key = glide_key(path, self.glide_from, self.glide_to)
        table = self.tables.get(key)
        if table is None:
            wanted.append(key)
            self.glide_start, self.glide_end = t, t + self.glide_end - self.glide_start
            return 0.0
        return _q(float(table(min(1.0, max(0.0, u)))), GLIDE_STEP)

    def _keep_place(self, key: str, loop: bool, position: float) -> None:
        """Pace travel with the table ``key`` ("" unpaced) from now on, moving the origin so that the path
        position s stays where the last step's table put it."""
        if key == self.paced:
            return
        old, new = self.tables.get(self.paced), self.tables.get(key)
        raw = self.origin + position + self.travel
        u = fold(raw, loop)
        s = float(old(u)) if old is not None else u
        shift = (float(new.progress(s)) if new is not None else s) - u
        backwards = not loop and raw % 2.0 > 1.0  # an open path's travel is on its way back
        self.origin += -shift if backwards else shift
        self.paced = key

    def _absolute(self, controls: Mapping[str, Any], t: float, position: float) -> bool:
        """``position_mode`` absolute: hold the picked anchor until the fader moves, then glide back to the
        place it names. True when that glide starts now."""
        if controls.get("position_mode") != "absolute":
            self.held = None
            return False
        if self.held is None:
            if self.origin != 0.0:  # (an anchor picked before the mode changed, or the first anchor)
                self.held = position
            return False
        if position == self.held:
            return False
        self.held = None
        self.glide_from, self.origin = self.last_s, 0.0
        self.glide_start, self.glide_end = t, t + float(controls["transition"])
        return True

    def _pick(self, k: int, controls: Mapping[str, Any], t: float, loop: bool, position: float,
              table: Any) -> None:
        # Start the glide where the picture is now (approximated on the path during a glide in progress).
        self.glide_from = self.last_s
        self.home = k
        spot = anchor_position(k, self.n_anchors, loop)
        self.origin = (float(table.progress(spot)) if table is not None else spot) - position - self.travel
        duration = float(controls["transition"])  # the mapping sets it per note (from velocity, or 0: jump)
        end = t + duration
        if controls.get("sync") and duration > 0:
            beats_per_second = float(controls["tempo"]) / 60.0
            beat = float(controls["beat"])
            end = t + (math.ceil(beat + duration * beats_per_second - 1e-6) - beat) / beats_per_second
        self.glide_start, self.glide_end = t, end
        self.held = position if controls.get("position_mode") == "absolute" else None


def latent_at(anchors: torch.Tensor, coords: Coords, *, seed: int = 0, std: float = 1.0,
              atlas: Any = None, routes: torch.Tensor | None = None) -> torch.Tensor:
    """Anchors [N, C, h, w] (diffusion space) and coordinates -> the frame's latent [C, h, w].

    Works on the anchors' device and dtype. ``seed`` seeds the random walk; ``std`` is the family's latent
    std (noise and offsets are measured in it). ``atlas`` (an ``instrument.lab.atlas.Atlas``) places
    coordinates with ``atlas`` set; it must be given for them. ``routes`` [N - 1, K, C, h, w] (the control
    points of each segment, ``geometry.route_point``) place the ``geodesic`` path; they must be given for it.
    """
    kind = "slerp" if coords.path == "walk" else coords.path
    if coords.atlas:
        if atlas is None:
            raise ValueError("atlas coordinates, but no atlas is loaded")
        latent = atlas.from_map(coords.atlas_x, coords.atlas_y).to(anchors.device, anchors.dtype)
        start = latent
    elif anchors.shape[0] == 1:
        latent = anchors[0]
        start = anchors[0]
    elif kind == "geodesic":
        if routes is None:
            raise ValueError("geodesic coordinates, but no routes are loaded")
        routes = routes.to(anchors.device, anchors.dtype)
        latent = geometry.route_point(routes, coords.s)
        start = geometry.route_point(routes, coords.glide_from) if coords.glide < 1.0 else latent
    else:
        latent = geometry.path_point(anchors, coords.s, kind)
        start = geometry.path_point(anchors, coords.glide_from, kind) if coords.glide < 1.0 else latent
    if coords.glide < 1.0:
        latent = geometry.slerp(start, latent, coords.glide)
    if coords.noise > 0:
        wander = geometry.walk_offset(coords.walk_t, seed, tuple(latent.shape), 1.0)
        latent = latent + coords.noise * std * wander.to(latent.device, latent.dtype)
    if coords.offset != 0:
        latent = geometry.add_offset(latent, coords.offset_channel % latent.shape[0], coords.offset, std)
    if coords.lock_channels > 0 or coords.lock_region != "none":
        held = anchors[coords.home % anchors.shape[0]]
        latent = geometry.apply_locks(latent, held, coords.lock_channels, coords.lock_region)
    return latent
