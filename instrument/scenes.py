"""Scenes: the whole control state stored in a slot and recalled with a crossfade.

A scene holds every parameter of the picture (anchor and bank, path, position, speed, noise, locks, offsets,
lab and sculpt settings: all of ``instrument.params`` but ``SESSION_PARAMS``). ``scene_store`` (or a scene
pad pressed with ``shift`` held) stores the targets the controls aim at; ``scene_recall`` brings them back:
numbers slide there on straight lines over ``scene_fade`` seconds, switches and choices change at once, and
the picture glides to the scene's anchor over the same time (the position fader takes the scene's value at
the start of that glide, so the glide lands on the anchor). A control that moves a parameter during the
crossfade takes it over. ``quantise`` makes a recall wait for the next beat or bar.

``SceneBank`` is part of the control state (a take's snapshot holds it; store and recall are control
events, so a take re-renders them). ``SceneFile`` keeps a session's bank in a JSON file beside its mapping:
``my.yaml`` -> ``my.scenes.json`` (for a shipped preset, in the user's config folder).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instrument.errors import UserError
from instrument.params import PARAMS, SESSION_PARAMS

if TYPE_CHECKING:
    from instrument.control import ControlState

MAX_FILE_BYTES = 1 << 20  # 128 scenes of every parameter fit in 100 KB
SCENE_FORMAT = "latent-instrument scenes"
SCENE_SLOTS = int(PARAMS["scene_recall"].high) + 1


class SceneError(UserError):
    """A scenes file that cannot be read; the message names the file."""


def scene_params() -> list[str]:
    """The parameters a scene holds."""
    return [name for name, p in PARAMS.items() if p.kind != "trigger" and name not in SESSION_PARAMS]


class SceneBank:
    """Stored scenes by slot (0..127), the crossfades in progress, and what to say about them."""

    def __init__(self) -> None:
        self.slots: dict[int, dict[str, Any]] = {}
        self.fades: dict[str, list[float]] = {}  # param -> [from, to, start time, end time]
        self.recalled: int | None = None
        self.stored = 0  # stores so far: the scene file saves when it grows
        self.said = ""  # the last store or recall, in words (the HUD)

    def store(self, state: ControlState, slot: int) -> None:
        scene = {}
        for name in scene_params():
            value = state.target(name)
            scene[name] = int(round(value)) if PARAMS[name].kind == "integer" else value
        self.slots[slot] = scene
        self.stored += 1
        self.said = f"stored scene {slot + 1}"

    def recall(self, state: ControlState, slot: int, time: float) -> None:
        """Bring back scene ``slot`` from ``time`` on, crossfading over ``scene_fade`` seconds."""
        scene = self.slots.get(slot)
        if scene is None:
            self.said = f"scene {slot + 1} is empty (shift + its pad stores it)"
            return
        fade = float(state.value("scene_fade"))
        self.recalled, self.said = slot, f"recalled scene {slot + 1}"
        for name, value in scene.items():
            if name not in PARAMS or name in SESSION_PARAMS or name == "anchor":
                continue
            if PARAMS[name].kind == "continuous" and fade > 0 and name != "position":
                self.fades[name] = [float(state.target(name)), float(value), time, time + fade]
            else:
                self.fades.pop(name, None)
                state.set(name, value, time, source="scene")
        if "anchor" in scene:  # the picture glides there (a pick, even of the anchor it is on)
            state.set("transition", fade, time, source="scene")
            state.set("anchor", scene["anchor"], time, source="scene", force_action=True)

    def advance(self, state: ControlState, now: float) -> None:
        """Move the crossfading parameters to where they are at ``now``."""
        for name, (start, end, t0, t1) in list(self.fades.items()):
            u = 1.0 if now >= t1 else max(0.0, (now - t0) / (t1 - t0))
            state.set(name, start + (end - start) * u, now, source="scene")
            if u >= 1.0:
                del self.fades[name]

    def line(self) -> str:
        """The stored scenes for the HUD, counted from 1, the last recalled in brackets."""
        if not self.slots:
            return f"scenes: none ({self.said})" if self.said else ""
        names = [f"[{k + 1}]" if k == self.recalled else str(k + 1) for k in sorted(self.slots)]
        return f"scenes: {' '.join(names)}" + (f"  ({self.said})" if self.said else "")


def scenes_path(mapping_path: str | Path, presets: Path | None = None) -> Path:
    """Where the scenes of the mapping at ``mapping_path`` live: beside it, or for a shipped preset (whose
    folder may be read-only, and is shared) in the user's config folder."""
    path = Path(mapping_path)
    if presets is None:
        from instrument.mapping import PRESETS as presets
    if path.resolve().parent == Path(presets).resolve():
        import platformdirs

        folder = platformdirs.user_config_path("latent-instrument", appauthor=False) / "scenes"
        return folder / f"{path.stem}.scenes.json"
    return path.with_name(f"{path.stem}.scenes.json")


def _check_value(name: str, value: Any) -> Any:
    """``value`` if it is one ``name`` can take, else ValueError saying why."""
    p = PARAMS[name]
    if p.kind == "toggle":
        if not isinstance(value, bool):
            raise ValueError(f"{name}: {value!r} is not true or false")
    elif p.kind == "choice":
        if value not in p.choices:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(p.choices)}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} is not a finite number")
    elif not p.low <= value <= p.high:
        raise ValueError(f"{name}: {value!r} is outside {p.low:g}..{p.high:g}")
    return value


def read_scenes(path: Path) -> dict[int, dict[str, Any]]:
    """The scenes in the file at ``path`` (none when it does not exist); SceneError naming the file and
    the scene if it is damaged. Parameters this version does not know are left out."""
    try:
        if not path.exists():
            return {}
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SceneError(f"{path}: larger than {MAX_FILE_BYTES >> 10} KB: not a scenes file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SceneError(f"{path}: {exc}") from None
    if not (isinstance(data, dict) and data.get("format") == SCENE_FORMAT
            and isinstance(data.get("scenes"), list)):
        raise SceneError(f"{path}: not a scenes file (it needs \"format\": \"{SCENE_FORMAT}\" and a list of "
                         "\"scenes\")")
    slots = {}
    for k, entry in enumerate(data["scenes"], 1):
        try:
            slot, controls = entry["slot"], entry["controls"]
            if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < SCENE_SLOTS:
                raise ValueError(f"slot {slot!r} is not 0..{SCENE_SLOTS - 1}")
            if not isinstance(controls, dict):
                raise ValueError("controls should be an object of parameter values")
            slots[slot] = {name: _check_value(name, value) for name, value in controls.items()
                           if name in PARAMS and name not in SESSION_PARAMS}
        except (KeyError, TypeError, ValueError) as exc:
            raise SceneError(f"{path}: scene {k}: {exc}") from None
    return slots


def scenes_text(slots: dict[int, dict[str, Any]]) -> str:
    """The JSON of a scenes file: one scene a line, by slot."""
    lines = [json.dumps({"slot": slot, "controls": slots[slot]}) for slot in sorted(slots)]
    body = ",\n    ".join(lines)
    return f'{{\n  "format": "{SCENE_FORMAT}",\n  "version": 1,\n  "scenes": [\n    {body}\n  ]\n}}\n'


class SceneFile:
    """A session's scenes on disk: ``load`` fills a bank at the start, ``sync`` writes it after each store.

    A damaged file is never written over (nothing is lost): the bank starts empty and stores stay in
    memory, each one saying so."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.damaged: str | None = None
        self._saved = 0  # the bank's ``stored`` count last written

    def load(self, bank: SceneBank) -> str | None:
        """Put the file's scenes into ``bank``; returns a one-line error, or None."""
        try:
            bank.slots.update(read_scenes(self.path))
        except SceneError as exc:
            self.damaged = str(exc)
            return f"{exc}; scenes stored now are not saved"
        self._saved = bank.stored
        return None

    def sync(self, bank: SceneBank) -> str | None:
        """Write the bank if a scene was stored since the last write; returns a one-line error, or None."""
        from instrument.recorder import atomic_write

        if bank.stored == self._saved:
            return None
        self._saved = bank.stored
        if self.damaged:
            return f"scene kept until the end of the session only: {self.damaged}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, scenes_text(bank.slots).encode("utf-8"))
        except OSError as exc:
            return f"scenes not saved: {exc.filename or self.path}: {exc.strerror or exc}"
        return None
