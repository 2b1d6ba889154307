"""Lab work that the render thread spreads over frames: a *job* is a generator that yields a few words on its
progress after each batch of decoding and returns its result, so the same code runs to the end offline
(``finish``) and a batch per frame live (``instrument.lab.live``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

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


class Jobs:
    """Jobs by key, advanced a batch at a time: ``work(keys, deadline)`` runs each of ``keys`` (started with
    ``start(key)`` as needed) one batch (``one_batch``), or until ``deadline`` (``time.perf_counter``), and
    returns the (key, result) of those that finished. A job that raises is said once through ``error``
    and is not started again (its key is ``failed``); ``progress`` holds each running job's last words."""

    def __init__(self, start: Callable[[str], Job], error: Callable[[str], None], one_batch: bool) -> None:
        self.start = start
        self.error = error
        self.one_batch = one_batch
        self.running: dict[str, Job] = {}
        self.progress: dict[str, str] = {}
        self.failed: set[str] = set()

    def add(self, key: str, job: Job) -> None:
        self.drop(key)
        self.running[key] = job

    def drop(self, key: str) -> None:
        self.running.pop(key, None)
        self.progress.pop(key, None)

    def work(self, keys: Iterable[str], deadline: float) -> list[tuple[str, Any]]:
        finished: list[tuple[str, Any]] = []
        for key in keys:
            if key in self.failed:
                continue
            job = self.running.get(key) or self.running.setdefault(key, self.start(key))
            try:
                while True:
                    self.progress[key] = next(job)
                    if self.one_batch or time.perf_counter() >= deadline:
                        return finished
            except StopIteration as done:
                self.drop(key)
                finished.append((key, done.value))
            except Exception as exc:  # the instrument plays on, unmeasured: said once
                self.drop(key)
                self.failed.add(key)
                self.error(f"lab {key}: {type(exc).__name__}: {exc}")
                finished.append((key, None))
        return finished
