"""PSA summaries against hand calculations on tiny arrays, and charts that parse as SVG."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from engine.psa.charts import ce_plane_svg, ceac_svg
from engine.psa.summary import (
    ceac,
    evpi,
    intervals,
    monte_carlo_vs_between,
    net_monetary_benefit,
)

SVG = "{http://www.w3.org/2000/svg}"
# Two draws, two arms. At t = 10: NMB draw 0 = (10-5, 20-10) = (5, 10): arm 1 best;
# draw 1 = (10-5, 10-10) = (5, 0): arm 0 best.
COSTS = np.array([[5.0, 10.0], [5.0, 10.0]])
QALYS = np.array([[1.0, 2.0], [1.0, 1.0]])


def test_net_monetary_benefit_is_threshold_times_qalys_minus_cost():
    nmb = net_monetary_benefit(COSTS, QALYS, [0.0, 10.0])
    assert nmb.shape == (2, 2, 2)
    np.testing.assert_array_equal(nmb[1], [[5.0, 10.0], [5.0, 0.0]])
    np.testing.assert_array_equal(nmb[0], -COSTS)


def test_ceac_counts_the_best_arm_and_splits_ties():
    # t = 0: arm 0 cheaper in both draws; t = 10: one draw each; t = 5: draw 0 ties (0, 0).
    probabilities = ceac(COSTS, QALYS, [0.0, 5.0, 10.0])
    np.testing.assert_allclose(probabilities, [[1.0, 0.0], [0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_evpi_by_hand_and_zero_when_one_arm_always_wins():
    # t = 10: E[max] = (10 + 5) / 2 = 7.5; max E = max(5, 5) = 5; EVPI = 2.5.
    np.testing.assert_allclose(evpi(COSTS, QALYS, [10.0]), [2.5])
    dominant = evpi(
        np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[2.0, 1.0], [4.0, 3.0]]), [0, 1e4]
    )
    np.testing.assert_array_equal(dominant, [0.0, 0.0])


def test_intervals_are_percentiles_over_draws():
    values = np.arange(101, dtype=float)[:, None] * [1.0, 2.0]
    low, high = intervals(values, level=0.9)
    np.testing.assert_allclose(low, [5.0, 10.0])
    np.testing.assert_allclose(high, [95.0, 190.0])
    with pytest.raises(ValueError):
        intervals(values, level=1.5)


def test_monte_carlo_against_between_draws_and_the_advice():
    means = np.array([1.0, 3.0, 5.0])  # sd 2
    noisy = monte_carlo_vs_between(means, np.array([1.0, 1.0, 1.0]))
    assert noisy["between_draws_sd"] == pytest.approx(2.0)
    assert noisy["monte_carlo_se"] == pytest.approx(1.0)
    assert noisy["ratio"] == pytest.approx(0.5)
    assert noisy["parameter_sd"] == pytest.approx(math.sqrt(3.0))
    assert "more patients per draw (N)" in noisy["advice"]
    quiet = monte_carlo_vs_between(means, np.array([0.1, 0.2, 0.2]))
    assert quiet["monte_carlo_se"] == pytest.approx(math.sqrt(0.09 / 3))
    assert "more draws (K)" in quiet["advice"]
    assert "at least 2 draws" in monte_carlo_vs_between([1.0], [0.1])["advice"]


def test_ce_plane_has_a_point_per_draw_a_mean_and_a_line_per_threshold():
    rng = np.random.default_rng(4)
    svg = ce_plane_svg(
        rng.normal(500, 800, 37), rng.normal(0.05, 0.04, 37), [20_000, 30_000], "£", "A vs B"
    )
    root = ET.fromstring(svg)
    assert len(root.findall(f"{SVG}circle[@class='draw']")) == 37
    assert len(root.findall(f"{SVG}rect[@class='mean']")) == 1
    assert len(root.findall(f"{SVG}line[@class='threshold']")) == 2
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "Incremental QALYs per patient" in texts and "Incremental cost per patient (£)" in texts
    assert "£20,000 per QALY" in texts


def test_ceac_chart_has_a_curve_per_arm_and_a_legend():
    thresholds = np.linspace(0, 50_000, 11)
    probabilities = np.column_stack([np.linspace(1, 0, 11), np.linspace(0, 1, 11)])
    root = ET.fromstring(ceac_svg(thresholds, probabilities, ["2q8", "T&E"], "£"))
    curves = root.findall(f"{SVG}polyline[@class='curve']")
    assert len(curves) == 2
    assert all(len(c.get("points").split()) == 11 for c in curves)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "T&E" in texts and "Probability cost-effective" in texts
    assert "Willingness to pay (£ per QALY)" in texts


def test_every_exported_name_has_a_docstring():
    import inspect

    import engine.psa

    for name in engine.psa.__all__:
        value = getattr(engine.psa, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
