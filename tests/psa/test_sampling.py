"""PSA draws: reproducible by (seed, draw), faithful to their distributions, within bounds."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from engine.calibration.free_parameters import get_value, parse_free
from engine.errors import UncertaintyError
from engine.psa.calibrated import CalibrationUncertainty
from engine.psa.sampling import apply_model, draw_parameters, load_calibration_uncertainty
from engine.psa.uncertainty import load_uncertainty
from tests.psa.conftest import CALIBRATION, EXAMPLE

SAMPLES = 20_000

FOUR = """
uncertainty:
  - {parameter: utilities.utilities.0, distribution: beta, mean: 0.7, sd: 0.1, source: s}
  - {parameter: costs.drug_costs.x, distribution: gamma, mean: 800, sd: 200, source: s}
  - {parameter: mortality.hazard_ratios.primary, distribution: lognormal, mean: 1.36, sd: 0.3, source: s}
  - {parameter: costs.enrolment_cost, distribution: normal, mean: -5, sd: 2, source: s}
  - parameter: disease_transitions.fortnightly_transitions.ACTIVE
    distribution: dirichlet
    alpha: {STABLE: 5, ACTIVE: 90, HIGHLY_ACTIVE: 5}
    source: s
"""


@pytest.fixture(scope="module")
def calibration():
    return load_calibration_uncertainty(CALIBRATION)


def test_draws_are_reproducible_and_independent_of_the_count(protocol, calibration):
    uncertain = load_uncertainty(EXAMPLE, protocol)
    ten = draw_parameters(10, 7, calibration, uncertain)
    fifty = draw_parameters(50, 7, calibration, uncertain)
    again = draw_parameters(10, 7, calibration, uncertain)
    other = draw_parameters(10, 8, calibration, uncertain)
    for i in range(10):
        assert ten.draw(i) == fifty.draw(i) == again.draw(i)
        assert ten.draw(i).parameters != other.draw(i).parameters
    assert ten.count == 10 and fifty.count == 50
    assert ten.parameter_names == list(ten.draw(0).parameters)


def test_each_distribution_matches_its_mean_and_sd(protocol, write_file):
    """Tolerance: 3 standard errors of the mean (sd/sqrt(n)) and of the sd (~sd/sqrt(2n))."""
    path = write_file(FOUR)
    entries = load_uncertainty(path, protocol)
    draws = draw_parameters(SAMPLES, 11, None, entries)
    for entry in entries[:4]:
        column = draws.values[:, draws.parameter_names.index(entry.parameter)]
        assert abs(column.mean() - entry.mean) < 3 * entry.sd / math.sqrt(SAMPLES), entry
        # The sd of a skewed variable's sample sd is wider; 3 SE with the kurtosis taken in.
        kurtosis = np.mean((column - column.mean()) ** 4) / column.var() ** 2
        se_sd = entry.sd * math.sqrt((kurtosis - 1) / (4 * SAMPLES))
        assert abs(column.std(ddof=1) - entry.sd) < 3 * se_sd, entry
    rows = draws.values[:, -3:]
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    alpha = np.array([5, 90, 5]) / 100
    se = np.sqrt(alpha * (1 - alpha) / 101 / SAMPLES)
    assert np.all(np.abs(rows.mean(axis=0) - alpha) < 3 * se)


def test_economic_only_draws_have_no_model_values(protocol, write_file):
    path = write_file(
        "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: gamma, mean: 5, sd: 2, source: s}\n"
    )
    draw = draw_parameters(3, 1, None, load_uncertainty(path, protocol)).draw(2)
    assert (
        draw.economic_only and draw.model == {} and list(draw.economic) == ["costs.enrolment_cost"]
    )
    assert apply_model(protocol, draw) is protocol


def _synthetic(fitted, se, correlation):
    covariance = np.outer(se, se) * correlation
    return CalibrationUncertainty(
        source="synthetic.json",
        paths=[f"p{i}" for i in range(len(fitted))],
        labels=[f"p{i}" for i in range(len(fitted))],
        fitted=list(fitted),
        lower=[0.0] * len(fitted),
        upper=[1.0] * len(fitted),
        covariance=covariance.tolist(),
    )


@pytest.mark.parametrize("bounds", ["truncated", "logit"])
def test_narrow_calibration_keeps_its_covariance(bounds):
    """SEs of 0.01 at 0.3-0.6 in [0, 1]: bounds never bite, so the sample covariance matches
    the calibration's: each variance within 5 % (3 SE is ~3 %, the logit's curvature adds ~1 %)
    and each correlation within 0.03."""
    correlation = np.array([[1.0, 0.8, -0.5], [0.8, 1.0, -0.3], [-0.5, -0.3, 1.0]])
    calibration = _synthetic([0.3, 0.5, 0.6], [0.01, 0.01, 0.01], correlation)
    values = draw_parameters(SAMPLES, 3, calibration, [], bounds=bounds).values
    sample = np.cov(values, rowvar=False)
    given = np.asarray(calibration.covariance)
    np.testing.assert_allclose(np.diag(sample), np.diag(given), rtol=0.05)
    np.testing.assert_allclose(np.corrcoef(values, rowvar=False), correlation, atol=0.03)
    np.testing.assert_allclose(
        values.mean(axis=0), calibration.fitted, atol=3 * 0.01 / math.sqrt(SAMPLES) * 1.5
    )


@pytest.mark.parametrize("bounds", ["truncated", "logit"])
def test_real_calibration_draws_stay_within_bounds(calibration, bounds):
    draws = draw_parameters(2000, 5, calibration, [], bounds=bounds)
    values = draws.values
    assert np.all(values > np.asarray(calibration.lower))
    assert np.all(values < np.asarray(calibration.upper))
    assert draws.truncation.clipped == 0
    assert ("truncated" if bounds == "truncated" else "logit scale") in draws.truncation.describe()


def test_real_calibration_logit_medians_are_the_fitted_values(calibration):
    """The logit method's median is the fitted value exactly: the share of draws at or below it
    is 1/2 within 3 binomial SEs, for every parameter."""
    count = 4000
    values = draw_parameters(count, 5, calibration, [], bounds="logit").values
    below = (values <= np.asarray(calibration.fitted)).mean(axis=0)
    assert np.all(np.abs(below - 0.5) < 3 * math.sqrt(0.25 / count))


def test_real_calibration_truncated_medians_move_only_where_bounds_bite(calibration):
    """Truncation moves the median by a small part of an SE where the bounds rarely bite
    (attrition: a natural-scale normal leaves its bounds 14 % of the time); the report lists
    the medians it moved further, and at least one moves by a large part of its range."""
    draws = draw_parameters(2000, 5, calibration, [])
    report = draws.truncation
    se = np.sqrt(np.diag(np.asarray(calibration.covariance)))
    j = calibration.labels.index("discontinuation_parameters.attrition.base_probability_per_visit")
    assert report.outside_share[j] < 0.2
    assert abs(report.median[j] - calibration.fitted[j]) < 0.25 * se[j]
    width = np.subtract(calibration.upper, calibration.lower)
    assert np.max(np.abs(np.subtract(report.median, calibration.fitted)) / width) > 0.1
    assert 0 < report.acceptance < 0.01


def test_apply_model_changes_exactly_the_drawn_values(protocol, calibration, write_file):
    path = write_file(FOUR)
    draw = draw_parameters(5, 2, calibration, load_uncertainty(path, protocol)).draw(4)
    changed = apply_model(protocol, draw)
    for name, value in draw.model.items():
        keys = name.split(".")
        if len(keys) == 4 and keys[2] == keys[3]:
            row = getattr(changed.parameters.disease_transitions.fortnightly_transitions, keys[2])
            assert getattr(row, keys[3]) == pytest.approx(value, abs=1e-12)
            continue
        (free,) = parse_free(name, protocol)
        assert get_value(changed, free) == pytest.approx(value, rel=1e-12)
    untouched = [
        "mortality.mortality_rates.male.70",
        "disease_transitions.fortnightly_transitions.NAIVE.ACTIVE",
        "vision.vision_decline_fortnightly.STABLE.untreated.mean",
    ]
    for name in untouched:
        (free,) = parse_free(name, protocol)
        assert get_value(changed, free) == get_value(protocol, free)


def test_uncertainty_entry_also_calibrated_is_refused(protocol, calibration, write_file):
    path = write_file(
        "uncertainty:\n  - {parameter: treatment_effect.treatment_response.responder_probability, "
        "distribution: beta, mean: 0.9, sd: 0.05, source: s}\n"
    )
    with pytest.raises(UncertaintyError) as caught:
        draw_parameters(2, 1, calibration, load_uncertainty(path, protocol))
    assert str(caught.value).startswith(
        "uncertainty.yaml: $.uncertainty[0].parameter: "
        "treatment_effect.treatment_response.responder_probability is also calibrated"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(covariance=d["covariance"][:-1]), "$.covariance"),
        (lambda d: d["parameters"][0].update(fitted=5.0), "$.parameters[0].fitted"),
        (lambda d: d["covariance"][0].__setitem__(1, 99.0), "$.covariance"),
    ],
)
def test_bad_calibration_file_names_the_field(tmp_path, change, field):
    data = json.loads(CALIBRATION.read_text())
    change(data)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UncertaintyError, match=re.escape(f"calibration.json: {field}: ")):
        load_calibration_uncertainty(path)


def test_calibration_file_not_json_is_refused(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text("{nope")
    with pytest.raises(UncertaintyError, match=r"calibration\.json: is not valid JSON"):
        load_calibration_uncertainty(path)
