"""An NDI sender and receiver in one process, for ``test_sinks``: run it inside a private network namespace
(loopback only), where NDI's announcements reach nothing else.

The sender is the instrument's: an ``NdiSink`` fed by a ``SinkFeed`` from a ``Mailbox``. The receiver looks
for sources on 127.0.0.1, connects to the first, and captures a video frame. Prints one JSON line: the
sources found, what the sink said it announces, the feed's counts, and the size and colours received.
"""

from __future__ import annotations

import json
import time

import NDIlib as ndi
import numpy as np

from instrument.mailbox import Frame, Mailbox
from instrument.sinks import make_sink
from instrument.sinks.feed import SinkFeed

TIMEOUT = 30.0


def picture() -> np.ndarray:
    """[48, 64, 3]: orange on the left half, violet on the right."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (220, 120, 20)
    image[:, 32:] = (120, 30, 230)
    return image


def main() -> None:
    mailbox = Mailbox()
    feed = SinkFeed(make_sink("ndi", ndi_name="rig test"), mailbox, 30.0)
    feed.start()
    finder_settings = ndi.FindCreate()
    finder_settings.show_local_sources = True
    finder_settings.extra_ips = "127.0.0.1"
    finder = ndi.find_create_v2(finder_settings)
    receiver, result, n = None, {}, 0
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and "size" not in result:
            mailbox.put(Frame(n, n / 30, picture()))
            n += 1
            if receiver is None:
                ndi.find_wait_for_sources(finder, 100)
                sources = ndi.find_get_current_sources(finder)
                if sources:
                    result["sources"] = [s.ndi_name for s in sources]
                    settings = ndi.RecvCreateV3()
                    settings.color_format = ndi.RECV_COLOR_FORMAT_RGBX_RGBA
                    receiver = ndi.recv_create_v3(settings)
                    ndi.recv_connect(receiver, sources[0])
                continue
            kind, video, _, _ = ndi.recv_capture_v2(receiver, 100)
            if kind == ndi.FRAME_TYPE_VIDEO:
                data = np.copy(video.data)
                ndi.recv_free_video_v2(receiver, video)
                result["size"] = [int(video.xres), int(video.yres)]
                result["left"] = data[24, 8, :3].tolist()
                result["right"] = data[24, 56, :3].tolist()
    finally:
        if receiver is not None:
            ndi.recv_destroy(receiver)
        ndi.find_destroy(finder)
        feed.stop()
    result.update(state=feed.state, sent=feed.sent, put=n)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
