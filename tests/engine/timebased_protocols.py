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

from engine.model.v2.schema import TimeBasedParameters, TimeBasedProtocol

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
