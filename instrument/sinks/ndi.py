"""NDI: the frames as a video source on the network, for Resolume, vMix, OBS or TouchDesigner on any machine
there (``pip install -e '.[ndi]'``: ndi-python, which carries the NDI runtime).

NDI announces the source to every network this computer is on (mDNS), and any NDI receiver there can watch
it: that is why it is opt-in (``--sink ndi``), and why ``open`` says what it announces. The source is named
``HOST (NAME)``, NAME from ``--ndi-name``.
"""

from __future__ import annotations

import numpy as np


class NdiSink:
    """An NDI sender of RGBX frames at the session's frame rate."""

    name = "ndi"

    def __init__(self, source_name: str) -> None:
        import NDIlib

        self._ndi = NDIlib
        self.source_name = source_name
        self._sender = None
        self._frame = None
        self._rgbx: np.ndarray | None = None

    def open(self, width: int, height: int, fps: float) -> str:
        ndi = self._ndi
        if not ndi.initialize():
            raise RuntimeError("the NDI runtime did not start (this CPU or system is not supported)")
        settings = ndi.SendCreate()
        settings.ndi_name = self.source_name
        settings.clock_video = False  # the render loop keeps time; a send never waits
        self._sender = ndi.send_create(settings)
        if self._sender is None:
            raise RuntimeError(f"NDI could not create the source {self.source_name!r}")
        self._rgbx = np.full((height, width, 4), 255, np.uint8)
        self._frame = ndi.VideoFrameV2()
        self._frame.FourCC = ndi.FOURCC_VIDEO_TYPE_RGBX
        self._frame.frame_rate_N, self._frame.frame_rate_D = round(fps * 1000), 1000
        return (f"announcing the NDI source {self.source_name!r} to every network this computer is on; any "
                "NDI receiver there can watch it")

    def send(self, image: np.ndarray) -> None:
        self._rgbx[..., :3] = image
        self._frame.data = self._rgbx
        self._ndi.send_send_video_v2(self._sender, self._frame)

    def close(self) -> None:
        if self._sender is not None:
            self._ndi.send_destroy(self._sender)
            self._sender = None  # (the runtime stays loaded: NDIlib's destroy would end every NDI user here)
