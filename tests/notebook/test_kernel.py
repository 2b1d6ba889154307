"""The Scrubber in a real Jupyter kernel, dragged the way a browser drags it: widget messages on the
kernel's shell channel, the follow-up work on the kernel's own event loop."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import MISSING

pytest.importorskip("ipywidgets", reason=MISSING)
pytest.importorskip("ipykernel", reason=MISSING)
jupyter_client = pytest.importorskip("jupyter_client", reason=MISSING)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0

SETUP = """
import json
import instrument as li
model = li.load({model!r}, device="cpu", dtype="fp32")
anchors = li.encode(model, [{dog!r}, {pastry!r}], 64, cache=False)
full = li.load({model!r}, device="cpu", dtype="fp32")
scrubber = li.Scrubber(model, anchors, full=full)
scrubber
print(json.dumps({{"position": scrubber.position.comm.comm_id}}))
"""
STATE = """print(json.dumps({"exact": scrubber.exact, "shown": scrubber.shown, "s": scrubber.coords.s,
                  "blends": scrubber.decoding.progressive.approx_frames,
                  "same": bool(abs(scrubber.frame.astype(int)
                                   - li.decode(full, li.path(anchors, scrubber.coords.s), output="array"))
                               .max() <= 1)}))"""


def run(client, code: str) -> str:
    """Execute ``code`` in the kernel; its printed text (an error fails the test)."""
    printed = []

    def output(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            pytest.fail("\n".join(message["content"]["traceback"]))

    client.execute_interactive(code, timeout=TIMEOUT, output_hook=output)
    return "".join(printed)


@pytest.fixture
def kernel(shared, tmp_path, monkeypatch):
    """A kernel that imports this checkout, with its caches in the test's folder and no network."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3", startup_timeout=TIMEOUT)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_dragging_the_position_slider_in_a_kernel(kernel, shared):
    images = shared / "images"
    setup = SETUP.format(model=str(shared / "models" / "taef2_decoder.pth"), dog=str(images / "dog.png"),
                         pastry=str(images / "pastry.png"))
    comm = json.loads(run(kernel, setup).strip().splitlines()[-1])["position"]
    for value in (0.1, 0.25, 0.4, 0.55, 0.7):  # a drag: the browser sends each value the slider passes
        state = {"method": "update", "state": {"value": value}, "buffer_paths": []}
        kernel.shell_channel.send(kernel.session.msg("comm_msg", {"comm_id": comm, "data": state}))
        time.sleep(0.02)
    deadline = time.monotonic() + TIMEOUT
    while True:
        state = json.loads(run(kernel, STATE).strip().splitlines()[-1])
        if (state["exact"] and state["shown"] == "full") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # The kernel's loop landed the exact frame and, once the slider rested, the full decoder's redraw.
    assert state["s"] == 0.7 and state["exact"] and state["shown"] == "full" and state["same"]
    assert state["blends"] > 0  # while the drag went on, blends of decoded neighbours filled in
    run(kernel, "scrubber.close()")
