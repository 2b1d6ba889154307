"""The example notebooks, executed top to bottom in a real kernel (nbclient) with the shared taef2 pair, and
their outputs checked. A last cell of the test's own reports what the pictures cannot show."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from .conftest import MISSING

nbclient = pytest.importorskip("nbclient", reason=MISSING)
nbformat = pytest.importorskip("nbformat", reason=MISSING)
pytest.importorskip("ipykernel", reason=MISSING)
pytest.importorskip("ipywidgets", reason=MISSING)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.slow


def execute(name: str, check: str, shared: Path, tmp_path: Path, monkeypatch) -> tuple[list, dict]:
    """Run notebook ``name`` with ``check`` (code printing one JSON line) as an extra last cell; returns
    (the notebook's own cells, executed, and the check's JSON)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("LATENT_INSTRUMENT_SHARED", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    own = len(notebook.cells)
    notebook.cells.append(nbformat.v4.new_code_cell(check))
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # a cell that raises fails here, with its traceback
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs if o.output_type == "stream")
    return notebook.cells[:own], json.loads(printed.strip().splitlines()[-1])


def pictures(cells: list) -> list[Image.Image]:
    """Every picture the cells show, in order."""
    found = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                found.append(Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))))
    return found


def test_the_encode_slerp_decode_notebook(shared, tmp_path, monkeypatch):
    check = """import json, numpy as np
first, trip = np.asarray(frames[0], dtype=int), np.asarray(round_trip[0], dtype=int)
print(json.dumps({"frames": [f.size for f in frames],
                  "first_vs_round_trip": float(np.abs(first - trip).max()),
                  "last_vs_round_trip": float(np.abs(np.asarray(frames[-1], dtype=int)
                                                     - np.asarray(round_trip[1], dtype=int)).max()),
                  "scrubber": list(scrubber.image.size), "exact": scrubber.exact, "s": scrubber.coords.s}))
scrubber.close()"""
    cells, facts = execute("01-encode-slerp-decode.ipynb", check, shared, tmp_path, monkeypatch)
    assert facts["frames"] == [[128, 128]] * 8
    assert facts["first_vs_round_trip"] <= 2 and facts["last_vs_round_trip"] <= 2  # the walk's ends
    assert facts["scrubber"] == [128, 128] and facts["exact"] and facts["s"] == 0.25
    shown = pictures(cells)
    assert [p.size for p in shown] == [(400, 154), (1060, 154), (268, 154), (128, 128)]
    assert any(WIDGET in o.get("data", {}) for cell in cells for o in cell.get("outputs", []))


def test_the_atlas_notebook(shared, tmp_path, monkeypatch):
    check = """import json, torch
at_anchors = [bool(torch.allclose(atlas.from_map(*xy), atlas.latents[i], atol=1e-3))
              for i, xy in enumerate(atlas.coords.tolist())]
originals = [i for i, n in enumerate(atlas.names) if "-" not in n]
def nearest_original(i):
    return atlas.names[min(originals, key=lambda j: float((atlas.coords[i] - atlas.coords[j]).norm()))]
mirrors = {n: nearest_original(i) for i, n in enumerate(atlas.names) if n.endswith("-mirror")}
print(json.dumps({"names": atlas.names, "exact": all(at_anchors), "mirrors": mirrors,
                  "saved": sorted(p.name for p in (folder / "atlas").iterdir())}))"""
    cells, facts = execute("02-atlas.ipynb", check, shared, tmp_path, monkeypatch)
    assert len(facts["names"]) == 15 and facts["exact"]
    assert facts["mirrors"] == {f"{n}-mirror": n for n in ("dog", "family", "panda", "pastry", "scribe")}
    assert facts["saved"] == ["atlas.json", "atlas.safetensors"]
    shown = pictures(cells)
    assert shown[0].width == 640 and shown[1].size == (6 * 100 + 4, 4 + 96 + 18 + 4)


def test_the_weather_map_and_pacing_notebook(shared, tmp_path, monkeypatch):
    check = """import json
variation = {name: float(steps.std() / steps.mean()) for name, steps in profiles.items()}
print(json.dumps({"grid": list(wmap.stretch.shape), "bend": [float(wmap.bend.min()), float(wmap.bend.max())],
                  "energy": {r.name: r.energy for r in wmap.routes},
                  "evenness": {r.name: r.energy / r.length ** 2 for r in wmap.routes},
                  "variation": variation}))"""
    cells, facts = execute("03-stretch-and-pacing.ipynb", check, shared, tmp_path, monkeypatch)
    assert facts["grid"] == [7, 7] and 0 <= facts["bend"][0] <= facts["bend"][1] <= 1
    energy, evenness = facts["energy"], facts["evenness"]
    assert list(energy) == ["LERP", "SLERP", "geodesic", "paced SLERP"]
    assert energy["geodesic"] < energy["SLERP"] and energy["paced SLERP"] < energy["SLERP"]
    assert evenness["paced SLERP"] < evenness["SLERP"] and min(evenness.values()) >= 1 - 1e-6  # E >= L²
    assert facts["variation"]["paced"] < facts["variation"]["even steps"] / 3
    shown = pictures(cells)
    # the weather map (stretch and bend panels of 320 px, three routes in its legend), the chart, the sheet
    assert [p.size for p in shown] == [(892, 468), (640, 320), (17 * 52 + 4, 2 * 52 + 4)]
