"""Load a time-based protocol (``model_type: time_based``) and the parameter files it names.

Order: the protocol's own checks (no NaN or infinity, the refusals of docs/model.md 10, types,
ranges, cross-field checks); then each parameter file, by path RELATIVE TO THE PROTOCOL FILE,
in the order of `PARAMETER_FILES`, through the same checks; then the checks between files.
The mortality table is read, when the protocol does not name it, from
``uk_mortality_wet_amd.yaml`` in the folder of `demographics_parameters_file` (the origin's
convention, docs/model.md 3.1). Each file read becomes a `SourceFile` (path as written,
SHA-256 of its bytes, its text), so a run's manifest holds everything it ran with.

A protocol may instead embed the parameters (``parameters:``, as a manifest stores them); then
no file is read. Every key no schema field declares, in the protocol and in each parameter file,
is kept in `extras` by file and field path and reported by the caller in one warning.

Errors are `ProtocolError`s: in the protocol, ``eylea.yaml: $.update_interval_days: ...``; in a
parameter file, ``parameters/vision.yaml: $.vision_ceilings.high_baseline_threshold: ...``; a
file that cannot be read names the file and the key that referenced it.
Does not cover: dispatching between layouts and bundled names (`engine.model.protocol_loader`).
"""

from __future__ import annotations

import hashlib
import posixpath
import stat
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from engine.errors import ProtocolError
from engine.model.protocol_yaml import MAX_PROTOCOL_BYTES, decode_protocol_yaml
from engine.model.v2 import checks
from engine.model.v2.schema import (
    DemographicsFile,
    DiscontinuationFile,
    DiseaseTransitionsFile,
    MortalityFile,
    SourceFile,
    TimeBasedParameters,
    TimeBasedProtocol,
    TreatmentEffectFile,
    VisionFile,
)
from engine.model.validation import (
    check_finite,
    check_ranges,
    collect_unknown_keys,
    convert,
    list_keys,
    normalise_scalars,
    short_repr,
)

__all__ = [
    "DEFAULT_MORTALITY_FILE",
    "PARAMETER_FILES",
    "is_time_based",
    "load_time_based",
    "unused_keys_message",
]

DEFAULT_MORTALITY_FILE = "uk_mortality_wet_amd.yaml"


class ParameterFile(NamedTuple):
    """One parameter file: its `TimeBasedParameters` field, the protocol key naming it."""

    role: str
    key: str
    schema: type


PARAMETER_FILES = (
    ParameterFile("disease_transitions", "disease_transitions_file", DiseaseTransitionsFile),
    ParameterFile("treatment_effect", "treatment_effect_file", TreatmentEffectFile),
    ParameterFile("vision", "vision_parameters_file", VisionFile),
    ParameterFile("discontinuation", "discontinuation_parameters_file", DiscontinuationFile),
    ParameterFile("demographics", "demographics_parameters_file", DemographicsFile),
    ParameterFile("mortality", "mortality_parameters_file", MortalityFile),
)
NO_FOLDER_PROBLEM = (
    "a time-based protocol's parameter files are found relative to the protocol file; load "
    "it from a file (e.g. amdsim validate PATH) or embed them under `parameters`"
)


def is_time_based(raw: dict[str, Any]) -> bool:
    """Whether decoded protocol YAML is of the time-based layout (it has `model_type`)."""
    return "model_type" in raw


def load_time_based(raw: dict[str, Any], source: str, folder: Path | None) -> TimeBasedProtocol:
    """Validate decoded protocol YAML and load its parameter files from `folder`.

    `source` names the protocol in messages; `folder` is the protocol file's folder (None for
    text with no file: then the parameters must be embedded).
    """
    check_finite(raw, TimeBasedProtocol, "$", source)
    _refuse_unimplemented(raw, source)
    embedded = raw.get("parameters") is not None
    if not embedded and folder is None:
        raise ProtocolError(source, "$", NO_FOLDER_PROBLEM)
    protocol: TimeBasedProtocol = convert(normalise_scalars(raw), TimeBasedProtocol, source)
    check_ranges(protocol, TimeBasedProtocol, "$", source)
    checks.check_protocol(protocol, source)
    extras = collect_unknown_keys(raw, TimeBasedProtocol, "$")
    if protocol.parameters is not None:
        labels = {spec.role: source for spec in PARAMETER_FILES}
        bases = {spec.role: f"$.parameters.{spec.role}" for spec in PARAMETER_FILES}
        parameters = protocol.parameters
    else:
        assert folder is not None
        written = _written_paths(raw, protocol, source)
        files = {
            spec.role: _read_file(spec, written[spec.role], folder, source)
            for spec in PARAMETER_FILES
        }
        labels = {role: file.label for role, file in files.items()}
        bases = {role: "$" for role in files}
        parameters = TimeBasedParameters(**{role: file.value for role, file in files.items()})
        for file in files.values():
            extras.update({f"{file.label}: {path}": value for path, value in file.extras.items()})
        protocol = msgspec.structs.replace(
            protocol,
            mortality_parameters_file=written["mortality"],
            parameters=parameters,
            files=[file.record for file in files.values()],
        )
    _check_parameters(parameters, labels, bases)
    checks.check_population_type(
        protocol, parameters.demographics, source, _demographics_name(labels, source)
    )
    if extras:
        protocol = msgspec.structs.replace(protocol, extras=extras)
    return protocol


def unused_keys_message(source: str, extras: dict[str, Any]) -> str:
    """One line naming every unused key by file and field path, the protocol's own first.

    ``eylea.yaml: keys not used (kept, read by nothing): $.monitoring;
    parameters/vision.yaml: $.vision_floor_discontinuation`` (on one line).
    """
    by_file: dict[str, list[str]] = {}
    for key in extras:
        label, separator, path = key.rpartition(": $")
        if separator and label:
            by_file.setdefault(label, []).append("$" + path)
        else:
            by_file.setdefault("", []).append(key)
    parts = [list_keys(by_file.pop(""))] if "" in by_file else []
    parts += [f"{label}: {list_keys(paths)}" for label, paths in by_file.items()]
    return f"{source}: keys not used (kept, read by nothing): " + "; ".join(parts)


# --- refusals (docs/model.md 10) --------------------------------------------------------------
def _refuse_unimplemented(raw: dict[str, Any], source: str) -> None:
    """Keys whose value would change behaviour the model does not implement, with their path."""
    model_type = raw.get("model_type")
    if model_type != "time_based":
        raise ProtocolError(
            source,
            "$.model_type",
            f"is {short_repr(model_type)}; the only model_type amdsim runs is time_based "
            "(a visit-based protocol has no model_type key)",
        )
    if "transition_model" in raw and raw["transition_model"] != "fortnightly":
        raise ProtocolError(
            source,
            "$.transition_model",
            f"is {short_repr(raw['transition_model'])}; the time-based model implements only "
            "fortnightly transitions (set transition_model: fortnightly)",
        )
    interval = raw.get("update_interval_days", 14)
    if isinstance(interval, int | float) and not isinstance(interval, bool) and interval != 14:
        raise ProtocolError(
            source,
            "$.update_interval_days",
            f"is {interval!r}; the time-based model updates the disease every 14 days, the "
            "only interval its fortnightly transition probabilities mean (set 14)",
        )
    block = raw.get("clinical_improvements")
    if isinstance(block, dict):
        enabled = block.get("enabled", False)
        if enabled is True:
            raise ProtocolError(
                source,
                "$.clinical_improvements.enabled",
                "is true, but response types, yearly discontinuation probabilities and "
                "per-period vision responses are not implemented on the fortnightly model; set "
                "enabled: false or remove the block to run without them (the origin's "
                "time-based engine never reads it either)",
            )
        if enabled not in (False, None):
            raise ProtocolError(
                source,
                "$.clinical_improvements.enabled",
                f"expected true or false, got {short_repr(enabled)}",
            )


# --- parameter files -------------------------------------------------------------------------
class _LoadedFile(NamedTuple):
    label: str
    value: Any
    record: SourceFile
    extras: dict[str, Any]


def _written_paths(raw: dict[str, Any], protocol: TimeBasedProtocol, source: str) -> dict[str, str]:
    """Each file's path as the protocol writes it; the mortality file's by convention."""
    written: dict[str, str] = {}
    for spec in PARAMETER_FILES:
        path = getattr(protocol, spec.key)
        if spec.role == "mortality" and "mortality_parameters_file" not in raw:
            folder = posixpath.dirname(protocol.demographics_parameters_file.replace("\\", "/"))
            path = posixpath.join(folder, DEFAULT_MORTALITY_FILE)
        elif not path.strip():
            raise ProtocolError(source, f"$.{spec.key}", "is empty; expected a file path")
        written[spec.role] = path
    return written


def _read_file(spec: ParameterFile, written: str, folder: Path, source: str) -> _LoadedFile:
    """Read, decode and validate one parameter file; unknown keys by field path."""
    label = _shown(written)
    path = folder / written
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # A folder, a device or a pipe: reading it could block or never end.
            reason = "Is a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
            raise ProtocolError(source, f"$.{spec.key}", _unreadable(spec, label, path, reason))
        if status.st_size > MAX_PROTOCOL_BYTES:
            raise ProtocolError(label, None, f"file is larger than {MAX_PROTOCOL_BYTES} bytes")
        with path.open("rb") as handle:  # at most one byte beyond the limit, whatever stat said
            data = handle.read(MAX_PROTOCOL_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable path"
        if isinstance(exc, FileNotFoundError):
            reason = "no such file"
        raise ProtocolError(
            source, f"$.{spec.key}", _unreadable(spec, label, path, reason)
        ) from exc
    raw = decode_protocol_yaml(data, label, f"{spec.role.replace('_', ' ')} parameters")
    check_finite(raw, spec.schema, "$", label)
    value = convert(raw, spec.schema, label)
    check_ranges(value, spec.schema, "$", label)
    digest = hashlib.sha256(data).hexdigest()
    record = SourceFile(
        role=spec.role, path=written, sha256=digest, text=data.decode("utf-8", errors="replace")
    )
    return _LoadedFile(label, value, record, collect_unknown_keys(raw, spec.schema, "$"))


def _unreadable(spec: ParameterFile, label: str, path: Path, reason: str) -> str:
    if spec.role == "mortality":
        return (
            f"the life table {label} cannot be read ({reason}; looked for {_shown(str(path))}); "
            f"without mortality_parameters_file it is {DEFAULT_MORTALITY_FILE} in the folder "
            "of demographics_parameters_file"
        )
    return f"names {label}, which cannot be read ({reason}; looked for {_shown(str(path))})"


def _shown(text: str) -> str:
    """A path as written, or its repr when it would not print as one plain line."""
    return text if text.isprintable() and len(text) <= 200 else short_repr(text)


def _check_parameters(
    parameters: TimeBasedParameters, labels: dict[str, str], bases: dict[str, str]
) -> None:
    """Each file's cross-field checks, then those between files."""
    checks.check_transitions(
        parameters.disease_transitions, labels["disease_transitions"], bases["disease_transitions"]
    )
    checks.check_treatment_against_transitions(
        parameters.treatment_effect,
        parameters.disease_transitions,
        labels["treatment_effect"],
        bases["treatment_effect"],
    )
    checks.check_vision(parameters.vision, labels["vision"], bases["vision"])
    checks.check_discontinuation(
        parameters.discontinuation, labels["discontinuation"], bases["discontinuation"]
    )
    checks.check_demographics(
        parameters.demographics, labels["demographics"], bases["demographics"]
    )
    checks.check_mortality(parameters.mortality, labels["mortality"], bases["mortality"])


def _demographics_name(labels: dict[str, str], source: str) -> str:
    label = labels["demographics"]
    return "the embedded demographics parameters" if label == source else label
