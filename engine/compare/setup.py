"""From what the user asked (`CompareRequest`) to a comparison directory, and its outputs back.

The request (protocol references, cohort, costs and utilities files, drugs, discount rates,
thresholds, session capacity) is saved as ``request.json``; the spec (engine.compare.runner)
holds the protocols as validated. Prices and utilities are applied after the simulation
(engine.compare.valuation), so the files are read again when the outputs are written; a cost
or utility file that changed since the comparison started is refused on resume.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from engine.compare.report import ReportSettings, arm_names_from_sources, comparison_document
from engine.compare.runner import ArmSpec, CompareSpec, write_spec
from engine.compare.totals import CompareTotals
from engine.compare.valuation import ArmWeights, EyeBands, arm_weights, eye_bands, eye_settings
from engine.economics.costs import CostFile, drug_cost, load_cost_file
from engine.economics.utilities import UtilityTable, load_utility_table
from engine.errors import ParameterError
from engine.model.parameters import Recruitment, RunParameters, validate_parameters
from engine.model.protocol_loader import load_protocol, resolve_protocol_path
from engine.model.v2.schema import TimeBasedProtocol
from engine.psa.sampling import load_calibration_uncertainty
from engine.psa.uncertainty import load_uncertainty
from engine.run_dir import new_run_id, write_atomically

__all__ = [
    "DEFAULT_COSTS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_UTILITIES",
    "CompareRequest",
    "PsaRequest",
    "Valuation",
    "currency_symbol",
    "load_valuation",
    "new_comparison",
    "protocols_calibration",
    "valuation_weights",
    "write_outputs",
]

_DEFAULTS = Path(__file__).resolve().parent.parent / "economics" / "defaults"
DEFAULT_COSTS = _DEFAULTS / "nhs_costs_2025.yaml"
DEFAULT_UTILITIES = _DEFAULTS / "utilities_brown.yaml"
DEFAULT_THRESHOLDS = (20_000.0, 30_000.0)
REQUEST_FILE = "request.json"
_CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


class PsaRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a PSA was asked for: K draws, their seed, and the files pinned by content."""

    draws: int
    seed: int
    uncertainty: str | None
    uncertainty_sha256: str | None
    calibration: str | None
    calibration_sha256: str | None

    @classmethod
    def build(
        cls, draws: int, seed: int, uncertainty: Path | None, calibration: Path | None
    ) -> PsaRequest:
        """Check K and pin the files (a PSA with nothing uncertain is refused)."""
        if not 1 <= draws <= 1_000_000:
            raise ParameterError(f"--psa must be between 1 and 1,000,000 draws, got {draws}")
        if uncertainty is None and calibration is None:
            raise ParameterError(
                "--psa needs something uncertain: --uncertainty FILE and/or --calibration FILE "
                "(the protocols' calibration.json is used when they have one)"
            )
        return cls(
            draws=draws,
            seed=seed,
            uncertainty=str(Path(uncertainty).resolve()) if uncertainty else None,
            uncertainty_sha256=_sha256(Path(uncertainty), "--uncertainty") if uncertainty else None,
            calibration=str(Path(calibration).resolve()) if calibration else None,
            calibration_sha256=_sha256(Path(calibration), "--calibration") if calibration else None,
        )


class CompareRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the user asked for; saved with the comparison so resume needs nothing else."""

    run_id: str
    protocols: list[str]
    patients: int
    years: float
    seed: int
    recruitment: Recruitment
    costs: str
    costs_sha256: str
    utilities: str
    utilities_sha256: str
    drugs: dict[str, str]
    cost_rate: float
    outcome_rate: float
    thresholds: list[float]
    session_capacity: float
    psa: PsaRequest | None = None
    second_eye_rate: float = 0.0

    @classmethod
    def build(
        cls,
        *,
        protocols: list[str],
        patients: int,
        years: float,
        seed: int,
        recruitment: Recruitment,
        costs: Path | None,
        utilities: Path | None,
        drugs: dict[str, str],
        cost_rate: float,
        outcome_rate: float,
        thresholds: list[float],
        session_capacity: float,
        psa: PsaRequest | None = None,
        second_eye_rate: float = 0.0,
    ) -> CompareRequest:
        """Check the numbers and pin the economic files by content."""
        for name, rate in (("--discount-costs", cost_rate), ("--discount-outcomes", outcome_rate)):
            if not 0.0 <= rate < 1.0:
                raise ParameterError(f"{name} must be a rate between 0 and 1, got {rate}")
        if any(not t > 0 for t in thresholds):
            raise ParameterError(f"--threshold must be above 0, got {thresholds}")
        if not 0.0 <= second_eye_rate <= 2.0:
            raise ParameterError(
                f"--second-eye-rate must be an annual rate between 0 and 2, got {second_eye_rate}"
            )
        if not session_capacity > 0:
            raise ParameterError(f"--session-capacity must be above 0, got {session_capacity}")
        costs_path = Path(costs) if costs is not None else DEFAULT_COSTS
        utilities_path = Path(utilities) if utilities is not None else DEFAULT_UTILITIES
        return cls(
            run_id=new_run_id(),
            protocols=protocols,
            patients=patients,
            years=years,
            seed=seed,
            recruitment=recruitment,
            costs=str(costs_path.resolve()),
            costs_sha256=_sha256(costs_path, "--costs"),
            utilities=str(utilities_path.resolve()),
            utilities_sha256=_sha256(utilities_path, "--utilities"),
            drugs=drugs,
            cost_rate=cost_rate,
            outcome_rate=outcome_rate,
            thresholds=[float(t) for t in thresholds],
            session_capacity=float(session_capacity),
            psa=psa,
            second_eye_rate=float(second_eye_rate),
        )

    @classmethod
    def from_file(cls, directory: Path) -> CompareRequest:
        """The request saved in a comparison directory."""
        try:
            return msgspec.json.decode((directory / REQUEST_FILE).read_bytes(), type=cls)
        except (OSError, msgspec.DecodeError) as exc:
            raise ParameterError(f"{directory} is not a comparison directory: {exc}") from None


@dataclass(frozen=True)
class Valuation:
    """The cost file, the utility table and the VA bands the simulation tracks."""

    costs: CostFile
    utilities: UtilityTable
    bands: EyeBands

    @classmethod
    def of(cls, costs: CostFile, utilities: UtilityTable) -> Valuation:
        """The valuation of a cost file and a utility table (bands refined at blindness)."""
        bands = eye_bands(
            list(utilities.lower_edges),
            list(utilities.utilities),
            list(utilities.fellow_eye),
            costs.blindness_threshold_letters,
        )
        return cls(costs, utilities, bands)


def load_valuation(request: CompareRequest, resumed: bool = False) -> Valuation:
    """Read the request's cost and utility files (on resume: refuse files that changed)."""
    if resumed:
        pinned = [
            ("--costs", request.costs, request.costs_sha256),
            ("--utilities", request.utilities, request.utilities_sha256),
        ]
        if request.psa is not None:
            pinned += [
                ("--uncertainty", request.psa.uncertainty, request.psa.uncertainty_sha256),
                ("--calibration", request.psa.calibration, request.psa.calibration_sha256),
            ]
        for option, path, sha in pinned:
            if path is None:
                continue
            if _sha256(Path(path), option) != sha:
                raise ParameterError(
                    f"{path} changed since the comparison started; start a new comparison"
                )
    return Valuation.of(
        load_cost_file(Path(request.costs)), load_utility_table(Path(request.utilities))
    )


def new_comparison(directory: Path, request: CompareRequest) -> CompareSpec:
    """Load and check everything, then create the directory with its spec and request."""
    protocols = [_time_based(reference) for reference in request.protocols]
    valuation = load_valuation(request)
    for protocol, reference in zip(protocols, request.protocols, strict=True):
        _drug_price(valuation.costs, protocol, reference, request.drugs)
    if request.psa is not None:  # a bad PSA file is said now, not after the base simulation
        check_psa_files(request.psa, protocols)
    params = validate_parameters(
        RunParameters(
            n_patients=request.patients,
            years=request.years,
            seed=request.seed,
            recruitment=request.recruitment,
        )
    )
    names = arm_names_from_sources(request.protocols)
    spec = CompareSpec(
        arms=[
            ArmSpec(name=name, source=reference, protocol=protocol)
            for name, reference, protocol in zip(names, request.protocols, protocols, strict=True)
        ],
        params=params,
        eye=eye_settings(
            valuation.bands,
            valuation.utilities.treated_eye_better_share,
            request.cost_rate,
            request.outcome_rate,
            request.second_eye_rate,
        ),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    write_spec(directory, spec)
    write_atomically(directory / REQUEST_FILE, msgspec.json.format(msgspec.json.encode(request)))
    return spec


def write_outputs(
    directory: Path, spec: CompareSpec, request: CompareRequest, totals: CompareTotals
) -> dict[str, Any]:
    """Write comparison.json and each arm's summary.json; return the document."""
    valuation = load_valuation(request, resumed=True)
    weights = [
        valuation_weights(valuation, arm.protocol, arm.source, request.drugs) for arm in spec.arms
    ]
    costs = valuation.costs
    settings = ReportSettings(
        arm_names=[arm.name for arm in spec.arms],
        weights=weights,
        thresholds=request.thresholds,
        session_capacity=request.session_capacity,
        valuation={
            "costs": request.costs,
            "cost_file": costs.name,
            "currency": costs.currency,
            "currency_symbol": currency_symbol(costs.currency),
            "price_year": costs.price_year,
            "perspective": costs.perspective,
            "cost_warnings": list(costs.warnings),
            "utilities": request.utilities,
            "utility_source": valuation.utilities.source,
            "discount_rate_costs": request.cost_rate,
            "discount_rate_outcomes": request.outcome_rate,
            "second_eye_rate_per_year": request.second_eye_rate,
            "thresholds": request.thresholds,
            "drugs": {arm.name: _drug_key(arm.protocol, request.drugs) for arm in spec.arms},
        },
        run={
            "id": request.run_id,
            "patients": spec.params.n_patients,
            "years": spec.params.years,
            "seed": spec.params.seed,
            "recruitment": msgspec.to_builtins(spec.params.recruitment),
            "arms": [
                {"name": arm.name, "protocol": arm.source, "protocol_name": arm.protocol.name}
                for arm in spec.arms
            ],
        },
    )
    document = comparison_document(totals, settings)
    for arm, arm_totals in zip(document["arms"], totals.arms, strict=True):
        folder = directory / arm_folder(arm["name"])
        folder.mkdir(exist_ok=True)
        write_atomically(folder / "summary.json", msgspec.json.format(msgspec.json.encode(arm)))
        write_atomically(
            folder / "counts.msgpack", msgspec.msgpack.encode(arm_totals.counts.state())
        )
    write_atomically(
        directory / "comparison.json", msgspec.json.format(msgspec.json.encode(document))
    )
    return document


def currency_symbol(currency: str) -> str:
    """The symbol printed before amounts (empty for a currency without one here)."""
    return _CURRENCY_SYMBOLS.get(currency, "")


def arm_folder(name: str) -> str:
    """The sub-directory of an arm (its name with path separators replaced)."""
    return name.replace("/", "_").replace("\\", "_")


def valuation_weights(
    valuation: Valuation, protocol: Any, reference: str, drugs: dict[str, str]
) -> ArmWeights:
    """One arm's weights under a valuation (its drug priced by the cost file)."""
    costs = valuation.costs
    return arm_weights(
        valuation.bands,
        visit_costs=dict(costs.visit_costs),
        drug_cost=_drug_price(costs, protocol, reference, drugs),
        adverse_event_cost_per_injection=costs.adverse_event_cost_per_injection,
        discontinuation_cost=costs.discontinuation_cost,
        blindness_cost_per_year=costs.blindness_cost_per_year,
        enrolment_cost=costs.enrolment_cost,
    )


def _drug_key(protocol: TimeBasedProtocol, drugs: dict[str, str]) -> str:
    return drugs.get(protocol.drug, protocol.drug)


def _drug_price(
    costs: CostFile, protocol: TimeBasedProtocol, reference: str, drugs: dict[str, str]
) -> float:
    if not protocol.drug:
        raise ParameterError(
            f"{reference} does not name its drug (`drug:`); add it, so costing never guesses"
        )
    return drug_cost(costs, _drug_key(protocol, drugs))


def check_psa_files(psa: PsaRequest, protocols: list[TimeBasedProtocol]) -> None:
    """Load the uncertainty file against every arm and the calibration (errors: exit 2)."""
    if psa.uncertainty:
        for protocol in protocols:
            load_uncertainty(Path(psa.uncertainty), protocol)
    if psa.calibration:
        load_calibration_uncertainty(Path(psa.calibration))


def protocols_calibration(references: list[str]) -> Path | None:
    """The calibration.json beside the protocols' parameter files, when all share one."""
    found: set[Path] = set()
    for reference in references:
        protocol = _time_based(reference)
        folder = resolve_protocol_path(reference).parent
        candidate = folder / Path(protocol.disease_transitions_file).parent / "calibration.json"
        if not candidate.is_file():
            return None
        found.add(candidate.resolve())
    return found.pop() if len(found) == 1 else None


def _time_based(reference: str) -> TimeBasedProtocol:
    protocol = load_protocol(reference)
    if not isinstance(protocol, TimeBasedProtocol):
        raise ParameterError(
            f"{reference} is a visit-based protocol; comparisons need time-based protocols "
            "(common random numbers pair the patients)"
        )
    resolve_protocol_path(reference)
    return protocol


def _sha256(path: Path, option: str) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ParameterError(f"{option} {path}: {exc.strerror}") from None
