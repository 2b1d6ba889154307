"""Perceptual pacing: the table from a survey (monotone cubic inside pieces, breaks at corners), a real SLERP
paced, and the survey as a job."""

from __future__ import annotations

import math

import torch

from instrument.lab.jobs import finish
from instrument.lab.pacing import PacingTable, pacing_table, survey, table_from_steps
from instrument.lab.stretch import path_profile
from instrument.latent.geometry import slerp


def cv(x: torch.Tensor) -> float:
    return float(x.std() / x.mean())


def ramp_decode(z: torch.Tensor) -> torch.Tensor:
    """A made-up decoder: the latent's one number as a flat grey picture, [B,1,1,1] -> [B,3,4,4]."""
    return z.view(-1, 1, 1, 1).expand(-1, 3, 4, 4)


def test_pacing_evens_out_picture_change(ae, latents64):
    """Frames at the table's positions change the picture at a steady rate, where even steps in s do not."""
    a, b = latents64[0], latents64[1]

    def path(s: torch.Tensor) -> torch.Tensor:
        return slerp(a, b, s)

    frames = 25
    uniform = path_profile(ae.decode, path(torch.linspace(0, 1, frames)))
    table = pacing_table(ae.decode, path, samples=17)
    paced = path_profile(ae.decode, path(table.positions(frames)))
    print(f"CV uniform {cv(uniform):.4f} -> paced {cv(paced):.4f}")
    assert cv(uniform) > 0.05  # there is something to fix
    assert cv(paced) < 0.02
    assert abs(float(paced.sum()) - float(uniform.sum())) < 0.05 * float(uniform.sum())


def test_the_cubic_follows_speed_between_samples():
    """A picture whose change speeds up along the path (pixel value s², so arc length s²): a table from 9
    samples places u where the arc length really is u, far better than straight lines between samples."""
    def path(s: torch.Tensor) -> torch.Tensor:
        return (s ** 2).view(-1, 1, 1, 1)

    table = pacing_table(ramp_decode, path, samples=9)
    s9 = torch.linspace(0, 1, 9)
    lines = PacingTable(s9, s9 ** 2, 1.0)  # what straight lines between the same samples give
    u = torch.linspace(0, 1, 101)
    error, error_lines = ((t(u) - u.sqrt()).abs()[5:].max() for t in (table, lines))  # (√ is steep at 0)
    change, change_lines = (path(t.positions(33)).flatten().diff() for t in (table, lines))
    assert float(error) < 0.002 and float(error) < float(error_lines) / 5
    assert cv(change) < 0.01 and cv(change) < cv(change_lines) / 5


def test_a_break_keeps_a_corner_sharp():
    """Speed 1 then speed 3 from the middle on: with a break at the middle sample the table is exact on
    both sides; the cubic would otherwise round the corner off."""
    s = torch.linspace(0, 1, 9)
    steps = torch.tensor([1.0] * 4 + [3.0] * 4)
    truth = torch.where(s <= 0.5, s / 2, 0.25 + 3 * (s - 0.5) / 2) / 1.0
    u = torch.linspace(0, 1, 41)
    exact = torch.where(u <= 0.25, 2 * u, 0.5 + (u - 0.25) * 2 / 3)
    sharp = table_from_steps(s, steps, breaks=[4])
    round_ = table_from_steps(s, steps)
    assert torch.allclose(sharp.progress(s), truth, atol=1e-6)
    assert float((sharp(u) - exact).abs().max()) < 1e-5
    assert float((round_(u) - exact).abs().max()) > 1e-3


def test_table_inverts_and_stays_in_range():
    # A made-up path whose "picture" changes 4x faster at the end: speed ∝ s³.
    table = PacingTable(torch.linspace(0, 1, 101), torch.linspace(0, 1, 101) ** 4, 1.0)
    u = torch.linspace(0, 1, 11)
    s = table(u)
    assert torch.allclose(s, u ** 0.25, atol=0.02)
    assert torch.allclose(table.progress(s), u, atol=1e-4)
    assert table(-0.5) == 0.0 and table(2.0) == 1.0 and isinstance(table(0.3), float)
    assert bool((table.positions(7).diff() > 0).all())


def test_table_survives_a_standing_picture():
    """A path along which the picture does not change at all still gives positions from 0 to 1."""
    def path(s: torch.Tensor) -> torch.Tensor:
        return s.view(-1, 1, 1, 1).expand(-1, 4, 1, 1)

    table = pacing_table(lambda z: torch.zeros(len(z), 3, 8, 8), path, samples=9)
    positions = table.positions(5)
    assert positions[0] == 0 and positions[-1] == 1 and bool((positions.diff() >= 0).all())
    assert all(math.isfinite(float(p)) for p in positions)


def test_a_survey_is_a_job_of_batches(ae, latents64):
    def path(s: torch.Tensor) -> torch.Tensor:
        return slerp(latents64[1], latents64[2], s)

    job = survey(ae.decode, path, 9, batch=4)
    assert [next(job), next(job), next(job)] == ["4/9", "8/9", "9/9"]
    result = finish(job)
    assert result.steps.shape == (8,) and result.feats.shape[0] == 9
    whole = pacing_table(ae.decode, path, samples=9)
    assert torch.allclose(result.table().length, whole.length, atol=1e-5)
    measured = path_profile(ae.decode, path(torch.linspace(0, 1, 9)))
    assert abs(result.table().total - float(measured.sum())) < 1e-4
