"""The shipped presets (``mappings/*.yaml``) and choosing one for the MIDI ports that are connected.

A preset names the ports it is made for in ``ports:`` (parts of port names, any case): the Korg preset says
``ports: [nanoKONTROL2]``. ``match_preset`` picks the preset made for a connected port, so that plugging in a
nanoKONTROL2 and starting ``play`` gives its preset without a ``--mapping``. Presets with ``ports: any``
(default, keyboard) are never picked this way: they are what ``play`` falls back on.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from instrument.mapping.loader import validate_file

log = logging.getLogger(__name__)


def _presets_folder() -> Path:
    """The shipped presets: ``mappings/`` of a checkout (``pip install -e``), else where a wheel put them."""
    checkout = Path(__file__).resolve().parents[2] / "mappings"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "latent-instrument" / "mappings"


PRESETS = _presets_folder()
DEFAULT_MAPPING = PRESETS / "default.yaml"  # any MIDI controller (and a few keys)
KEYBOARD_MAPPING = PRESETS / "keyboard.yaml"  # computer keyboard and mouse, for playing without MIDI


def preset_path(name: str) -> Path:
    """The file of a shipped preset: ``preset_path("default")`` -> .../mappings/default.yaml. An existing
    path, or a name with a slash or ending in .yaml, is returned unchanged: a command line can take either."""
    if "/" in name or name.endswith((".yaml", ".yml")) or Path(name).exists():
        return Path(name)
    return PRESETS / f"{name}.yaml"


def match_preset(port_names: Iterable[str], folder: str | Path | None = None) -> Path | None:
    """The preset made for one of the connected MIDI input ``port_names``, or None.

    A preset fits a port when one of its ``ports:`` entries is part of the port's name (any case). Ports are
    tried in the order given (the first connected controller wins); among the presets fitting a port, the
    one naming it most exactly (the longest entry) wins, then the shortest file name, so a shipped preset is
    preferred to a ``-learned`` copy beside it. Files that do not validate are skipped (and logged)."""
    candidates = []
    for path in sorted(Path(folder or PRESETS).glob("*.yaml"), key=lambda p: (len(p.name), p.name)):
        mapping, errors = validate_file(path)
        if errors:
            log.debug("preset %s skipped: %s", path.name, errors[0])
        elif mapping is not None and mapping.ports:
            candidates.append((path, [p.lower() for p in mapping.ports]))
    for port in port_names:
        name = port.lower()
        fits = [(max(len(p) for p in ports if p in name), path) for path, ports in candidates
                if any(p in name for p in ports)]
        if fits:
            best = max(length for length, _ in fits)
            return next(path for length, path in fits if length == best)
    return None
