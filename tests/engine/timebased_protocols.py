"""Time-based protocols for kernel tests and benchmarks, without the loader.

`reference_protocol` reads the origin app's files (../shared/reference-formats/time-based)
with plain YAML and `msgspec.convert`; `None` when they are absent. `edit` replaces fields of
nested schema structs by dotted path, so tests state only what they change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import yaml

from engine.model.v2.schema import (
    BaselineVisionDistribution,
    TimeBasedParameters,
    TimeBasedProtocol,
)

_REPO = Path(__file__).resolve().parents[2]
# ../shared beside the repository (a worktree one level deeper looks one level further up).
REFERENCE = next(
    (
        base / "shared" / "reference-formats" / "time-based"
        for base in (_REPO.parent, _REPO.parent.parent)
        if (base / "shared" / "reference-formats" / "time-based").is_dir()
    ),
    _REPO.parent / "shared" / "reference-formats" / "time-based",
)
_FILES = {
    "disease_transitions": "disease_transitions_file",
    "treatment_effect": "treatment_effect_file",
    "vision": "vision_parameters_file",
    "discontinuation": "discontinuation_parameters_file",
    "demographics": "demographics_parameters_file",
}


def reference_protocol(name: str = "eylea_time_based.yaml") -> TimeBasedProtocol | None:
    """The origin's time-based protocol `name` with its parameter files, or None if absent."""
    path = REFERENCE / name
    if not path.exists():
        return None
    raw = yaml.safe_load(path.read_text())
    for key in ("clinical_improvements", "disease_transitions", "vision_change_model",
                "treatment_effect_on_transitions", "discontinuation_rules"):  # fmt: skip
        raw.pop(key, None)
    params: dict[str, Any] = {}
    for role, key in _FILES.items():
        params[role] = yaml.safe_load((path.parent / raw[key]).read_text())
    mortality = (
        path.parent / Path(raw["disease_transitions_file"]).parent / "uk_mortality_wet_amd.yaml"
    )
    params["mortality"] = yaml.safe_load(mortality.read_text())
    protocol = msgspec.convert(raw, TimeBasedProtocol, strict=False)
    parameters = msgspec.convert(params, TimeBasedParameters, strict=False)
    return msgspec.structs.replace(protocol, parameters=parameters)


def edit(struct: Any, **changes: Any) -> Any:
    """`struct` with fields replaced; a key ``a__b`` replaces field b of field a."""
    direct = {k: v for k, v in changes.items() if "__" not in k}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        if "__" in key:
            head, rest = key.split("__", 1)
            nested.setdefault(head, {})[rest] = value
    for head, inner in nested.items():
        direct[head] = edit(getattr(struct, head), **inner)
    return msgspec.structs.replace(struct, **direct)


# A small protocol with round numbers, written here so that tests can work out every
# quantity by hand from docs/model.md. Mortality covers ages 70-80 only.
SIMPLE_FILES: dict[str, Any] = {
    "disease_transitions": {
        "fortnightly_transitions": {
            "NAIVE": {"NAIVE": 0.0, "STABLE": 0.3, "ACTIVE": 0.6, "HIGHLY_ACTIVE": 0.1},
            "STABLE": {"NAIVE": 0.0, "STABLE": 0.9, "ACTIVE": 0.1, "HIGHLY_ACTIVE": 0.0},
            "ACTIVE": {"NAIVE": 0.0, "STABLE": 0.2, "ACTIVE": 0.7, "HIGHLY_ACTIVE": 0.1},
            "HIGHLY_ACTIVE": {"NAIVE": 0.0, "STABLE": 0.05, "ACTIVE": 0.25, "HIGHLY_ACTIVE": 0.7},
        }
    },
    "treatment_effect": {
        "treatment_decay": {
            "full_effect_duration_days": 28,
            "half_life_days": 28,
            "minimum_effect": 0.1,
        },
        "treatment_multipliers": {
            "STABLE": {"multipliers": {"STABLE": 1.1, "ACTIVE": 0.5}},
            "ACTIVE": {"multipliers": {"STABLE": 2.0, "ACTIVE": 0.8, "HIGHLY_ACTIVE": 0.5}},
            "HIGHLY_ACTIVE": {"multipliers": {"STABLE": 2.0, "ACTIVE": 1.5, "HIGHLY_ACTIVE": 0.75}},
        },
        "treatment_response": {"responder_probability": 0.7, "non_responder_effect": 0.3},
    },
    "vision": {
        "vision_decline_fortnightly": {
            "NAIVE": {
                "untreated": {"mean": -1.0, "std": 0.5},
                "treated": {"mean": -0.5, "std": 0.25},
            },
            "STABLE": {
                "untreated": {"mean": -0.3, "std": 0.2},
                "treated": {"mean": 0.1, "std": 0.1},
            },
            "ACTIVE": {
                "untreated": {"mean": -1.5, "std": 0.6},
                "treated": {"mean": -0.4, "std": 0.3},
            },
            "HIGHLY_ACTIVE": {
                "untreated": {"mean": -2.0, "std": 0.8},
                "treated": {"mean": -0.6, "std": 0.4},
            },
        },
        "vision_improvement": {
            "improvement_probability": {"STABLE": 0.3, "ACTIVE": 0.4, "HIGHLY_ACTIVE": 0.2},
            "improvement_rate": {
                "STABLE": {"mean": 0.5, "std": 0.2},
                "ACTIVE": {"mean": 0.8, "std": 0.3},
                "HIGHLY_ACTIVE": {"mean": 0.6, "std": 0.3},
            },
            "max_improvement_duration_fortnights": 2,
            "max_treatments_for_improvement": 5,
            "treatment_gap_for_improvement_days": 84,
        },
        "vision_ceilings": {
            "baseline_ceiling_factor": 1.1,
            "absolute_ceiling_default": 85,
            "absolute_ceiling_high_baseline": 95,
            "absolute_ceiling_low_baseline": 75,
            "high_baseline_threshold": 80,
            "low_baseline_threshold": 50,
        },
        "treatment_effect_decay": {
            "full_effect_duration_days": 56,
            "gradual_decline_end_days": 84,
            "faster_decline_end_days": 112,
            "effect_at_gradual_start": 1.0,
            "effect_at_faster_start": 0.5,
            "effect_at_minimal_start": 0.25,
        },
        "hemorrhage_risk": {
            "risk_treated_fortnightly": 0.001,
            "risk_medium_gap_fortnightly": 0.005,
            "risk_long_gap_fortnightly": 0.01,
            "treated_threshold_days": 84,
            "medium_gap_threshold_days": 168,
            "highly_active_multiplier": 2.0,
            "hemorrhage_loss_min": 10,
            "hemorrhage_loss_max": 30,
        },
        "vision_measurement": {"measurement_noise_std": 2.5},
        "misc_parameters": {"treatment_effect_threshold": 0.5, "minimal_effect_decay_rate": 0.25},
    },
    "discontinuation": {
        "discontinuation_parameters": {
            "poor_vision": {
                "vision_threshold": 20,
                "discontinuation_probability": 0.8,
                "grace_period_visits": 2,
            },
            "deterioration": {
                "vision_loss_threshold": -10,
                "visits_with_loss_threshold": 3,
                "discontinuation_probability": 0.7,
            },
            "treatment_decision": {
                "stable_disease_visits_threshold": 6,
                "stable_discontinuation_probability": 0.2,
                "no_improvement_visits_threshold": 4,
                "no_improvement_probability": 0.15,
                "min_treatments_before_decision": 3,
            },
            "attrition": {
                "base_probability_per_visit": 0.01,
                "time_adjustment": {"months_0_12": 1.0, "months_12_24": 1.2, "months_24_plus": 1.5},
                "injection_burden_adjustment": {
                    "injections_per_year_0_6": 1.0,
                    "injections_per_year_6_12": 1.2,
                    "injections_per_year_12_plus": 1.5,
                },
            },
            "administrative": {"probability_per_visit": 0.005},
        }
    },
    "demographics": {
        "age_distribution_weights": {"70-74": 1.0, "75-79": 1.0},
        "gender_distribution_by_age": {"70-74": 0.5, "75-79": 0.6},
        "survival_bias_factors": {"75-79": 0.9},
    },
    "mortality": {
        "hazard_ratios": {"primary": 1.36},
        "mortality_rates": {
            "female": {a: round(0.01 + 0.001 * (a - 70), 6) for a in range(70, 81)},
            "male": {a: round(0.015 + 0.0015 * (a - 70), 6) for a in range(70, 81)},
        },
    },
}


def simple_protocol(**changes: Any) -> TimeBasedProtocol:
    """A treat-and-extend protocol over SIMPLE_FILES; `changes` as in `edit`."""
    protocol = TimeBasedProtocol(
        name="simple",
        model_type="time_based",
        protocol_type="treat_and_extend",
        loading_dose_injections=3,
        loading_dose_interval_days=7,
        min_interval_days=21,
        max_interval_days=84,
        extension_days=14,
        shortening_days=14,
        disease_transitions_file="d.yaml",
        treatment_effect_file="t.yaml",
        vision_parameters_file="v.yaml",
        discontinuation_parameters_file="x.yaml",
        demographics_parameters_file="g.yaml",
        baseline_vision_distribution=msgspec.convert(
            {"type": "normal", "mean": 60, "std": 10, "min": 20, "max": 90},
            BaselineVisionDistribution,
        ),
        parameters=msgspec.convert(SIMPLE_FILES, TimeBasedParameters, strict=False),
    )
    return edit(protocol, **changes) if changes else protocol
