"""Lab work that the render thread spreads over frames: a *job* is a generator that yields a few words on its
progress after each batch of decoding and returns its result, so the same code runs to the end offline
(``finish``) and a batch per frame live (``instrument.lab.live``)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")
Job = Generator[str, None, T]


def finish(job: Job[T]) -> T:
    """Run a job to the end; its result."""
    while True:
        try:
            next(job)
        except StopIteration as done:
            return done.value


def labelled(job: Job[T], prefix: str) -> Job[T]:
    """The same job, its progress words prefixed with ``prefix``."""
    while True:
        try:
            note = next(job)
        except StopIteration as done:
            return done.value
        yield f"{prefix}{note}"
