"""Uncertainty files: what is accepted, and one message naming file, field and problem if not."""

from __future__ import annotations

import math

import pytest

from engine.errors import UncertaintyError
from engine.psa.uncertainty import load_uncertainty
from tests.psa.conftest import EXAMPLE


def test_example_file_loads_for_the_bundled_protocol(protocol):
    entries = load_uncertainty(EXAMPLE, protocol)
    assert all(entry.source for entry in entries)
    economic = [e.parameter for e in entries if e.economic]
    assert "costs.drug_costs.aflibercept_2mg" in economic
    model = [e.parameter for e in entries if not e.economic]
    assert model == [
        "mortality.hazard_ratios.primary",
        "disease_transitions.fortnightly_transitions.HIGHLY_ACTIVE",
    ]


def test_both_parameterisations_give_numpy_arguments_and_moments(protocol, write_file):
    path = write_file(
        """
uncertainty:
  - {parameter: utilities.utilities.0, distribution: beta, alpha: 2, beta: 6, source: s}
  - {parameter: utilities.utilities.1, distribution: beta, mean: 0.25, sd: 0.1, source: s}
  - {parameter: costs.enrolment_cost, distribution: gamma, shape: 4, scale: 25, source: s}
  - {parameter: costs.discontinuation_cost, distribution: gamma, mean: 100, sd: 50, source: s}
  - {parameter: mortality.hazard_ratios.primary, distribution: lognormal, mean: 1.4, sd: 0.2, source: s}
"""
    )
    a, b, c, d, e = load_uncertainty(path, protocol)
    assert a.arguments == (2.0, 6.0) and a.mean == pytest.approx(0.25)
    assert b.arguments == pytest.approx((4.4375, 13.3125))
    assert c.mean == 100 and c.sd == 50
    assert d.arguments == pytest.approx((4.0, 25.0))
    assert e.arguments[1] == pytest.approx(math.sqrt(math.log(1 + (0.2 / 1.4) ** 2)))
    assert (e.lower, e.upper) == (0.1, 10.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: weibull, mean: 1, sd: 1, source: s}\n",
            "uncertainty.yaml: $.uncertainty[0].distribution: unknown distribution 'weibull'; "
            "expected one of: beta, gamma, lognormal, normal, dirichlet",
        ),
        (
            "uncertainty:\n  - {parameter: utilities.utilities.0, distribution: beta, mean: 0.5, sd: 0.5, source: s}\n",
            "uncertainty.yaml: $.uncertainty[0].sd: 0.5 is too wide for a beta with mean 0.5; "
            "sd must be below sqrt(mean * (1 - mean)) = 0.5",
        ),
        (
            "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: gamma, mean: 1, sd: 1, source: s}\n"
            "  - {parameter: utilities.utilities.0, distribution: beta, mean: 0.5, sd: 0.1, source: s}\n"
            "  - {parameter: vision.no_such_block.mean, distribution: normal, mean: 1, sd: 1, source: s}\n",
            "uncertainty.yaml: $.uncertainty[2].parameter: no 'no_such_block' under vision; expected one of:",
        ),
        (
            "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: gamma, mean: 1, sd: 1, source: s}\n"
            "  - {parameter: costs.enrolment_cost, distribution: gamma, mean: 2, sd: 1, source: s}\n",
            "uncertainty.yaml: $.uncertainty[1].parameter: costs.enrolment_cost is already drawn by "
            "$.uncertainty[0]; name each parameter once",
        ),
        (
            "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: gamma, mean: -1, sd: 1, source: s}\n",
            "uncertainty.yaml: $.uncertainty[0].mean: a gamma's mean must be > 0, got -1",
        ),
        (
            "uncertainty:\n  - {parameter: costs.parking, distribution: gamma, mean: 1, sd: 1, source: s}\n",
            "uncertainty.yaml: $.uncertainty[0].parameter: costs.parking is not an economic path",
        ),
        (
            "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: normal, mean: 1, sd: 0, source: s}\n",
            "uncertainty.yaml: $.uncertainty[0].sd: must be > 0, got 0",
        ),
        (
            "uncertainty:\n  - {parameter: costs.enrolment_cost, distribution: normal, mean: 1, sd: 1}\n",
            "uncertainty.yaml: $.uncertainty[0].source: is missing; give it as text",
        ),
        (
            "uncertainty:\n  - {parameter: mortality.hazard_ratios.primary, distribution: normal, mean: 40, sd: 1, source: s}\n",
            "uncertainty.yaml: $.uncertainty[0].mean: 40 is outside the range",
        ),
        (
            "uncertainty: [1, 2\n",
            "uncertainty.yaml: is not valid YAML",
        ),
        (
            "- just a list\n",
            "uncertainty.yaml: $: expected a YAML mapping",
        ),
    ],
)
def test_bad_file_names_field_and_problem(protocol, write_file, text, message):
    path = write_file(text)
    with pytest.raises(UncertaintyError) as caught:
        load_uncertainty(path, protocol)
    assert str(caught.value).startswith(message)


def test_missing_file_is_named(protocol, tmp_path):
    with pytest.raises(UncertaintyError, match=r"absent\.yaml: cannot be read"):
        load_uncertainty(tmp_path / "absent.yaml", protocol)


@pytest.mark.parametrize(
    ("alpha", "message"),
    [
        (
            "{STABLE: 1, ACTIVE: 4}",
            "$.uncertainty[0].alpha.HIGHLY_ACTIVE: Aflibercept 2 mg treat-and-extend (ALTAIR, "
            "calibrated) gives HIGHLY_ACTIVE->HIGHLY_ACTIVE probability 0.95; give it an alpha > 0",
        ),
        (
            "{STABLE: 1, ACTIVE: 4, HIGHLY_ACTIVE: 95, DEAD: 1}",
            "$.uncertainty[0].alpha.DEAD: no state 'DEAD'",
        ),
        (
            "{STABLE: -1, ACTIVE: 4, HIGHLY_ACTIVE: 95}",
            "$.uncertainty[0].alpha.STABLE: must be >= 0",
        ),
    ],
)
def test_bad_dirichlet_row_is_refused(protocol, write_file, alpha, message):
    path = write_file(
        "uncertainty:\n  - parameter: disease_transitions.fortnightly_transitions.HIGHLY_ACTIVE\n"
        f"    distribution: dirichlet\n    alpha: {alpha}\n    source: s\n"
    )
    with pytest.raises(UncertaintyError) as caught:
        load_uncertainty(path, protocol)
    assert str(caught.value).startswith(f"uncertainty.yaml: {message}")


def test_dirichlet_row_clashes_with_an_entry_in_the_same_row(protocol, write_file):
    path = write_file(
        """
uncertainty:
  - {parameter: disease_transitions.fortnightly_transitions.ACTIVE.STABLE, distribution: beta, mean: 0.05, sd: 0.01, source: s}
  - parameter: disease_transitions.fortnightly_transitions.ACTIVE
    distribution: dirichlet
    alpha: {STABLE: 5, ACTIVE: 90, HIGHLY_ACTIVE: 5}
    source: s
"""
    )
    with pytest.raises(
        UncertaintyError, match=r"\$\.uncertainty\[1\]\.parameter: .* draw the row once"
    ):
        load_uncertainty(path, protocol)
