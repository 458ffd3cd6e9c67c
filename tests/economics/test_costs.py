"""Cost files: the bundled default, both layouts, the totals rule and one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import msgspec
import pytest

from engine.economics.costs import (
    VISIT_TYPES,
    CostFile,
    default_cost_file_path,
    drug_cost,
    load_cost_file,
)
from engine.errors import AmdsimError, CostFileError

# ../shared beside the repository (a worktree under /work/wt/ looks one level further up).
_CANDIDATES = [Path(__file__).resolve().parents[n] / ".." / "shared" for n in (2, 3)]
REFERENCE = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]) / "reference-formats"
REFERENCE_COSTS = REFERENCE / "costs"
needs_reference = pytest.mark.skipif(
    not (REFERENCE_COSTS / "nhs_hrg_aligned_2025.yaml").is_file(),
    reason="../shared/reference-formats is absent",
)

# An origin-layout file of our own (never a copy of the reference files).
ORIGIN = """\
metadata:
  name: "Test clinic"
  currency: "GBP"
  effective_date: "2024-04-01"
drug_costs:
  drug_a: 500
  drug_b: 100.5
  default_drug: "drug_a"
visit_components:
  procedure: 100
  scan: 50
  review: 30
visit_types:
  injection_virtual:
    components: [procedure, scan]
    total_override: null
  injection_face_to_face:
    components: [procedure, scan, review]
    total_override: 200
  monitoring_virtual:
    components: [scan]
    total_override: null
special_events:
  initial_referral: 120
  discontinuation_admin: 25
  adverse_event_severe: 2000
"""

NATIVE = """\
format_version: 1
name: "Native test"
currency: GBP
price_year: 2024
source: "test"
drug_costs:
  aflibercept_2mg: 800
visit_components:
  procedure: 100
  scan: 50
visit_types:
  loading_injection: {components: [procedure]}
  injection: {components: [procedure, scan], total: 150}
  monitoring: {components: [scan]}
adverse_events:
  - {name: endophthalmitis, probability_per_injection: 0.001, cost: 3000, source: "x"}
  - {name: raised_iop, probability_per_injection: 0.01, cost: 100}
discontinuation_cost: 10
enrolment_cost: 200
blindness: {cost_per_year: 5000, threshold_letters: 35, source: "y"}
"""


def _write(tmp_path: Path, text: str, name: str = "costs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(path: Path) -> CostFileError:
    with pytest.raises(CostFileError) as caught:
        load_cost_file(path)
    return caught.value


def test_bundled_default_loads_without_warnings_and_prices_the_protocols_drug():
    costs = load_cost_file(default_cost_file_path())
    assert costs.warnings == ()
    assert costs.currency == "GBP" and costs.perspective == "NHS and PSS"
    assert drug_cost(costs, "aflibercept_2mg") == 816.0
    assert {"aflibercept_2mg_biosimilar", "ranibizumab", "bevacizumab", "faricimab"} <= set(
        costs.drug_costs
    )
    assert set(costs.visit_costs) == set(VISIT_TYPES)
    # 0.95 x 129.616 + 0.05 x 660.838 (BZ87A) + 101.804 (WF01A), rounded components.
    assert costs.visit_costs["injection"] == pytest.approx(257.98)
    assert costs.visit_costs["monitoring"] == pytest.approx(101.80)
    assert costs.adverse_event_cost_per_injection == pytest.approx(0.00056 * 2500)
    assert costs.blindness_threshold_letters == 35
    assert costs.blindness_cost_per_year > 0 and costs.enrolment_cost == pytest.approx(248.25)


def test_bundled_protocols_drugs_all_have_a_price():
    costs = load_cost_file(default_cost_file_path())
    protocols = Path(__file__).resolve().parents[2] / "engine" / "protocols"
    drugs = {
        line.split(":", 1)[1].strip()
        for path in protocols.glob("*.yaml")
        for line in path.read_text().splitlines()
        if line.startswith("drug:")
    }
    assert drugs, "no bundled protocol names its drug"
    for drug in drugs:
        assert drug_cost(costs, drug) > 0


def test_cost_file_is_frozen_and_replaceable_for_psa_draws():
    costs = load_cost_file(default_cost_file_path())
    with pytest.raises(AttributeError):
        costs.enrolment_cost = 1.0  # type: ignore[misc]
    drawn = msgspec.structs.replace(costs, blindness_cost_per_year=1234.0)
    assert isinstance(drawn, CostFile) and drawn.blindness_cost_per_year == 1234.0


def test_native_layout_reads_every_field(tmp_path):
    costs = load_cost_file(_write(tmp_path, NATIVE))
    assert costs.visit_costs == {"loading_injection": 100, "injection": 150, "monitoring": 50}
    assert costs.adverse_event_cost_per_injection == pytest.approx(0.001 * 3000 + 0.01 * 100)
    assert (costs.discontinuation_cost, costs.enrolment_cost) == (10, 200)
    assert (costs.blindness_cost_per_year, costs.blindness_threshold_letters) == (5000, 35)
    assert costs.price_year == 2024 and costs.warnings == ()


def test_native_stated_total_wins_over_its_components_with_a_warning(tmp_path):
    text = NATIVE.replace(
        "components: [procedure, scan], total: 150", "components: [procedure, scan], total: 180"
    )
    costs = load_cost_file(_write(tmp_path, text))
    assert costs.visit_costs["injection"] == 180
    assert costs.warnings == (
        "visit type injection: the stated total 180 (total) disagrees with the sum of its "
        "components 150; the stated total is used",
    )


@needs_reference
def test_origin_hrg_file_loads_unchanged_and_maps_to_hand_calculated_costs():
    costs = load_cost_file(REFERENCE_COSTS / "nhs_hrg_aligned_2025.yaml")
    # tae_assessment 134 + 110 + 75; loading_injection 134 + 40; monitoring_only 110 + 75.
    assert costs.visit_costs == {"loading_injection": 174, "injection": 319, "monitoring": 185}
    assert drug_cost(costs, "eylea_2mg_biosimilar") == 355
    assert "default_drug" not in costs.drug_costs
    assert costs.enrolment_cost == 250  # special_events.initial_referral
    assert costs.discontinuation_cost == 50
    assert costs.adverse_event_cost_per_injection == 0
    assert costs.blindness_cost_per_year == 0
    text = " ".join(costs.warnings)
    assert "adverse events count 0" in text and "blindness costs 0" in text
    assert "injection <- tae_assessment" in text


@needs_reference
def test_origin_standard_file_sums_components_when_no_total_is_stated():
    costs = load_cost_file(REFERENCE_COSTS / "nhs_standard_2025.yaml")
    # injection_loading 150 + 25; injection_face_to_face 150 + 75 + 25 + 10 + 120;
    # monitoring_face_to_face 75 + 25 + 10 + 120.
    assert costs.visit_costs == {"loading_injection": 175, "injection": 380, "monitoring": 230}
    assert drug_cost(costs, "eylea_2mg") == 800
    assert costs.enrolment_cost == 250  # special_events.initial_assessment
    assert not any("disagrees" in warning for warning in costs.warnings)


def test_origin_stated_total_wins_and_is_warned_about(tmp_path):
    costs = load_cost_file(_write(tmp_path, ORIGIN))
    # injection_face_to_face states 200 over components 100 + 50 + 30 = 180.
    assert costs.visit_costs["injection"] == 200
    assert (
        "visit type injection_face_to_face: the stated total 200 (total_override) disagrees "
        "with the sum of its components 180; the stated total is used"
    ) in costs.warnings
    # No loading type: loading injections cost like injection visits, and the user is told.
    assert costs.visit_costs["loading_injection"] == 200
    assert any("no loading visit type" in warning for warning in costs.warnings)
    assert costs.visit_costs["monitoring"] == 50
    assert (costs.enrolment_cost, costs.discontinuation_cost) == (120, 25)
    assert costs.drug_costs == {"drug_a": 500, "drug_b": 100.5}
    assert costs.price_year == 2024


def test_origin_amdsim_block_overrides_the_mapping_and_adds_what_the_layout_lacks(tmp_path):
    text = ORIGIN + textwrap.dedent("""\
        amdsim:
          visit_types: {injection: injection_virtual, loading_injection: injection_virtual}
          blindness: {cost_per_year: 7000, threshold_letters: 30, source: "test"}
          adverse_events:
            - {name: endophthalmitis, probability_per_injection: 0.0005, cost: 2000}
          price_year: 2023
        """)
    costs = load_cost_file(_write(tmp_path, text))
    assert costs.visit_costs["injection"] == 150 and costs.visit_costs["loading_injection"] == 150
    assert (costs.blindness_cost_per_year, costs.blindness_threshold_letters) == (7000, 30)
    assert costs.adverse_event_cost_per_injection == pytest.approx(1.0)
    assert costs.price_year == 2023
    assert not any("count 0" in w or "costs 0" in w for w in costs.warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            NATIVE.replace("aflibercept_2mg: 800", "aflibercept_2mg: -5"),
            "$.drug_costs.aflibercept_2mg: must be a number >= 0, got -5",
        ),
        (
            NATIVE.replace("aflibercept_2mg: 800", "aflibercept_2mg: .nan"),
            "$.drug_costs.aflibercept_2mg: must be a number >= 0, got nan",
        ),
        (
            NATIVE.replace("[procedure, scan], total", "[procedure, oct], total"),
            "$.visit_types.injection.components[1]: component 'oct' has no price in "
            "visit_components (priced: procedure, scan)",
        ),
        (
            NATIVE.replace("probability_per_injection: 0.01", "probability_per_injection: 1.5"),
            "$.adverse_events[1].probability_per_injection: must be a number from 0 to 1, got 1.5",
        ),
        (
            NATIVE.replace("  monitoring: {components: [scan]}\n", ""),
            "$.visit_types.monitoring: required field is missing",
        ),
        (
            NATIVE + "blindnes_cost: 3\n",
            "$.blindnes_cost: unknown field; expected one of format_version, name, currency, "
            "price_year, perspective, source, drug_costs, visit_components, visit_types, "
            "adverse_events, discontinuation_cost, enrolment_cost, blindness",
        ),
        (
            ORIGIN.replace("monitoring_virtual:", "checkup:"),
            "$.visit_types: defines none of monitoring_only, monitoring_face_to_face, "
            "monitoring_virtual for amdsim's monitoring visit; name one with amdsim: "
            "{visit_types: {monitoring: <visit type>}}",
        ),
        (
            ORIGIN + "amdsim: {visit_types: {injection: tae_assessment}}\n",
            "$.amdsim.visit_types.injection: names 'tae_assessment', which is not in "
            "visit_types (injection_virtual, injection_face_to_face, monitoring_virtual)",
        ),
        (
            "name: x\n",
            "$: is neither cost layout: amdsim's starts with format_version: 1, the origin "
            "app's has a metadata: block",
        ),
    ],
)
def test_bad_content_is_one_error_naming_the_file_and_field(tmp_path, text, message):
    path = _write(tmp_path, text)
    assert str(_error(path)) == f"{path}: {message}"


def test_missing_file_is_a_cost_file_error(tmp_path):
    path = tmp_path / "absent.yaml"
    error = _error(path)
    assert str(error) == f"{path}: cannot be read (no such file)"
    assert isinstance(error, AmdsimError)


def test_a_file_that_is_not_yaml_is_a_cost_file_error(tmp_path):
    path = _write(tmp_path, "drug_costs: [unclosed\n")
    assert str(_error(path)).startswith(f"{path}: is not valid YAML")


def test_a_yaml_list_is_not_a_cost_file(tmp_path):
    path = _write(tmp_path, "- 1\n- 2\n")
    assert str(_error(path)) == f"{path}: $: expected a YAML mapping of costs, got a list"


def test_unknown_drug_names_the_key_and_lists_the_priced_drugs(tmp_path):
    costs = load_cost_file(_write(tmp_path, ORIGIN))
    with pytest.raises(CostFileError) as caught:
        drug_cost(costs, "aflibercept_2mg")
    assert str(caught.value) == (
        "Test clinic: $.drug_costs.aflibercept_2mg: no price for drug 'aflibercept_2mg'; "
        "the file prices: drug_a, drug_b"
    )
