"""Costs, discounting, QALYs, ICER, NMB and Fieller's interval against a hand calculation.

Three patients, two arms, written out visit by visit: the per-patient vector
(engine.compare.features.arm_features), the weights from a cost file in the origin app's
HRG-aligned layout and from amdsim's own layout (engine.compare.valuation), and the pair's
document (engine.compare.report) must equal what the formulas give computed here directly.
Years in VA bands are given (their exact discounted integral is tested in test_vision_time).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace

import numpy as np
import pytest

from engine.columns import NULL
from engine.compare.features import EyeSettings, arm_features
from engine.compare.matrix_moments import MatrixMoments
from engine.compare.report import ReportSettings, comparison_document
from engine.compare.totals import ArmTotals, CompareTotals, PairTotals
from engine.compare.valuation import arm_weights, eye_bands
from engine.economics.costs import drug_cost, load_cost_file
from engine.economics.utilities import load_utility_table
from engine.stats.moments import Moments
from engine.stats.shard_stats import Counts

RATE = 0.035
YEAR = 365.25
Z = NormalDist().inv_cdf(0.975)

HRG_FILE = """\
metadata:
  name: "Test HRG-aligned costs"
  currency: "GBP"
  effective_date: "2025-06-21"
drug_costs:
  eylea_2mg_biosimilar: 355
  default_drug: "eylea_2mg_biosimilar"
visit_components:
  injection_administration: 134
  oct_scan: 110
  consultant_followup: 75
  nurse_review: 40
visit_types:
  tae_assessment:
    components: [injection_administration, oct_scan, consultant_followup]
    total_cost: 319
  loading_injection:
    components: [injection_administration, nurse_review]
    total_cost: 174
  monitoring_only:
    components: [oct_scan, consultant_followup]
    total_cost: 185
special_events:
  initial_referral: 250
  discontinuation_admin: 50
amdsim:
  blindness: {cost_per_year: 5000, threshold_letters: 35, source: "test"}
"""

UTILITIES = """\
format_version: 1
source: "test table"
lower_edges: [0, 36, 70]
utilities: [0.5, 0.7, 0.9]
fellow_eye: [0.2, 0.3, 0.5]
treated_eye_better_share: 0.5
"""

# Per arm, per patient: visits (day, visit number, injected), discontinuation (day or None)
# and years alive in each band, plain and discounted (bands: blind 0-35, 36-69, 70+).
ARMS = [
    {
        "visits": [
            [(0, 0, True), (28, 1, True), (56, 2, True), (112, 3, True), (200, 4, False)],
            [(14, 0, True), (42, 1, True), (70, 2, True), (126, 3, True)],
            [(0, 0, True), (28, 1, True), (56, 2, True), (140, 3, False)],
        ],
        "stopped": [None, None, 140],
        "years": [[0.0, 1.0, 1.0], [0.2, 1.5, 0.3], [0.5, 1.5, 0.0]],
        "discounted": [[0.0, 0.98, 0.95], [0.19, 1.46, 0.29], [0.48, 1.44, 0.0]],
    },
    {
        "visits": [
            [(0, 0, True), (28, 1, True), (56, 2, True), (168, 3, True)],
            [(14, 0, True), (42, 1, True), (70, 2, True), (182, 3, True), (300, 4, True)],
            [(0, 0, True), (28, 1, True), (56, 2, True)],
        ],
        "stopped": [None, None, 56],
        "years": [[0.0, 0.8, 1.2], [0.1, 1.4, 0.5], [0.5, 1.4, 0.15]],
        "discounted": [[0.0, 0.78, 1.15], [0.09, 1.37, 0.48], [0.48, 1.35, 0.14]],
    },
]
ENROLMENT = [0, 14, 0]
BETTER = np.array([True, True, False])
FELLOW_BAND = np.array([0, 1, 2])
LOADING = 3


def _features(arm: dict, settings: EyeSettings) -> np.ndarray:
    rows = [(p, *v) for p, visits in enumerate(arm["visits"]) for v in visits]
    visits = {
        "patient_id": np.array([r[0] for r in rows]),
        "day": np.array([r[1] for r in rows]),
        "visit": np.array([r[2] for r in rows]),
        "injected": np.array([r[3] for r in rows]),
    }
    patients = {
        "patient_id": np.arange(3),
        "enrollment_day": np.array(ENROLMENT),
        "discontinuation_reason": np.array([NULL if s is None else 3 for s in arm["stopped"]]),
        "discontinuation_day": np.array([NULL if s is None else s for s in arm["stopped"]]),
    }
    tracker = SimpleNamespace(
        bands=3, years=np.array(arm["years"]), discounted_years=np.array(arm["discounted"])
    )
    return arm_features(patients, visits, tracker, BETTER, FELLOW_BAND, LOADING, settings)


def _by_hand(arm: dict, prices: dict[str, float], utilities: list[float]) -> tuple[list, list]:
    """Each patient's discounted cost and QALYs, from the formulas of docs/analysis.md."""
    costs, qalys = [], []
    for p in range(3):
        cost = prices["enrolment"]
        for day, number, injected in arm["visits"][p]:
            t = day - ENROLMENT[p]
            if injected:
                kind = "loading_injection" if number < LOADING else "injection"
                price = prices[kind] + prices["drug"] + prices["adverse"]
            else:
                price = prices["monitoring"]
            cost += price * (1 + RATE) ** (-t / YEAR)
        if arm["stopped"][p] is not None:
            t = arm["stopped"][p] - ENROLMENT[p]
            cost += prices["discontinuation"] * (1 + RATE) ** (-t / YEAR)
        if BETTER[p]:
            years = arm["discounted"][p]
        else:  # the fellow eye is the better-seeing eye all along
            years = [0.0, 0.0, 0.0]
            years[FELLOW_BAND[p]] = sum(arm["discounted"][p])
        cost += prices["blindness"] * years[0]
        costs.append(cost)
        qalys.append(sum(u * y for u, y in zip(utilities, years, strict=True)))
    return costs, qalys


def _document(costs_path: Path, utilities_path: Path, drug: str):
    costs = load_cost_file(costs_path)
    table = load_utility_table(utilities_path)
    bands = eye_bands(
        list(table.lower_edges),
        list(table.utilities),
        list(table.fellow_eye),
        costs.blindness_threshold_letters,
    )
    settings = EyeSettings(
        edges=bands.edges,
        fellow_probabilities=bands.fellow_probabilities,
        treated_eye_better_share=0.5,
        cost_rate=RATE,
        outcome_rate=RATE,
    )
    weights = arm_weights(
        bands,
        dict(costs.visit_costs),
        drug_cost(costs, drug),
        costs.adverse_event_cost_per_injection,
        costs.discontinuation_cost,
        costs.blindness_cost_per_year,
        costs.enrolment_cost,
    )
    features = [_features(arm, settings) for arm in ARMS]
    weeks = np.zeros((3, 10), dtype=np.int64)
    totals = CompareTotals(
        patients=3,
        arms=[ArmTotals(Counts(), MatrixMoments.of(f), weeks, 0) for f in features],
        pairs=[
            PairTotals(
                0,
                1,
                MatrixMoments.of(np.hstack([features[1] - features[0], features[0]])),
                [Moments.of(np.zeros(3))] * 3,
                True,
            )
        ],
    )
    report = ReportSettings(
        arm_names=["A", "B"],
        weights=[weights, weights],
        thresholds=[20_000.0],
        session_capacity=20.0,
        valuation={},
        run={},
    )
    prices = dict(costs.visit_costs) | {
        "drug": drug_cost(costs, drug),
        "adverse": costs.adverse_event_cost_per_injection,
        "discontinuation": costs.discontinuation_cost,
        "blindness": costs.blindness_cost_per_year,
        "enrolment": costs.enrolment_cost,
    }
    return comparison_document(totals, report), prices, list(table.utilities)


@pytest.mark.parametrize("layout", ["origin HRG-aligned", "amdsim"])
def test_costs_qalys_icer_nmb_and_fieller_equal_a_hand_calculation(tmp_path, layout) -> None:
    utilities = tmp_path / "utilities.yaml"
    utilities.write_text(UTILITIES)
    if layout == "amdsim":
        costs_path = Path(__file__).resolve().parents[2] / "engine/economics/defaults"
        costs_path = costs_path / "nhs_costs_2025.yaml"
        drug = "aflibercept_2mg"
    else:
        costs_path = tmp_path / "hrg.yaml"
        costs_path.write_text(HRG_FILE)
        drug = "eylea_2mg_biosimilar"
    document, prices, table = _document(costs_path, utilities, drug)
    if layout != "amdsim":  # the origin file's own numbers, read unchanged
        assert prices["injection"] == 319 and prices["loading_injection"] == 174
        assert prices["monitoring"] == 185 and prices["drug"] == 355
        assert prices["blindness"] == 5000 and prices["discontinuation"] == 50
    hand = [_by_hand(arm, prices, table) for arm in ARMS]
    for arm, (costs, qalys) in zip(document["arms"], hand, strict=True):
        assert arm["per_patient"]["cost"]["mean"] == pytest.approx(np.mean(costs), rel=1e-12)
        assert arm["per_patient"]["cost"]["sd"] == pytest.approx(np.std(costs, ddof=1), rel=1e-9)
        assert arm["per_patient"]["qalys"]["mean"] == pytest.approx(np.mean(qalys), rel=1e-12)
    dc = np.subtract(hand[1][0], hand[0][0])
    dq = np.subtract(hand[1][1], hand[0][1])
    pair = document["pairs"][0]
    assert pair["differences"]["cost"]["mean"] == pytest.approx(dc.mean(), rel=1e-12)
    assert pair["differences"]["qalys"]["mean"] == pytest.approx(dq.mean(), rel=1e-12)
    assert pair["icer"] == pytest.approx(dc.mean() / dq.mean(), rel=1e-9)
    # NMB at 20,000 per QALY: mean and normal-quantile interval of 20,000 dq - dc.
    nmb = 20_000 * dq - dc
    half = Z * nmb.std(ddof=1) / math.sqrt(3)
    row = pair["net_monetary_benefit"][0]
    assert row["mean"] == pytest.approx(nmb.mean(), rel=1e-9)
    assert (row["low"], row["high"]) == pytest.approx((nmb.mean() - half, nmb.mean() + half))
    # Fieller: R with (dq^2 - z^2 Vq) R^2 - 2 (dc dq - z^2 Cqc) R + (dc^2 - z^2 Vc) = 0.
    vc, vq = dc.var(ddof=1) / 3, dq.var(ddof=1) / 3
    cov = np.cov(dc, dq, ddof=1)[0, 1] / 3
    a = dq.mean() ** 2 - Z**2 * vq
    b = -2 * (dc.mean() * dq.mean() - Z**2 * cov)
    c = dc.mean() ** 2 - Z**2 * vc
    interval = pair["icer_interval"]
    assert a > 0 and b * b - 4 * a * c > 0  # ΔE clear of 0: a bounded interval
    roots = sorted(np.roots([a, b, c]).real)
    assert interval["kind"] == "bounded"
    assert (interval["low"], interval["high"]) == pytest.approx(tuple(roots), rel=1e-9)


def test_the_hand_example_has_a_bounded_fieller_interval() -> None:
    """The data above are chosen so the QALY difference is clear of 0 (the bounded case)."""
    prices = dict.fromkeys(
        (
            "loading_injection",
            "injection",
            "monitoring",
            "drug",
            "adverse",
            "discontinuation",
            "blindness",
            "enrolment",
        ),
        0.0,
    )
    first, second = (_by_hand(arm, prices, [0.5, 0.7, 0.9])[1] for arm in ARMS)
    difference = np.subtract(second, first)
    assert difference.mean() ** 2 > Z**2 * difference.var(ddof=1) / 3
