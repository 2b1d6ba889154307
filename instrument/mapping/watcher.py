"""Hot reload: notice a saved mapping file and read it again, keeping the last good mapping on a mistake.

``poll()`` is called every frame by the render thread and never blocks it: it looks at the file (one
``stat``) at most every ``interval`` seconds, and the reading and validating happen on a short-lived thread
of the watcher's own (a file on a slow or network disk, or a large one, stalls no frame); a later poll hands
the result over. A change is read once the file has stopped changing for one look (an editor half-way
through writing is not read), and a file that changed again while it was read is read again, so the delay
stays under half a second with the default interval. Editors that save by writing a new file and renaming
it over the old one change the inode; that counts as a change too, and a file briefly missing mid-rename,
or empty (truncated before it is written), is waited out. ``poll`` raises nothing: every problem comes back
as a MappingError, so the render thread keeps playing on its last good mapping.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from instrument.mapping.loader import validate_file
from instrument.mapping.model import Mapping, MappingError

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None  # (mtime_ns, size, inode), None when missing
Result = tuple[Mapping | None, list[MappingError]]
_STALE: Signature = (-1, -1, -1)  # matches no file: read again at the next steady look


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class _Reading(threading.Thread):
    """Reads and validates the file once; ``result`` when done. Bounded: the loader refuses large files."""

    def __init__(self, path: Path, signature: Signature) -> None:
        super().__init__(name="mapping-reload", daemon=True)  # a hung network disk must not hold up exit
        self.path, self.signature = path, signature
        self.result: Result = (None, [MappingError(str(path), 0, "", "not read yet")])

    def run(self) -> None:
        try:
            self.result = validate_file(self.path)
        except Exception as exc:  # validate_file raises nothing; this keeps the render thread's promise
            log.exception("reading %s", self.path)
            self.result = (None, [MappingError(str(self.path), 0, "", f"could not be read: {exc}")])


class MappingWatcher:
    """Watches one mapping file. ``current``: the last good Mapping read by the watcher (None until then);
    ``error``: the last reload's mistake, cleared by a good reload. ``threaded=False`` reads on the calling
    thread (a stepped render loop, tests). Call ``close()`` when done (it joins a reading in progress)."""

    def __init__(self, path: str | Path, *, interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic, missing_after: float = 2.0,
                 threaded: bool = True) -> None:
        self.path = Path(path)
        self.interval = interval
        self.missing_after = missing_after  # seconds a file may be gone or empty before it is an error
        self.threaded = threaded
        self.current: Mapping | None = None
        self.error: MappingError | None = None
        self._clock = clock
        self._seen = _signature(self.path)  # the version already in use (the caller loaded it)
        self._pending: Signature = self._seen
        self._next = 0.0
        self._absent_since: float | None = None
        self._reading: _Reading | None = None

    def poll(self, now: float | None = None) -> Mapping | MappingError | None:
        """None when nothing changed (the usual answer); the new Mapping after a good edit; a MappingError
        after a bad one (keep using the old mapping, show the error). Each edit is answered once."""
        try:
            return self._poll(self._clock() if now is None else now)
        except Exception as exc:  # nothing here should raise; if it does, the picture must not stop
            log.exception("watching %s", self.path)
            return self._fail(MappingError(str(self.path), 0, "", f"could not watch the file: {exc}"))

    def close(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) for a reading in progress; its result is dropped."""
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.join(timeout)

    def _poll(self, now: float) -> Mapping | MappingError | None:
        if self._reading is not None:
            return None if self._reading.is_alive() else self._finish(self._reading)
        if now < self._next:
            return None
        self._next = now + self.interval
        sig = _signature(self.path)
        if sig is None or sig[1] == 0:  # missing (mid-rename) or empty (mid-write): wait a little
            return self._absent(sig, now)
        self._absent_since = None
        if sig == self._seen:
            self._pending = sig
            return None
        if sig != self._pending:  # still being written: look again next time
            self._pending = sig
            return None
        self._seen = sig
        reading = _Reading(self.path, sig)
        if not self.threaded:
            reading.run()
            return self._finish(reading)
        self._reading = reading
        reading.start()
        return None

    def _absent(self, sig: Signature, now: float) -> MappingError | None:
        if sig == self._seen:
            return None
        if self._absent_since is None:
            self._absent_since = now
        if now - self._absent_since < self.missing_after:
            return None
        self._seen = self._pending = sig
        what = "gone" if sig is None else "empty"
        return self._fail(MappingError(str(self.path), 0, "", f"the mapping file is {what}; "
                                       "keeping the last good mapping"))

    def _finish(self, reading: _Reading) -> Mapping | MappingError | None:
        if reading.is_alive():
            reading.join()
        self._reading = None
        if _signature(self.path) != reading.signature:  # changed while it was read: read the new one
            self._seen = _STALE
            return None
        mapping, errors = reading.result
        if errors or mapping is None:
            return self._fail(errors[0] if errors else MappingError(str(self.path), 0, "", "not read"))
        self.current, self.error = mapping, None
        return mapping

    def _fail(self, error: MappingError) -> MappingError:
        self.error = error
        return error
