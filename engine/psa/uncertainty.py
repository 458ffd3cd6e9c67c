"""Read an uncertainty file: the distribution each uncertain parameter of a PSA is drawn from.

An uncertainty file lists entries under ``uncertainty:``; each names a ``parameter`` (a dotted
path), a ``distribution`` and its numbers, and a ``source``::

    uncertainty:
      - parameter: costs.drug_costs.aflibercept_2mg
        distribution: gamma
        mean: 816
        sd: 82
        source: "BNF list price; SD 10 % (assumption)"

Paths starting ``costs.`` or ``utilities.`` are economic: they price the simulation's output and
are only checked for their shape here (the cost file and utility table check the keys when a
draw is priced). Every other path is a model path, checked against the protocol with
`engine.calibration.free_parameters`, as a calibration's free parameters are. A ``dirichlet``
entry draws a whole transition row (``disease_transitions.fortnightly_transitions.STABLE``).

Scalar distributions are given by ``mean`` and ``sd`` (method of moments) or by their own
parameters: beta ``alpha``/``beta``, gamma ``shape``/``scale``, lognormal ``meanlog``/``sdlog``
(of the logarithm). Each is stored as the arguments numpy's generator takes.

Does not cover: drawing (`engine.psa.sampling`), calibrated parameters (drawn jointly from
the calibration's covariance, `engine.psa.sampling.load_calibration_uncertainty`), applying
prices (the comparison's pricing). See docs/psa.md.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import msgspec

from engine.calibration.free_parameters import parse_free
from engine.errors import ParameterError, ProtocolError, UncertaintyError
from engine.input_files import read_input
from engine.model.protocol_yaml import decode_protocol_yaml
from engine.model.v2.schema import TimeBasedProtocol

__all__ = [
    "DISTRIBUTIONS",
    "ECONOMIC_SCALARS",
    "VISIT_TYPES",
    "Uncertain",
    "is_economic",
    "load_uncertainty",
    "row_of",
]

Distribution = Literal["beta", "gamma", "lognormal", "normal", "dirichlet"]
DISTRIBUTIONS: tuple[str, ...] = ("beta", "gamma", "lognormal", "normal", "dirichlet")
ECONOMIC_SCALARS = (
    "blindness_cost_per_year",
    "adverse_event_cost_per_injection",
    "discontinuation_cost",
    "enrolment_cost",
)
VISIT_TYPES = ("loading_injection", "injection", "monitoring")

_TRANSITIONS = "disease_transitions.fortnightly_transitions"
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
# The numbers each parameterisation takes, in the order numpy's generator takes them.
_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    "beta": (("mean", "sd"), ("alpha", "beta")),
    "gamma": (("mean", "sd"), ("shape", "scale")),
    "lognormal": (("mean", "sd"), ("meanlog", "sdlog")),
    "normal": (("mean", "sd"),),
}


class Uncertain(msgspec.Struct, frozen=True, kw_only=True):
    """One uncertain parameter and the distribution its draws come from.

    Parameters
    ----------
    parameter
        Dotted path: a model path (``mortality.hazard_ratios.primary``), a transition row for
        a Dirichlet (``disease_transitions.fortnightly_transitions.STABLE``), or an economic
        path (``costs.drug_costs.aflibercept_2mg``, ``utilities.utilities.2``).
    distribution
        ``beta``, ``gamma``, ``lognormal``, ``normal`` or ``dirichlet``.
    economic
        True for ``costs.`` and ``utilities.`` paths: priced after simulation, never simulated.
    source
        Where the distribution comes from (citation, or "assumption" and why).
    arguments
        numpy's arguments: beta (a, b), gamma (shape, scale), lognormal (mean and sd of the
        logarithm), normal (mean, sd), dirichlet the alphas in `states` order.
    mean, sd
        The distribution's mean and standard deviation (natural scale); NaN for a Dirichlet.
    states
        A Dirichlet row's target states, as named in the file; empty otherwise.
    lower, upper
        The range the protocol accepts for a model value (a draw outside it is refused when
        applied); infinite for economic paths and Dirichlet rows (which always sum to 1).
    file, index
        The uncertainty file and the entry's position, for messages.
    """

    parameter: str
    distribution: Distribution
    economic: bool
    source: str
    arguments: tuple[float, ...]
    mean: float
    sd: float
    states: tuple[str, ...] = ()
    lower: float = -math.inf
    upper: float = math.inf
    file: str = ""
    index: int = 0

    def names(self) -> list[str]:
        """The flat names this entry's draws carry: the path, or one per state of a row."""
        if self.distribution == "dirichlet":
            return [f"{self.parameter}.{state}" for state in self.states]
        return [self.parameter]


def is_economic(path: str) -> bool:
    """Whether `path` prices the output (``costs.``, ``utilities.``) rather than the model."""
    return path.split(".", 1)[0] in ("costs", "utilities")


def row_of(path: str) -> str | None:
    """The transition row (``disease_transitions.fortnightly_transitions.S``) `path` is in."""
    keys = path.split(".")
    if ".".join(keys[:2]) == _TRANSITIONS and len(keys) in (3, 4):
        return ".".join(keys[:3])
    return None


def load_uncertainty(path: Path, protocol: TimeBasedProtocol) -> list[Uncertain]:
    """The entries of the uncertainty file at `path`, checked against `protocol`.

    Raises `UncertaintyError` naming the file, the entry's field path
    (``$.uncertainty[2].parameter``) and the problem: a missing or unreadable file, not YAML,
    an unknown distribution or key, infeasible numbers, a model path the protocol does not
    have, or a parameter named twice (a Dirichlet row also clashes with an entry in its row).
    """
    path = Path(path)
    label = path.name
    data = read_input(path, UncertaintyError)
    try:
        raw = decode_protocol_yaml(data, label, "uncertain parameters (uncertainty: [...])")
    except ProtocolError as exc:
        raise UncertaintyError(exc.source, exc.path, exc.problem) from exc
    extra = sorted(str(key) for key in raw if key != "uncertainty")
    if extra:
        raise UncertaintyError(label, f"$.{extra[0]}", "unknown key; the file holds `uncertainty:`")
    entries = raw.get("uncertainty")
    if not isinstance(entries, list) or not entries:
        raise UncertaintyError(
            label, "$.uncertainty", "expected a non-empty list of entries (parameter, distribution)"
        )
    result: list[Uncertain] = []
    for index, entry in enumerate(entries):
        uncertain = _entry(entry, index, label, protocol)
        _check_clash(uncertain, result, label)
        result.append(uncertain)
    return result


def _entry(entry: Any, index: int, label: str, protocol: TimeBasedProtocol) -> Uncertain:
    where = f"$.uncertainty[{index}]"
    if not isinstance(entry, dict):
        raise UncertaintyError(
            label, where, "expected a mapping with parameter, distribution, source"
        )
    for key in ("parameter", "distribution", "source"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise UncertaintyError(label, f"{where}.{key}", "is missing; give it as text")
    parameter = entry["parameter"].strip()
    distribution = entry["distribution"].strip()
    if distribution not in DISTRIBUTIONS:
        raise UncertaintyError(
            label,
            f"{where}.distribution",
            f"unknown distribution {distribution!r}; expected one of: {', '.join(DISTRIBUTIONS)}",
        )
    numbers = {k: v for k, v in entry.items() if k not in ("parameter", "distribution", "source")}
    common = {
        "parameter": parameter,
        "distribution": distribution,
        "economic": is_economic(parameter),
        "source": entry["source"].strip(),
        "file": label,
        "index": index,
    }
    if distribution == "dirichlet":
        states, alphas = _dirichlet(numbers, parameter, protocol, label, where)
        return Uncertain(**common, arguments=alphas, mean=math.nan, sd=math.nan, states=states)
    arguments, mean, sd = _scalar(distribution, numbers, label, where)
    lower, upper = -math.inf, math.inf
    if common["economic"]:
        _check_economic_path(parameter, label, where)
    else:
        lower, upper = _model_range(parameter, protocol, label, where)
        if not lower <= mean <= upper:
            raise UncertaintyError(
                label,
                f"{where}.mean",
                f"{mean:g} is outside the range {protocol.name} accepts for {parameter} "
                f"({lower:g} to {upper:g})",
            )
    return Uncertain(**common, arguments=arguments, mean=mean, sd=sd, lower=lower, upper=upper)


def _scalar(
    distribution: str, numbers: dict[str, Any], label: str, where: str
) -> tuple[tuple[float, float], float, float]:
    """numpy's arguments, mean and sd of a scalar distribution, from either parameterisation."""
    forms = _FORMS[distribution]
    form = next((f for f in forms if set(f) == set(numbers)), None)
    if form is None:
        unknown = sorted(set(numbers) - {k for f in forms for k in f})
        allowed = " or ".join(f"{a}, {b}" for a, b in forms)
        problem = f"unknown key {unknown[0]!r}; " if unknown else ""
        raise UncertaintyError(label, where, f"{problem}a {distribution} takes {allowed}")
    first, second = (_number(numbers[key], label, f"{where}.{key}") for key in form)
    if form == ("mean", "sd"):
        return _from_moments(distribution, first, second, label, where), first, second
    for key, value in zip(form, (first, second), strict=True):
        if key != "meanlog" and value <= 0:
            raise UncertaintyError(label, f"{where}.{key}", f"must be > 0, got {value:g}")
    a, b = first, second
    if distribution == "beta":
        mean = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    elif distribution == "gamma":
        mean, sd = a * b, math.sqrt(a) * b
    else:
        mean = math.exp(a + b * b / 2)
        sd = mean * math.sqrt(math.expm1(b * b))
    return (a, b), mean, sd


def _from_moments(
    distribution: str, mean: float, sd: float, label: str, where: str
) -> tuple[float, float]:
    if sd <= 0:
        raise UncertaintyError(label, f"{where}.sd", f"must be > 0, got {sd:g}")
    if distribution == "normal":
        return (mean, sd)
    if distribution == "beta":
        if not 0 < mean < 1:
            raise UncertaintyError(
                label, f"{where}.mean", f"a beta's mean must be between 0 and 1, got {mean:g}"
            )
        if sd * sd >= mean * (1 - mean):
            limit = math.sqrt(mean * (1 - mean))
            raise UncertaintyError(
                label,
                f"{where}.sd",
                f"{sd:g} is too wide for a beta with mean {mean:g}; sd must be below "
                f"sqrt(mean * (1 - mean)) = {limit:.4g}",
            )
        common = mean * (1 - mean) / (sd * sd) - 1
        return (mean * common, (1 - mean) * common)
    if mean <= 0:
        raise UncertaintyError(
            label, f"{where}.mean", f"a {distribution}'s mean must be > 0, got {mean:g}"
        )
    if distribution == "gamma":
        return (mean * mean / (sd * sd), sd * sd / mean)
    sdlog = math.sqrt(math.log1p((sd / mean) ** 2))
    return (math.log(mean) - sdlog * sdlog / 2, sdlog)


def _dirichlet(
    numbers: dict[str, Any],
    parameter: str,
    protocol: TimeBasedProtocol,
    label: str,
    where: str,
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    keys = parameter.split(".")
    if ".".join(keys[:2]) != _TRANSITIONS or len(keys) != 3:
        raise UncertaintyError(
            label,
            f"{where}.parameter",
            f"a dirichlet draws a whole transition row; name it as {_TRANSITIONS}.<STATE>, "
            f"not {parameter}",
        )
    if set(numbers) != {"alpha"} or not isinstance(numbers["alpha"], dict) or not numbers["alpha"]:
        raise UncertaintyError(
            label, f"{where}.alpha", "a dirichlet takes only `alpha: {STATE: a, ...}`"
        )
    _check_time_based(protocol, label, where)
    assert protocol.parameters is not None
    matrix = protocol.parameters.disease_transitions.fortnightly_transitions
    states = list(type(matrix).__struct_fields__)
    if keys[2] not in states:
        raise UncertaintyError(
            label,
            f"{where}.parameter",
            f"no transition row {keys[2]!r}; expected one of: {', '.join(states)}",
        )
    row = getattr(matrix, keys[2])
    alphas: dict[str, float] = {}
    for state, value in numbers["alpha"].items():
        if str(state) not in states:
            raise UncertaintyError(
                label,
                f"{where}.alpha.{state}",
                f"no state {state!r} in the row; expected some of: {', '.join(states)}",
            )
        alpha = _number(value, label, f"{where}.alpha.{state}")
        if alpha < 0:
            raise UncertaintyError(label, f"{where}.alpha.{state}", f"must be >= 0, got {alpha:g}")
        alphas[str(state)] = alpha
    for state in states:
        if getattr(row, state) > 0 and alphas.get(state, 0.0) <= 0:
            raise UncertaintyError(
                label,
                f"{where}.alpha.{state}",
                f"{protocol.name} gives {keys[2]}->{state} probability "
                f"{getattr(row, state):g}; give it an alpha > 0 (a zero alpha never draws it)",
            )
    ordered = tuple(state for state in states if state in alphas)
    return ordered, tuple(alphas[state] for state in ordered)


def _check_economic_path(parameter: str, label: str, where: str) -> None:
    keys = parameter.split(".")
    ok = (
        (keys[:2] == ["costs", "drug_costs"] and len(keys) == 3 and bool(_KEY.match(keys[2])))
        or (keys[:2] == ["costs", "visit_costs"] and len(keys) == 3 and keys[2] in VISIT_TYPES)
        or (keys[0] == "costs" and len(keys) == 2 and keys[1] in ECONOMIC_SCALARS)
        or (keys[:2] == ["utilities", "utilities"] and len(keys) == 3 and keys[2].isdigit())
    )
    if not ok:
        raise UncertaintyError(
            label,
            f"{where}.parameter",
            f"{parameter} is not an economic path; use costs.drug_costs.KEY, "
            f"costs.visit_costs.{{{','.join(VISIT_TYPES)}}}, "
            f"costs.{{{','.join(ECONOMIC_SCALARS)}}} or utilities.utilities.I (band I, from 0)",
        )


def _model_range(
    parameter: str, protocol: TimeBasedProtocol, label: str, where: str
) -> tuple[float, float]:
    _check_time_based(protocol, label, where)
    try:
        (free,) = parse_free(parameter, protocol)
    except ParameterError as exc:
        problem = str(exc).removeprefix(f"free parameter {parameter}: ")
        raise UncertaintyError(label, f"{where}.parameter", problem) from exc
    except ValueError:  # a comma: more than one path
        raise UncertaintyError(label, f"{where}.parameter", "name one parameter") from None
    return free.lower, free.upper


def _check_time_based(protocol: TimeBasedProtocol, label: str, where: str) -> None:
    if getattr(protocol, "parameters", None) is None:
        raise UncertaintyError(
            label,
            f"{where}.parameter",
            f"protocol {protocol.name!r} is not a time-based protocol with parameter files; "
            "model parameters can be drawn only for one (economic paths work for any)",
        )


def _number(value: Any, label: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UncertaintyError(label, where, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise UncertaintyError(label, where, f"expected a finite number, got {value!r}")
    return float(value)


def _check_clash(uncertain: Uncertain, earlier: list[Uncertain], label: str) -> None:
    where = f"$.uncertainty[{uncertain.index}].parameter"
    for other in earlier:
        if other.parameter == uncertain.parameter:
            raise UncertaintyError(
                label,
                where,
                f"{uncertain.parameter} is already drawn by $.uncertainty[{other.index}]; "
                "name each parameter once",
            )
        rows = {u.parameter for u in (uncertain, other) if u.distribution == "dirichlet"}
        if rows and row_of(other.parameter) == row_of(uncertain.parameter):
            raise UncertaintyError(
                label,
                where,
                f"{uncertain.parameter} is in the transition row {rows.pop()}, which "
                f"$.uncertainty[{other.index}] also draws; draw the row once",
            )
