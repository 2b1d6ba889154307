"""Mistakes a user can fix: one exception type for them, and the checks every input file goes through.

Raise ``UserError`` (or a subclass: ``ModelLoadError``, ``AnchorError``) where input is wrong, with a message
that names the file, flag or value, says what is wrong and, where it is not obvious, what to do instead. The
command line (``cli.main``) prints it as one line and exits with status 2; ``latent-instrument --debug ...``
shows the traceback too. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
SNIFF_BYTES = 512  # enough of a file's start to tell a web page or a pointer file from real data


class UserError(Exception):
    """Input the user can fix: the message says what is wrong and how to put it right."""


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or None when it can: missing, a folder, not a regular
    file (a FIFO or a device would block or never end), or empty. Never opens anything but a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        return f"is {kind}, not a regular file; only regular files are read"
    if info.st_size == 0:
        return "the file is empty (0 bytes); download or save it again"
    return None


def impostor(head: bytes) -> str | None:
    """What a file that should hold binary data (weights, an image) is instead, read off its first bytes:
    "an HTML page", "a Git LFS pointer" (the repo was cloned without ``git lfs``), or None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(LFS_POINTER):
        return "a Git LFS pointer (a clone without `git lfs pull` keeps these in place of large files)"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in text[:SNIFF_BYTES]:
        return "an HTML page (a web page saved in place of the file)"
    return None


def read_head(path: Path, size: int = SNIFF_BYTES) -> bytes:
    """The first ``size`` bytes of a regular file (check it with ``file_problem`` first)."""
    with open(path, "rb") as f:
        return f.read(size)
