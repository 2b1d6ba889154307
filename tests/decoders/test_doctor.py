"""``latent-instrument doctor`` runs on a bare machine (no MIDI, no display, empty caches) and says so."""

from __future__ import annotations

import argparse

from tiny_models import tiny_taesd

from instrument.doctor import configure_doctor, run_doctor


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    configure_doctor(parser)
    return run_doctor(parser.parse_args(argv))


def test_doctor_reports_every_section(tmp_path, capsys):
    snapshot = tmp_path / "hf_home" / "hub" / "models--madebyollin--taesd" / "snapshots" / "0123abcd"
    tiny_taesd().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    assert run(["--offline", "--device", "cpu", "--cache-dir", str(tmp_path / "anchors")]) == 0
    out = capsys.readouterr().out
    for heading in ("system", "compute", "MIDI", "display", "models", "anchors"):
        assert f"\n{heading}\n" in out
    assert "torch.float32" in out
    assert str(tmp_path / "hf_home" / "hub") in out
    assert "madebyollin/taesd (model" in out
    assert str(tmp_path / "anchors") in out
