"""Free parameters: parsed against the schema, bounded by its ranges, set and re-validated."""

from __future__ import annotations

import time

import msgspec
import pytest

from engine.calibration.free_parameters import (
    FreeParameter,
    describe,
    get_value,
    parse_free,
    with_values,
)
from engine.errors import ParameterError, ProtocolError
from engine.model.protocol_loader import load_protocol

BUNDLED = "engine/protocols/time_based_uncalibrated_treat_and_extend.yaml"
TRANSITIONS = "disease_transitions.fortnightly_transitions"


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(BUNDLED)


# Every structural kind the calibration issue lists, with a value inside its bounds (and, for
# the cross-field checks, consistent with the rest of the bundled files).
STRUCTURAL = [
    ("vision.vision_ceilings.baseline_ceiling_factor", 1.4),
    ("vision.vision_ceilings.absolute_ceiling_default", 80.0),
    ("vision.vision_improvement.max_treatments_for_improvement", 7.0),
    ("vision.vision_improvement.treatment_gap_for_improvement_days", 70.0),
    ("vision.misc_parameters.treatment_effect_threshold", 0.6),
    ("vision.vision_improvement.improvement_probability.ACTIVE", 0.5),
    ("vision.vision_improvement.improvement_rate.ACTIVE.mean", 1.1),
    ("treatment_effect.treatment_response.responder_probability", 0.8),
    ("treatment_effect.treatment_response.non_responder_effect", 0.4),
    ("vision.vision_decline_fortnightly.ACTIVE.treated.mean", -0.6),
    (f"{TRANSITIONS}.STABLE.ACTIVE", 0.05),
    ("treatment_effect.treatment_decay.full_effect_duration_days", 42.0),
    ("treatment_effect.treatment_decay.half_life_days", 70.0),
    ("vision.treatment_effect_decay.full_effect_duration_days", 42.0),
    ("vision.treatment_effect_decay.effect_at_faster_start", 0.6),
    ("discontinuation.discontinuation_parameters.attrition.base_probability_per_visit", 0.02),
    ("discontinuation.discontinuation_parameters.administrative.probability_per_visit", 0.01),
    ("treatment_effect.treatment_multipliers.ACTIVE.multipliers.STABLE", 2.5),
    ("demographics.population_type_adjustments.real_world.age_shift", 1.5),
    ("demographics.age_distribution_weights.70-74", 0.25),
    ("mortality.mortality_rates.male.70", 0.02),
    ("mortality.hazard_ratios.primary", 1.3),
]


@pytest.mark.parametrize(("path", "value"), STRUCTURAL)
def test_every_structural_kind_round_trips_and_changes_nothing_else(protocol, path, value):
    (parameter,) = parse_free(path, protocol)
    assert parameter.lower <= value <= parameter.upper
    changed = with_values(protocol, [parameter], [value])
    assert get_value(changed, parameter) == pytest.approx(value)
    before = msgspec.to_builtins(protocol.parameters)
    after = msgspec.to_builtins(changed.parameters)
    differing = _differences(before, after)
    expected = {path}
    if path.startswith(TRANSITIONS):
        expected.add(f"{TRANSITIONS}.STABLE.STABLE")
    assert differing == expected
    assert describe(parameter)


def _differences(before, after, prefix=""):
    if isinstance(before, dict):
        found = set()
        for key in before:
            found |= _differences(before[key], after[key], f"{prefix}{key}.")
        return found
    return set() if before == after else {prefix.rstrip(".")}


def test_integer_fields_are_flagged_and_rounded(protocol):
    days, factor = parse_free(
        "treatment_effect.treatment_decay.full_effect_duration_days,"
        "vision.vision_ceilings.baseline_ceiling_factor",
        protocol,
    )
    assert days.integer and not factor.integer
    changed = with_values(protocol, [days, factor], [41.6, 1.25])
    assert changed.parameters.treatment_effect.treatment_decay.full_effect_duration_days == 42
    assert get_value(changed, factor) == 1.25


def test_bounds_come_from_the_schema(protocol):
    ceiling, probability, half_life, gap = parse_free(
        "vision.vision_ceilings.baseline_ceiling_factor, "
        "treatment_effect.treatment_response.responder_probability, "
        "treatment_effect.treatment_decay.half_life_days,"
        "vision.vision_improvement.treatment_gap_for_improvement_days",
        protocol,
    )
    assert (ceiling.lower, ceiling.upper) == (1.0, 3.0)
    assert (probability.lower, probability.upper) == (0.0, 1.0)
    assert (half_life.lower, half_life.upper) == (1.0, 3650.0)
    assert (gap.lower, gap.upper, gap.integer) == (0.0, 3650.0, True)
    assert ceiling == FreeParameter("vision.vision_ceilings.baseline_ceiling_factor", 1.0, 3.0)


def test_an_off_diagonal_transition_moves_mass_to_and_from_the_diagonal(protocol):
    # Bundled row: ACTIVE -> STABLE 0.05, ACTIVE 0.90, HIGHLY_ACTIVE 0.05.
    to_stable, to_high = parse_free(
        f"{TRANSITIONS}.ACTIVE.STABLE, {TRANSITIONS}.ACTIVE.HIGHLY_ACTIVE", protocol
    )
    assert (to_stable.lower, to_stable.upper) == (0.0, pytest.approx(0.95))
    changed = with_values(protocol, [to_stable, to_high], [0.12, 0.03])
    row = changed.parameters.disease_transitions.fortnightly_transitions.ACTIVE
    assert (row.STABLE, row.HIGHLY_ACTIVE) == (0.12, 0.03)
    assert abs(row.ACTIVE - 0.85) < 1e-12
    assert abs(row.NAIVE + row.STABLE + row.ACTIVE + row.HIGHLY_ACTIVE - 1.0) < 1e-12
    # Together the two may take more than the diagonal has: the loader refuses the row.
    with pytest.raises(ProtocolError, match=r"fortnightly_transitions\.ACTIVE\.ACTIVE"):
        with_values(protocol, [to_stable, to_high], [0.6, 0.5])


def test_an_out_of_range_value_raises_protocol_error_with_the_field_path(protocol):
    parameters = parse_free("vision.vision_ceilings.baseline_ceiling_factor", protocol)
    with pytest.raises(ProtocolError) as caught:
        with_values(protocol, parameters, [3.5])
    assert caught.value.path == "$.parameters.vision.vision_ceilings.baseline_ceiling_factor"
    assert "between 1 and 3" in str(caught.value) and "\n" not in str(caught.value)


def test_a_cross_field_check_applies_to_candidates(protocol):
    # The vision effect's full phase must end before its gradual decline does (84 days).
    parameters = parse_free("vision.treatment_effect_decay.full_effect_duration_days", protocol)
    with pytest.raises(ProtocolError, match="gradual_decline_end_days"):
        with_values(protocol, parameters, [100])


def test_with_values_drops_extras_and_keeps_the_rest_of_the_protocol(protocol):
    noisy = msgspec.structs.replace(protocol, extras={"$.monitoring": 1})
    parameters = parse_free("mortality.hazard_ratios.primary", protocol)
    changed = with_values(noisy, parameters, [get_value(protocol, parameters[0])])
    assert changed.extras == {}
    assert changed.parameters == protocol.parameters
    assert changed.baseline_vision_distribution == protocol.baseline_vision_distribution
    assert changed.max_interval_days == protocol.max_interval_days


def test_with_values_is_fast_enough_for_hundreds_of_candidates(protocol):
    parameters = parse_free(", ".join(path for path, _ in STRUCTURAL[:8]), protocol)
    values = [value for _, value in STRUCTURAL[:8]]
    with_values(protocol, parameters, values)
    started = time.perf_counter()
    for _ in range(20):
        with_values(protocol, parameters, values)
    assert (time.perf_counter() - started) / 20 < 0.020


@pytest.mark.parametrize(
    ("text", "named", "allowed"),
    [
        ("visio.x", "'visio'", "disease_transitions, treatment_effect, vision"),
        ("vision.vision_ceiling.x", "'vision_ceiling'", "vision_ceilings"),
        ("vision.vision_ceilings.ceiling", "'ceiling'", "baseline_ceiling_factor"),
        ("vision.vision_ceilings", "vision.vision_ceilings is not a number", "low_baseline"),
        ("vision.vision_ceilings.baseline_ceiling_factor.x", "is a number", "drop x"),
        (f"{TRANSITIONS}.STABLE.STABLE", "diagonal", "STABLE.<another state>"),
        (f"{TRANSITIONS}.STABLE.DRY", "'DRY'", "HIGHLY_ACTIVE"),
        ("mortality.mortality_rates.male.7", "'7'", "50, 51"),
        ("demographics.population_type_adjustments.trial.age_shift", "'trial'", "real_world"),
        ("discontinuation.discontinuation_priority.1", "is not a number", "numeric field"),
        ("vision..x", "empty segment", "vision.vision_ceilings"),
        ("", "no free parameter", "baseline_ceiling_factor"),
        (
            "mortality.hazard_ratios.primary, mortality.hazard_ratios.primary",
            "named twice",
            "mortality.hazard_ratios.primary",
        ),
    ],
)
def test_parse_errors_are_one_line_naming_the_segment_and_what_is_allowed(
    protocol, text, named, allowed
):
    with pytest.raises(ParameterError) as caught:
        parse_free(text, protocol)
    message = str(caught.value)
    assert "\n" not in message
    assert named in message and allowed in message


def test_spaces_around_commas_are_allowed_and_order_is_kept(protocol):
    parameters = parse_free(
        " mortality.hazard_ratios.primary ,vision.vision_ceilings.baseline_ceiling_factor ",
        protocol,
    )
    assert [p.path for p in parameters] == [
        "mortality.hazard_ratios.primary",
        "vision.vision_ceilings.baseline_ceiling_factor",
    ]


def test_without_a_protocol_the_schema_alone_is_checked():
    (transition,) = parse_free(f"{TRANSITIONS}.STABLE.ACTIVE")
    assert (transition.lower, transition.upper) == (0.0, 1.0)
    (age,) = parse_free("mortality.mortality_rates.male.70")
    assert age.upper == 1.0
    with pytest.raises(ParameterError, match="'vision_ceiling'"):
        parse_free("vision.vision_ceiling.baseline_ceiling_factor")


def test_labels_are_short(protocol):
    labels = [
        describe(p)
        for p in parse_free(
            f"{TRANSITIONS}.STABLE.ACTIVE, "
            "treatment_effect.treatment_multipliers.ACTIVE.multipliers.STABLE, "
            "vision.vision_ceilings.baseline_ceiling_factor",
            protocol,
        )
    ]
    assert labels == [
        "P(STABLE->ACTIVE)",
        "multiplier ACTIVE->STABLE",
        "vision_ceilings.baseline_ceiling_factor",
    ]


def test_a_protocol_without_parameters_is_refused(protocol):
    bare = msgspec.structs.replace(protocol, parameters=None)
    (parameter,) = parse_free("mortality.hazard_ratios.primary")
    with pytest.raises(ParameterError, match="no parameters loaded"):
        get_value(bare, parameter)


def test_a_discontinuation_block_the_protocol_leaves_out_cannot_be_fitted(protocol):
    categories = protocol.parameters.discontinuation.discontinuation_parameters
    without = msgspec.structs.replace(
        protocol,
        parameters=msgspec.structs.replace(
            protocol.parameters,
            discontinuation=msgspec.structs.replace(
                protocol.parameters.discontinuation,
                discontinuation_parameters=msgspec.structs.replace(categories, attrition=None),
            ),
        ),
    )
    path = "discontinuation.discontinuation_parameters.attrition.base_probability_per_visit"
    with pytest.raises(ParameterError, match="attrition is not set"):
        parse_free(path, without)
    (parameter,) = parse_free(path)  # the schema alone allows it
    with pytest.raises(ParameterError, match="attrition is not set"):
        with_values(without, [parameter], [0.02])
    with pytest.raises(ParameterError, match="not set"):
        get_value(without, parameter)


def test_bounds_in_brackets_narrow_the_schemas_range(protocol) -> None:
    path = "vision.vision_decline_fortnightly.ACTIVE.treated.mean"
    (narrowed,) = parse_free(f"{path}[-2:0]", protocol)
    assert (narrowed.path, narrowed.lower, narrowed.upper) == (path, -2.0, 0.0)
    (open_low,) = parse_free(f"{path}[:0]", protocol)
    assert (open_low.lower, open_low.upper) == (-30.0, 0.0)
    for bad, expected in (
        (f"{path}[0:-2]", "low < high"),
        (f"{path}[-50:0]", "the schema's range"),
        (f"{path}[a:0]", "bounds must be numbers"),
    ):
        with pytest.raises(ParameterError, match=expected) as caught:
            parse_free(bad, protocol)
        assert "\n" not in str(caught.value)
