"""User errors through the real command line (``python -m instrument``): one or two lines with the cause and
the fix, exit status 2, no traceback unless --debug; that includes an error in play's render thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.cli import main

ROOT = Path(__file__).resolve().parents[2]
HTML = b"<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n"


def run(args: list[str], tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf_home"),
           "HF_HUB_OFFLINE": "1", "SDL_VIDEODRIVER": "dummy", "JACK_NO_START_SERVER": "1"}
    env.pop("PYTHONIOENCODING", None)  # a plain UTF-8 pipe, strict, as a terminal or a log file gets
    return subprocess.run([sys.executable, "-m", "instrument", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=tmp_path)


def model_flags(model: Path, tmp_path: Path) -> list[str]:
    return ["--model", str(model), "--family", "flux2", "--full-model", "none", "--device", "cpu",
            "--size", "64", "--cache-dir", str(tmp_path / "cache")]


@pytest.fixture
def truncated(shared, tmp_path) -> Path:
    path = tmp_path / "taef2_decoder.pth"
    path.write_bytes((shared / "models" / "taef2_decoder.pth").read_bytes()[:60_000])
    return path


def test_a_broken_model_in_plays_render_thread_is_two_lines_and_exit_2(truncated, tmp_path):
    done = run(["play", "--headless", "--midi-ports", "none", "--frames", "3",
                *model_flags(truncated, tmp_path)], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2].endswith("render thread failed")
    assert lines[-1].startswith(str(truncated)) and "truncated or corrupt" in lines[-1]
    assert "download it again" in lines[-1]


def test_debug_shows_the_traceback(truncated, tmp_path):
    done = run(["--debug", "play", "--headless", "--midi-ports", "none", "--frames", "3",
                *model_flags(truncated, tmp_path)], tmp_path)
    assert done.returncode == 2 and "Traceback" in done.stderr and "ModelLoadError" in done.stderr


def test_a_web_page_given_as_the_model_stops_play_before_it_starts(tmp_path):
    page = tmp_path / "taesd_decoder.pth"
    page.write_bytes(HTML)
    done = run(["play", "--headless", "--midi-ports", "none", "--model", str(page)], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"latent-instrument play: error: {page}: not a checkpoint: looks like an HTML page (a web page saved "
        "in place of the file); download the real file"
    ]


def test_encode_a_folder_with_a_latin1_name_and_a_fifo(shared, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    latin1 = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    latin1.write_bytes((shared / "images" / "panda.png").read_bytes())
    (folder / "dog.png").write_bytes((shared / "images" / "dog.png").read_bytes())
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(tmp_path / "named.png")
    out = tmp_path / "latents"
    done = run(["encode", str(folder), str(tmp_path / "named.png"), "-o", str(out),
                *model_flags(shared / "models" / "taef2_decoder.pth", tmp_path)], tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2  # the FIFO given by name is an error; the folder's pictures are written
    assert "named.png: is a FIFO (named pipe), not a regular file" in done.stderr
    assert "caf\ufffd.png: encoded ->" in done.stdout and "dog.png: encoded ->" in done.stdout
    written = sorted(p.name for p in out.glob("*.safetensors"))
    assert written == ["caf\ufffd.safetensors", "dog.safetensors"]


def test_an_output_folder_that_cannot_be_made_is_one_line(shared, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    status = main(["encode", "seed:1", "-o", str(a_file / "latents"),
                   *model_flags(shared / "models" / "taef2_decoder.pth", tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip() == f"latent-instrument encode: error: {a_file / 'latents'}: Not a directory"


def test_debug_in_process_prints_the_traceback_of_a_user_error(tmp_path, capsys):
    status = main(["--debug", "encode", "seed:1", "-o", str(tmp_path / "out"), "--model",
                   str(tmp_path / "missing_decoder.pth"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" in err and err.strip().endswith("no such file or folder")
