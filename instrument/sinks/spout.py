"""Spout (Windows): the frames shared with Resolume, TouchDesigner, OBS and MadMapper on this computer
(``pip install -e '.[spout]'``: SpoutGL). Spout takes the pixels through its own shared texture; no window
or OpenGL context of ours is needed."""

from __future__ import annotations

import numpy as np

GL_RGB = 0x1907  # the OpenGL name of the pixel layout sent: 8-bit red, green, blue


class SpoutSink:
    """A Spout sender named ``source_name``, fed RGB frames."""

    name = "spout"

    def __init__(self, source_name: str) -> None:
        import SpoutGL

        self._spout = SpoutGL
        self.source_name = source_name
        self._sender = None

    def open(self, width: int, height: int, fps: float) -> str:
        self._sender = self._spout.SpoutSender()
        self._sender.setSenderName(self.source_name)
        return f"Spout sender {self.source_name!r} ({width}x{height})"

    def send(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        if not self._sender.sendImage(np.ascontiguousarray(image), width, height, GL_RGB, False, 0):
            raise RuntimeError("Spout did not take the frame")

    def close(self) -> None:
        if self._sender is not None:
            self._sender.releaseSender()
            self._sender = None
