"""A virtual camera: the frames as a webcam for OBS, Zoom, Teams and browsers (``pip install -e
'.[virtualcam]'``: pyvirtualcam). It needs the platform's virtual camera: OBS's on macOS and Windows (OBS
installed once, its virtual camera started once), v4l2loopback on Linux (``modprobe v4l2loopback``)."""

from __future__ import annotations

import numpy as np


class VirtualCamSink:
    """pyvirtualcam's camera, fed RGB frames."""

    name = "virtualcam"

    def __init__(self, source_name: str) -> None:
        import pyvirtualcam

        self._pyvirtualcam = pyvirtualcam
        self.source_name = source_name
        self._camera = None

    def open(self, width: int, height: int, fps: float) -> str:
        module = self._pyvirtualcam
        self._camera = module.Camera(width=width, height=height, fps=fps, fmt=module.PixelFormat.RGB)
        return f"virtual camera {self._camera.device} ({width}x{height})"

    def send(self, image: np.ndarray) -> None:
        self._camera.send(np.ascontiguousarray(image))

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
