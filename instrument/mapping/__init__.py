"""Controller mappings: YAML files that say which control drives which parameter, and the engine that
applies them.

The render thread's whole use of this package, once per frame::

    mapping = load_mapping("mappings/default.yaml")      # MappingError: show it, fall back to the default
    state = ControlState(clock=MidiClock())               # instrument.control
    engine = MappingEngine(mapping, state)
    queue.set_exact_controls(engine.exact_controls())
    watcher = MappingWatcher(mapping.path)
    ...
    for event in queue.drain():
        engine.apply(event)
    state.advance(now)
    change = watcher.poll()
    if isinstance(change, Mapping):
        engine.mapping = change
        queue.set_exact_controls(engine.exact_controls())
    elif isinstance(change, MappingError):
        log.warning("%s", change)                           # the old mapping stays in force
    for name, value in state.pop_actions(): ...             # record, quit, hud, anchor ... changes

MIDI learn while playing (``instrument.mapping.learn.LearnSession``)::

    learn = LearnSession(engine.mapping, save_to=learned_path(engine.mapping.path))
    learn.start("noise")                                    # e.g. from a key; HUD shows learn.status
    new = None
    for event in queue.drain():
        if learn.active:
            new = learn.feed(event) or new                  # the control being learned drives nothing yet
        else:
            engine.apply(event)
    new = new or learn.poll(now)
    if new is not None:                                     # bound (and saved): play on it
        engine.mapping = new
        queue.set_exact_controls(engine.exact_controls())
"""

from instrument.mapping.engine import MappingEngine
from instrument.mapping.loader import (
    DEFAULT_MAPPING,
    KEYBOARD_MAPPING,
    PRESETS,
    load_mapping,
    parse_mapping,
    preset_path,
    validate_file,
)
from instrument.mapping.model import Control, Curve, KeyBinding, Mapping, MappingError, NoteRange, PointerAxis
from instrument.mapping.watcher import MappingWatcher

__all__ = [
    "DEFAULT_MAPPING", "KEYBOARD_MAPPING", "PRESETS", "Control", "Curve", "KeyBinding", "Mapping",
    "MappingEngine", "MappingError", "MappingWatcher", "NoteRange", "PointerAxis", "load_mapping",
    "parse_mapping", "preset_path", "validate_file",
]
