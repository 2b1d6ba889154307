"""Controller mappings: YAML files that say which control drives which parameter, and the engine that
applies them.

The render thread's whole use of this package, once per frame::

    mapping = load_mapping("mappings/default.yaml")      # MappingError: show it, fall back to the default
    state = ControlState(clock=MidiClock())               # instrument.control
    engine = MappingEngine(mapping, state)
    queue.set_exact_controls(engine.exact_controls())
    watcher = MappingWatcher(mapping.path)                # reads edits on a thread of its own
    try:
        ...
        for event in queue.drain():
            engine.apply(event)
        state.advance(now)
        change = watcher.poll()                           # never raises, never blocks
        if isinstance(change, Mapping):
            engine.mapping = change
            queue.set_exact_controls(engine.exact_controls())
        elif isinstance(change, MappingError):
            log.warning("%s", change)                       # the old mapping stays in force
        for name, value in state.pop_actions(): ...         # record, quit, hud, anchor ... changes
    finally:
        watcher.close()

Before playing: ``match_preset(port_names)`` picks the preset made for a connected controller;
``describe_controls(mapping)`` and ``describe_keys(mapping)`` say what each control does, for the help.
"""

from instrument.mapping.describe import describe_controls, describe_keys
from instrument.mapping.engine import MappingEngine
from instrument.mapping.loader import load_mapping, parse_mapping, validate_file
from instrument.mapping.model import Control, Curve, KeyBinding, Mapping, MappingError, NoteRange, PointerAxis
from instrument.mapping.presets import DEFAULT_MAPPING, KEYBOARD_MAPPING, PRESETS, match_preset, preset_path
from instrument.mapping.watcher import MappingWatcher

__all__ = [
    "DEFAULT_MAPPING", "KEYBOARD_MAPPING", "PRESETS", "Control", "Curve", "KeyBinding", "Mapping",
    "MappingEngine", "MappingError", "MappingWatcher", "NoteRange", "PointerAxis", "describe_controls",
    "describe_keys", "load_mapping", "match_preset", "parse_mapping", "preset_path", "validate_file",
]
