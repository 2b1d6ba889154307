"""What rtmidi does not tell about a JACK graph: whether the server is still there, and what a port is
connected to.

The listener needs both. A client killed and started again under the same name (or a port closed and opened
between two polls) keeps its port name, but JACK dropped the connection to our input with the old port:
only the connection list shows it. And when jackd dies, rtmidi's clients go on answering from a stale copy
of the graph; JACK's shutdown callback is the only sign.

``JackGraph`` is a JACK client with no ports (never activated, so it takes no part in the process cycle)
that asks libjack through ctypes. It loads the libjack that python-rtmidi already loaded where it can find
it (a wheel carries its own copy), so that both speak through one library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from instrument.midi.system import quiet_stderr

_NO_START_SERVER = 0x01  # JackNoStartServer
_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _loaded_libjack() -> str | None:
    """The path of the libjack this process has loaded already (Linux; None elsewhere or when none)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if "/libjack" in path and ".so" in path:
                    return path
    except OSError:
        pass
    return None


def _load() -> ctypes.CDLL | None:
    name = _loaded_libjack() or ctypes.util.find_library("jack")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    void_p, char_p = ctypes.c_void_p, ctypes.c_char_p
    for function, restype, argtypes in (
        ("jack_client_open", void_p, [char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]),
        ("jack_client_close", ctypes.c_int, [void_p]),
        ("jack_on_shutdown", None, [void_p, _SHUTDOWN, void_p]),
        ("jack_port_by_name", void_p, [void_p, char_p]),
        ("jack_port_get_all_connections", ctypes.POINTER(char_p), [void_p, void_p]),
        ("jack_free", None, [void_p]),
    ):
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def libjack() -> ctypes.CDLL | None:
    """libjack through ctypes, loaded once; None where it cannot be loaded."""
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _load()
        return _lib


class JackGraph:
    """A portless JACK client that watches the server: ``alive``, and ``connections(port)``.

    Raises OSError when libjack cannot be loaded or no server answers. Call ``close()`` when done (also after
    the server died: it frees what libjack still holds).
    """

    def __init__(self, client_name: str) -> None:
        lib = libjack()
        if lib is None:
            raise OSError("libjack could not be loaded")
        self._lib = lib
        self._gone = threading.Event()
        self._on_shutdown = _SHUTDOWN(lambda _arg: self._gone.set())  # kept: libjack holds a raw pointer
        status = ctypes.c_int()
        with quiet_stderr():
            client = lib.jack_client_open(client_name.encode(), _NO_START_SERVER, ctypes.byref(status))
        if not client:
            raise OSError(f"no JACK server answers (status 0x{status.value:x})")
        self._client: int | None = client
        lib.jack_on_shutdown(client, self._on_shutdown, None)

    @property
    def alive(self) -> bool:
        """False once the server shut this client down (jackd stopped or died)."""
        return not self._gone.is_set() and self._client is not None

    def connections(self, port: str) -> list[str] | None:
        """Full names of the ports ``port`` (a full name) is connected to; None when there is no such port."""
        if not self.alive:
            return None
        handle = self._lib.jack_port_by_name(self._client, port.encode())
        if not handle:
            return None
        names = self._lib.jack_port_get_all_connections(self._client, handle)
        if not names:
            return []
        found = []
        index = 0
        while names[index] is not None:
            found.append(names[index].decode(errors="replace"))
            index += 1
        self._lib.jack_free(ctypes.cast(names, ctypes.c_void_p))
        return found

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with quiet_stderr():  # after the server died, libjack says so at length
                self._lib.jack_client_close(client)
