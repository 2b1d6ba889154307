"""Hot reload: notice a saved mapping file and read it again, keeping the last good mapping on a mistake.

``poll()`` is called every frame by the render thread; it looks at the file (one ``stat``) at most every
``interval`` seconds, so it costs nothing on most frames. A change is read once the file has stopped changing
for one look (an editor half-way through writing is not read), which keeps the delay under half a second
with the default interval. Editors that save by writing a new file and renaming it over the old one change
the inode; that counts as a change too, and a file briefly missing mid-rename is waited out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from instrument.mapping.loader import validate_file
from instrument.mapping.model import Mapping, MappingError

Signature = tuple[int, int, int] | None  # (mtime_ns, size, inode), None when missing


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class MappingWatcher:
    """Watches one mapping file. ``current``: the last good Mapping read by the watcher (None until then)."""

    def __init__(self, path: str | Path, *, interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic, missing_after: float = 2.0) -> None:
        self.path = Path(path)
        self.interval = interval
        self.missing_after = missing_after  # seconds a file may be gone (mid-rename) before it is an error
        self.current: Mapping | None = None
        self.error: MappingError | None = None  # the last reload's mistake, cleared by a good reload
        self._clock = clock
        self._seen = _signature(self.path)  # the version already in use (the caller loaded it)
        self._pending: Signature = self._seen
        self._next = 0.0
        self._missing_since: float | None = None

    def poll(self, now: float | None = None) -> Mapping | MappingError | None:
        """None when nothing changed (the usual answer); the new Mapping after a good edit; a MappingError
        after a bad one (keep using the old mapping, show the error). Each edit is answered once."""
        now = self._clock() if now is None else now
        if now < self._next:
            return None
        self._next = now + self.interval
        sig = _signature(self.path)
        if sig is None:
            if self._seen is None:
                return None
            self._missing_since = self._missing_since if self._missing_since is not None else now
            if now - self._missing_since < self.missing_after:
                return None
            self._seen = self._pending = None
            return self._fail(MappingError(str(self.path), 0, "", "the mapping file is gone; "
                                           "keeping the last good mapping"))
        self._missing_since = None
        if sig == self._seen:
            self._pending = sig
            return None
        if sig != self._pending:  # still being written: look again next time
            self._pending = sig
            return None
        self._seen = sig
        mapping, errors = validate_file(self.path)
        if errors:
            return self._fail(errors[0])
        self.current, self.error = mapping, None
        return mapping

    def _fail(self, error: MappingError) -> MappingError:
        self.error = error
        return error
