"""Runs not simulated together, compared on the Compare page: Welch's and the Wald interval
against independent references, the table's differences from the runs' own outcome tables,
and the section refusing fewer than two runs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats as scipy_stats

from engine import run_simulation
from engine.model.protocol_loader import load_protocol
from engine.stats.unpaired import proportion_difference, welch_difference
from tests.viz.test_components import shown
from tests.viz.test_page_flow import _completed_run
from viz.context import ServerContext
from viz.unpaired_section import RunsComparison
from viz.unpaired_tables import unpaired_table_html


@pytest.mark.parametrize(("n_a", "n_b", "sd_b"), [(40, 55, 3.0), (500, 80, 14.0), (9, 9, 1.0)])
def test_welch_matches_scipys_unequal_variance_t_interval(n_a, n_b, sd_b):
    rng = np.random.default_rng(n_a + n_b)
    a, b = rng.normal(5.0, 10.0, n_a), rng.normal(8.0, sd_b, n_b)
    ours = welch_difference(a.mean(), a.std(ddof=1), n_a, b.mean(), b.std(ddof=1), n_b)
    reference = scipy_stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert ours.value == pytest.approx(b.mean() - a.mean(), abs=1e-12)
    assert (ours.low, ours.high) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_the_wald_interval_covers_the_true_difference_95_percent_of_the_time():
    """Coverage over 4,000 simulated pairs of cohorts (p 0.30 vs 0.36, 800 and 900 patients):
    95 % within +-1.2 points (about 3.5 standard errors of a coverage estimate)."""
    rng = np.random.default_rng(7)
    hits = rng.binomial(800, 0.30, 4000), rng.binomial(900, 0.36, 4000)
    covered = 0
    for x_a, x_b in zip(*hits, strict=True):
        d = proportion_difference(x_a / 800, 800, x_b / 900, 900)
        covered += d.low <= 0.06 <= d.high
    assert covered / 4000 == pytest.approx(0.95, abs=0.012)


def test_too_few_patients_give_no_interval():
    assert math.isnan(welch_difference(1, 1, 1, 2, 1, 50).value)
    assert math.isnan(proportion_difference(0.5, 0, 0.5, 10).low)


def test_the_table_puts_each_runs_difference_from_the_first_with_its_ci():
    protocol = load_protocol("aflibercept_2q8_view")
    first = run_simulation(protocol, 600, years=2, seed=1).statistics()
    second = run_simulation(load_protocol("aflibercept_prn_monthly"), 700, years=2, seed=2)
    runs = [("VIEW <b>2q8</b>", first), ("PRN", second.statistics())]
    html = unpaired_table_html(runs)
    assert "<b>2q8" not in html and "VIEW &lt;b&gt;2q8" in html  # labels are text
    assert "Unpaired" in html and "amdsim compare" in html
    a = next(r for r in first.outcome_table().rows if r.month == 12 and r.kind == "locf")
    b = next(r for r in runs[1][1].outcome_table().rows if r.month == 12 and r.kind == "locf")
    d = welch_difference(a.mean_change, a.sd, a.patients, b.mean_change, b.sd, b.patients)
    row = re.search(r"<tr><td>Mean VA change at 12 months \(letters\)</td>(.*?)</tr>", html)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells[0] == f"{a.mean_change:.1f} (n={a.patients:,})"
    assert cells[2] == f"{d.value:+.1f} ({d.low:+.1f} to {d.high:+.1f})"
    assert "Injections per patient-year, year 1" in html and "(no CI)" in html


def test_the_section_wants_two_runs_and_shows_them(tmp_path):
    context = ServerContext(runs_root=tmp_path / "runs")
    older, newer = _completed_run(context, seed=1), _completed_run(context, seed=2)
    section = RunsComparison(context)
    section.refresh_choices()
    assert set(section.choice.options.values()) == {older.name, newer.name}
    section.choice.value = [newer.name]
    assert not section.compare()
    assert shown(section.message.object) == "choose at least two finished runs"
    section.choice.value = [newer.name, older.name]
    assert section.compare() and section.charts.visible and not section.message.visible
    assert f"{older.name} &minus; {newer.name} (95 % CI)" in section.table.object
