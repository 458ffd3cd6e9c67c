"""A protocol as a clinician reads it: its display name and description, the regimen (loading
doses, intervals and their steps, phases), the population it simulates, the disease and
vision parameters (the time-based model's parameter files; the visit-based model's transition
matrix and vision change per visit), and the published sources it cites.

Shown on the Run page for the protocol chosen (before a run) and on the Results page for the
open run (from its manifest, so a past run shows what it ran, even if the file changed
since). Every value comes from the validated protocol; text from the file is escaped.
"""

from __future__ import annotations

from engine.model.baseline_vision import BaselineVisionDistribution
from engine.model.states import STATE_NAMES
from engine.model.v1.protocol import Protocol
from engine.model.v2.schema import TimeBasedProtocol
from viz.charts import plain_name
from viz.safe_text import html_text

__all__ = ["protocol_card_html"]

_STYLE = (
    "<style>.protocol-card table {border-collapse: collapse; margin-bottom: 6px}"
    " .protocol-card th, .protocol-card td {padding: 2px 10px 2px 0; text-align: left;"
    " vertical-align: top} .protocol-card th {font-weight: 600}</style>"
)


_TYPES = {
    "treat_and_extend": "Treat and extend",
    "treat_and_treat": "Fixed interval",
    "fixed": "Fixed interval",
    "fixed_interval": "Fixed interval",
    "prn": "PRN (as needed, on monitoring visits)",
}
_INJECTION_RULES = {"every_visit": "at every visit", "when_active": "only when disease is active"}


def _intervals(low: int, high: int) -> str:
    return f"every {_weeks(low)}" if low == high else f"{_weeks(low)} to {_weeks(high)}"


def _weeks(days: int) -> str:
    return f"{days} days ({days / 7:g} weeks)" if days % 7 == 0 else f"{days} days"


def _rows(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html_text(k)}</th><td>{html_text(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _population(dist: BaselineVisionDistribution | None) -> str:
    if dist is None:
        return "baseline vision: the model's default"
    if dist.type == "normal":
        shape = f"normal, mean {dist.mean:g}, SD {dist.std:g} letters"
    elif dist.type == "uniform":
        shape = "uniform"
    else:
        shape = f"{dist.type.replace('_', ' ')} (alpha {dist.alpha:g}, beta {dist.beta:g})"
    label = f" - {dist.name}" if dist.name else ""
    return f"baseline vision {shape}, {dist.min:g} to {dist.max:g} letters{label}"


def _regimen(protocol: Protocol | TimeBasedProtocol) -> list[tuple[str, str]]:
    if isinstance(protocol, TimeBasedProtocol):
        loading, every = protocol.loading_dose_injections, protocol.loading_dose_interval_days
    else:
        loading, every = protocol.loading_doses, protocol.loading_dose_interval_days or 28
    rows = [
        ("Type", _TYPES.get(protocol.protocol_type, plain_name(protocol.protocol_type))),
        (
            "Loading doses",
            f"{loading} injection{'s' if loading != 1 else ''}, every {_weeks(every)}"
            if loading
            else "none",
        ),
        ("Visits", _intervals(protocol.min_interval_days, protocol.max_interval_days)),
    ]
    if protocol.extension_days or protocol.shortening_days:
        rows.append(
            (
                "Steps",
                f"extend by {protocol.extension_days} days when stable, shorten by "
                f"{protocol.shortening_days} days when active",
            )
        )
    if isinstance(protocol, TimeBasedProtocol):
        rows.append(("Injections", _INJECTION_RULES.get(protocol.injection_rule, "")))
        if protocol.max_days_between_injections:
            rows.append(
                ("At most", f"{protocol.max_days_between_injections} days between injections")
            )
        for phase in protocol.phases:
            rows.append(
                (
                    f"From day {phase.start_day}",
                    f"{_TYPES.get(phase.protocol_type, phase.protocol_type)}, "
                    f"{_intervals(phase.min_interval_days, phase.max_interval_days)}",
                )
            )
    return rows


def _time_based(protocol: TimeBasedProtocol) -> str:
    files = [
        ("Disease transitions", protocol.disease_transitions_file),
        ("Treatment effect", protocol.treatment_effect_file),
        ("Vision", protocol.vision_parameters_file),
        ("Discontinuation", protocol.discontinuation_parameters_file),
        ("Demographics", protocol.demographics_parameters_file),
        ("Mortality", protocol.mortality_parameters_file),
    ]
    sources = "".join(
        f"<li>{html_text(c.figure)}: {html_text(c.study)}; {html_text(c.reference)}"
        f"{html_text(', ' + c.where) if c.where else ''}</li>"
        for c in protocol.sources
    )
    population = [
        ("Population", plain_name(protocol.population_type)),
        ("Vision at entry", _population(protocol.baseline_vision_distribution)),
    ]
    return (
        f"<h4>Population</h4>{_rows(population)}"
        f"<h4>Disease and vision parameters (files)</h4>{_rows(files)}"
        + (f"<h4>Sources</h4><ul>{sources}</ul>" if sources else "<p>No sources cited.</p>")
    )


def _visit_based(protocol: Protocol) -> str:
    head = "".join(f"<th>to {plain_name(s)}</th>" for s in STATE_NAMES)
    matrix = "".join(
        f"<tr><th>{plain_name(state)}</th>"
        + "".join(
            f"<td>{100 * getattr(getattr(protocol.disease_transitions, state), to):.0f} %</td>"
            for to in STATE_NAMES
        )
        + "</tr>"
        for state in STATE_NAMES
    )
    vision = protocol.vision_change_model
    changes = [
        (
            plain_name(state),
            f"treated {getattr(vision, f'{state.lower()}_treated').mean:+g} "
            f"(SD {getattr(vision, f'{state.lower()}_treated').std:g}), untreated "
            f"{getattr(vision, f'{state.lower()}_untreated').mean:+g} letters",
        )
        for state in STATE_NAMES
    ]
    dist = protocol.baseline_vision_distribution
    return (
        f"<h4>Population</h4>{_rows([('Vision at entry', _population(dist))])}"
        f"<h4>Disease activity from one visit to the next (untreated)</h4>"
        f"<table><tr><th></th>{head}</tr>{matrix}</table>"
        f"<h4>Vision change per visit (letters)</h4>{_rows(changes)}"
    )


def protocol_card_html(protocol: Protocol | TimeBasedProtocol) -> str:
    """The protocol as an HTML fragment (see the module's docstring)."""
    description = f"<p>{html_text(protocol.description)}</p>" if protocol.description else ""
    model = "time-based" if isinstance(protocol, TimeBasedProtocol) else "visit-based"
    details = (
        _time_based(protocol) if isinstance(protocol, TimeBasedProtocol) else _visit_based(protocol)
    )
    return (
        f"{_STYLE}<div class='protocol-card'><h3>{html_text(protocol.name)}</h3>{description}"
        f"<p>{model} model, version {html_text(protocol.version)}</p>"
        f"<h4>Regimen</h4>{_rows(_regimen(protocol))}{details}</div>"
    )
