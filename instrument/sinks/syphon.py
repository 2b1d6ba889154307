"""Syphon (macOS): the frames shared with Resolume, VDMX, MadMapper and TouchDesigner on this Mac
(``pip install -e '.[syphon]'``: syphon-python). A Metal server; each frame is copied into one texture and
published."""

from __future__ import annotations

import numpy as np


class SyphonSink:
    """A Syphon Metal server named ``source_name``, fed RGB frames (sent as RGBA, opaque)."""

    name = "syphon"

    def __init__(self, source_name: str) -> None:
        import objc
        import syphon
        from syphon.utils import raw

        self._objc, self._syphon, self._raw = objc, syphon, raw
        self.source_name = source_name
        self._server = None
        self._texture = None
        self._rgba: np.ndarray | None = None

    def open(self, width: int, height: int, fps: float) -> str:
        self._server = self._syphon.SyphonMetalServer(self.source_name)
        self._texture = self._raw.create_mtl_texture(self._server.device, width, height)
        self._rgba = np.full((height, width, 4), 255, np.uint8)
        return f"Syphon server {self.source_name!r} ({width}x{height})"

    def send(self, image: np.ndarray) -> None:
        # This thread is not the main one: Cocoa's autoreleased objects need a pool of their own per frame.
        with self._objc.autorelease_pool():
            self._rgba[..., :3] = image
            self._raw.copy_bytes_to_mtl_texture(self._rgba.tobytes(), self._texture)
            self._server.publish_frame_texture(self._texture)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
