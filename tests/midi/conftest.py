"""Fixtures for the MIDI tests: a JACK client with an output port, standing in for a controller."""

from __future__ import annotations

import uuid

import pytest

from .helpers import Sender


@pytest.fixture
def sender(jack_server):
    out = Sender(f"sender-{uuid.uuid4().hex[:6]}")
    try:
        yield out
    finally:
        out.close()
