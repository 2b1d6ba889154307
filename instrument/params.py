"""The parameter registry: the render side's vocabulary.

Mappings name these parameters, the validator checks against them, the render thread reads them from the
control state, and MIDI learn offers them. One list, so that the three can never disagree.

Kinds:
- ``continuous``: a float in [low, high]; a knob or fader sets it, smoothing applies.
- ``integer``: an int in [low, high] (an anchor index, a bank).
- ``choice``: one of ``choices``; a knob picks by position, a button steps through them.
- ``toggle``: a bool; a button flips it, a pedal holds it.
- ``trigger``: an action with no state (a note, a button press).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # continuous | integer | choice | toggle | trigger
    default: float | int | str | bool | None
    doc: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[str, ...] = field(default=())


PATH_KINDS = ("slerp", "lerp", "loop", "spline", "walk", "geodesic")
LOCK_REGIONS = ("none", "left", "right", "top", "bottom", "center", "border")
DECODERS = ("fast", "full")
POSITION_MODES = ("relative", "absolute")
QUANTISE = ("off", "beat", "bar")
MAX_CHANNELS = 64  # latent channels a mapping may name; a session narrows it to its model's (model_ranges)


def model_ranges(latent_channels: int) -> dict[str, tuple[float, float]]:
    """(low, high) of the parameters whose range is the model's, for a model with ``latent_channels``
    channels (4 for SD 1.5, 16 for SD3 and FLUX.1, 32 for FLUX.2): a control written for a parameter's whole
    range spans this range instead, and values are held inside it."""
    top = max(1, int(latent_channels))
    return {"offset_channel": (0.0, float(top - 1)), "lock_channels": (0.0, float(top))}


PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        # Where on the path between anchors the latent sits.
        Param("position", "continuous", 0.0, "position along the current path, 0 = first anchor, 1 = last"),
        Param("position_mode", "choice", "relative", "what `position` means after an anchor is picked: "
              "relative = it moves on from the picked anchor; absolute = it is always the place on the path, "
              "and its next move glides the picture back there from the picked anchor",
              choices=POSITION_MODES),
        Param("speed", "continuous", 0.0, "automatic travel along the path, in path lengths per bar "
              "(negative runs backwards)", low=-2.0, high=2.0),
        Param("path", "choice", "slerp", "how anchors are joined (geodesic: the route along which the "
              "picture changes least, found by the lab)", choices=PATH_KINDS),
        # Anchors: notes select them, transitions glide between them.
        Param("anchor", "integer", 0, "index of the anchor to go to (notes set this)", low=0, high=127),
        Param("bank", "integer", 0, "anchor bank (program change selects it)", low=0, high=127),
        Param("transition", "continuous", 0.5, "glide time to a newly chosen anchor, seconds",
              low=0.0, high=8.0),
        Param("velocity", "continuous", 1.0, "velocity of the last note, 0..1 (shapes glides)"),
        Param("sync", "toggle", False, "glides to an anchor end on a beat"),
        # Departures from the path.
        Param("noise", "continuous", 0.0, "amount of seeded random-walk wandering added to the path"),
        Param("walk_speed", "continuous", 0.2, "how fast the random walk wanders, steps per second",
              high=4.0),
        Param("offset", "continuous", 0.0, "offset added to the chosen latent channel, in latent std",
              low=-3.0, high=3.0),
        Param("offset_channel", "integer", 0, "which latent channel `offset` moves (0 to the model's "
              "channels - 1: see model_ranges)", low=0, high=MAX_CHANNELS - 1),
        Param("freeze", "toggle", False, "hold the whole latent where it is (sustain pedal)"),
        Param("lock_channels", "integer", 0, "hold the first N latent channels at the current anchor (up to "
              "the model's channels)", low=0, high=MAX_CHANNELS),
        Param("lock_region", "choice", "none", "hold a spatial region at the current anchor",
              choices=LOCK_REGIONS),
        # Lab: atlas and curvature.
        Param("atlas", "toggle", False, "fly over the atlas of anchors instead of the path"),
        Param("atlas_x", "continuous", 0.5, "atlas cursor, left to right"),
        Param("atlas_y", "continuous", 0.5, "atlas cursor, top to bottom"),
        Param("pacing", "toggle", False, "re-time paths so the picture changes at a constant rate"),
        # Sculpting: a few UNet steps between the played latent and the decoder (instrument.sculpt).
        Param("sculpt", "continuous", 0.0, "sculpting strength: how much noise the UNet steps start from "
              "(0 = off, the latent as played; 1 = from the noise alone)"),
        Param("steps", "integer", 1, "sculpting steps (UNet calls per frame)", low=1, high=8),
        Param("step_view", "integer", 0, "which sculpting step the screen shows: 0 = the result, "
              "1..8 = that step's predicted picture", low=0, high=8),
        Param("step_noisy", "toggle", False, "the step shown (and the HUD strip) is the noisy latent the "
              "step started from instead of its predicted picture"),
        Param("noise_seed", "integer", 0, "seed of the sculpting noise", low=0, high=127),
        Param("noise_mix", "continuous", 0.0, "drifts the sculpting noise from noise_seed's toward the next "
              "seed's"),
        Param("prompt_mix", "continuous", 0.0, "position along the prompt anchors, 0 = first, 1 = last"),
        Param("guidance", "continuous", 1.0, "prompt guidance for models that need it (1 = off; SD-Turbo and "
              "LCM ignore it)", low=1.0, high=12.0),
        # Rendering and the session.
        Param("decoder", "choice", "fast", "which decoder renders live frames", choices=DECODERS),
        Param("tempo", "continuous", 120.0, "beats per minute when no MIDI clock runs", low=20.0, high=300.0),
        Param("record", "toggle", False, "recording on or off"),
        Param("hud", "toggle", True, "heads-up display on or off"),
        Param("help", "toggle", False, "help overlay on or off"),
        Param("fullscreen", "toggle", False, "full-screen window on or off"),
        Param("quit", "trigger", None, "stop the instrument"),
        # Performance craft: the output, tempo, scenes and gesture loops (instrument.scenes, .gestures).
        Param("master", "continuous", 1.0, "brightness of the picture shown (screen and frame sinks; takes "
              "record it unfaded)"),
        Param("blackout", "toggle", False, "fade the picture shown to black (and back) over blackout_time"),
        Param("blackout_time", "continuous", 1.0, "seconds a blackout takes to fade", high=10.0),
        Param("tap", "trigger", None, "tap tempo: four taps in time set the tempo when no MIDI clock runs"),
        Param("next", "trigger", None, "go to the next anchor (wrapping round)"),
        Param("quantise", "choice", "off", "anchor changes and scene recalls land on the next beat or bar",
              choices=QUANTISE),
        Param("shift", "toggle", False, "held: a scene pad stores the scene instead of recalling it"),
        Param("scene_store", "integer", 0, "store the controls into this scene slot", high=127),
        Param("scene_recall", "integer", 0, "recall the scene in this slot", high=127),
        Param("scene_fade", "continuous", 1.0, "seconds a scene recall crossfades", high=16.0),
        Param("gesture_record", "toggle", False, "record knob moves into gesture loops (overdubs)"),
        Param("gesture_beats", "integer", 4, "length of a new gesture loop, in beats", low=1, high=64),
        Param("gesture_clear", "trigger", None, "forget every gesture loop"),
    ]
}

# Parameters of the session rather than of the picture: scenes do not store them, gesture loops do not
# record them (the rest, sculpt settings included, are a scene's "whole control state").
SESSION_PARAMS = frozenset({
    "velocity", "transition", "tempo", "decoder", "record", "hud", "help", "fullscreen", "quit", "master",
    "blackout", "blackout_time", "tap", "next", "quantise", "shift", "scene_store", "scene_recall",
    "scene_fade", "gesture_record", "gesture_beats", "gesture_clear",
})

