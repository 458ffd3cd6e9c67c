"""The Compare page's tables as HTML: the comparison's setting, per-arm results, paired
differences (with the ICER said in words when one arm dominates) and the PSA summary.

Numbers read as a clinician would write them: letters to one decimal, costs in the
comparison's currency with thousands separators, QALYs to three or four decimals, never in
scientific notation; "not available" where the horizon does not reach a month. Every string
from the comparison (arm names, file names, warnings) is escaped (`viz.safe_text.html_text`).

Does not cover: charts (`viz.compare_charts`), reading the directory (`viz.compare_data`).
"""

from __future__ import annotations

import math
from typing import Any

from viz.safe_text import html_text

__all__ = [
    "TABLE_STYLE",
    "arms_table_html",
    "header_html",
    "icer_text",
    "pairs_table_html",
    "psa_table_html",
]

TABLE_STYLE = (
    "<style>"
    ".cmp-table{border-collapse:collapse;margin:6px 0 14px;font-size:14px}"
    ".cmp-table th,.cmp-table td{border-bottom:1px solid #ddd;padding:4px 10px;"
    "text-align:right;white-space:nowrap}"
    ".cmp-table th:first-child,.cmp-table td:first-child{text-align:left;white-space:normal}"
    ".cmp-table caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}"
    ".cmp-note{color:#555;font-size:13px;margin:2px 0 10px}"
    ".cmp-warning{color:#8a4b00}"
    "</style>"
)
_NOT_AVAILABLE = "not available"
_NO_RATIO = {
    "dominant": "costs less and gains more QALYs",
    "dominated": "costs more and gains fewer QALYs",
    "no difference": "the same costs and QALYs",
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _plain(value: object, digits: int, signed: bool = False) -> str:
    if not _is_number(value):
        return _NOT_AVAILABLE
    return f"{value:{'+' if signed else ''},.{digits}f}"  # type: ignore[str-format]


def _money(value: object, currency: str, digits: int = 0, signed: bool = False) -> str:
    """`-£2,291` (the sign before the currency symbol), `+£35` when `signed`."""
    if not _is_number(value):
        return _NOT_AVAILABLE
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")  # type: ignore[operator]
    return f"{sign}{html_text(currency)}{abs(value):,.{digits}f}"  # type: ignore[arg-type]


def _estimate(
    value: dict[str, Any] | None, digits: int, currency: str | None = None, signed: bool = False
) -> str:
    """`mean (low to high)`; "not available" when the mean is missing."""
    if not value or not _is_number(value.get("mean")):
        return _NOT_AVAILABLE

    def show(number: object) -> str:
        if currency is not None:
            return _money(number, currency, digits, signed)
        return _plain(number, digits, signed)

    text = show(value["mean"])
    low, high = value.get("low"), value.get("high")
    if _is_number(low) and _is_number(high):
        text += f" <span class='cmp-ci'>({show(low)} to {show(high)})</span>"
    return text


def _table(caption: str, head: list[str], rows: list[list[str]], css: str) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<table class='cmp-table {css}'><caption>{caption}</caption>"
        f"<tr>{header}</tr>{body}</table>"
    )


def header_html(document: dict[str, Any]) -> str:
    """What was compared: patients, horizon, seed, the arms' protocols and the valuation."""
    run = document["run"]
    valuation = document.get("valuation", {})
    arms = "".join(
        f"<li><b>{html_text(a['name'])}</b>: {html_text(a.get('protocol_name', ''))}</li>"
        for a in run.get("arms", [])
    )
    discount = (
        f"discounted at {100 * valuation.get('discount_rate_costs', 0):g} % a year (costs) and "
        f"{100 * valuation.get('discount_rate_outcomes', 0):g} % (QALYs)"
    )
    warnings = "".join(
        f"<p class='cmp-note cmp-warning'>Cost warning: {html_text(w)}</p>"
        for w in valuation.get("cost_warnings", [])
    )
    return (
        f"{TABLE_STYLE}<h3>Comparison {html_text(run['id'])}</h3>"
        f"<p>{run['patients']:,} patients per arm, followed for {run['years']:g} years "
        f"(seed {run['seed']}, {html_text(run.get('recruitment', {}).get('mode', 'cohort'))} "
        f"recruitment).</p><ul>{arms}</ul>"
        f"<p class='cmp-note'>Costs in {html_text(valuation.get('currency', ''))} "
        f"({html_text(valuation.get('price_year', ''))} prices, "
        f"{html_text(valuation.get('perspective', ''))} perspective), {discount}. "
        f"Costs: {html_text(valuation.get('cost_file', ''))}. "
        f"Utilities: {html_text(valuation.get('utility_source', ''))}.</p>{warnings}"
    )


def arms_table_html(document: dict[str, Any]) -> str:
    """Per patient, each arm: injections, visits, costs, QALYs, life-years, clinic sessions."""
    currency = document.get("valuation", {}).get("currency_symbol", "")
    arms = document["arms"]
    per_patient = [
        ("Injections", "injections", 1, None),
        ("Clinic visits", "visits", 1, None),
        ("Cost, discounted", "cost", 0, currency),
        ("Cost, undiscounted", "cost_undiscounted", 0, currency),
        ("QALYs, discounted", "qalys", 3, None),
        ("QALYs, undiscounted", "qalys_undiscounted", 3, None),
        ("Life-years", "life_years", 2, None),
    ]
    rows = [["Patients", *(f"{a['patients']:,}" for a in arms)]]
    for label, key, digits, unit in per_patient:
        rows.append([label, *(_estimate(a["per_patient"].get(key), digits, unit) for a in arms)])
    rows.append(
        ["Cost per patient-year", *(_money(a.get("cost_per_patient_year"), currency) for a in arms)]
    )
    rows.append(
        ["Cost per injection", *(_money(a.get("cost_per_injection"), currency) for a in arms)]
    )
    rows.append(
        [
            "Clinic sessions per week: peak / steady state",
            *(
                f"{_plain(a['workload'].get('peak_sessions'), 1)} / "
                f"{_plain(a['workload'].get('steady_state_sessions_per_week'), 1)}"
                for a in arms
            ),
        ]
    )
    head = ["", *(html_text(a["name"]) for a in arms)]
    return _table(
        "Per arm, per patient (mean and 95 % CI)", head, rows, "arms-table"
    ) + "<p class='cmp-note'>Clinic sessions at {} patients per session.</p>".format(
        _plain(arms[0]["workload"].get("session_capacity"), 0) if arms else "-"
    )


def icer_text(pair: dict[str, Any], currency: str) -> str:
    """The ICER with its Fieller 95 % CI, or in words when one arm dominates (HTML-escaped)."""
    second = html_text(pair["second"])
    dominance = str(pair.get("dominance", ""))
    interval = pair.get("icer_interval") or {}
    if dominance in _NO_RATIO:
        text = f"{second} is {html_text(dominance)} ({_NO_RATIO[dominance]})"
        if pair.get("icer") is None:
            return text
    elif pair.get("icer") is None:
        return f"not available ({html_text(dominance)})" if dominance else _NOT_AVAILABLE
    elif dominance == "less costly, less effective":  # the ratio is a saving per QALY lost
        saving = _money(abs(pair["icer"]), currency)
        text = f"{saving} saved per QALY lost (less costly, less effective)"
    else:
        text = f"{_money(pair['icer'], currency)} per QALY gained ({html_text(dominance)})"
    kind = interval.get("kind")
    if kind == "bounded" and _is_number(interval.get("low")):
        low, high = _money(interval["low"], currency), _money(interval["high"], currency)
        return f"{text}<br>Fieller 95 % CI of the ratio: {low} to {high}"
    if kind == "exclusive":
        low, high = _money(interval.get("low"), currency), _money(interval.get("high"), currency)
        return (
            f"{text}<br>Fieller 95 % CI of the ratio: below {low} or above {high} "
            "(the QALY difference is not significantly different from 0)"
        )
    if kind:
        return f"{text}<br>Fieller 95 % CI of the ratio: {html_text(kind)}"
    return text


def pairs_table_html(document: dict[str, Any]) -> str:
    """One table per pair: paired differences (second minus first) with 95 % CI, ICER, NMB."""
    currency = document.get("valuation", {}).get("currency_symbol", "")
    rows_of = [
        ("VA change at 12 months (letters)", "va_change_m12", 1, None),
        ("VA change at 24 months (letters)", "va_change_m24", 1, None),
        ("VA change at 60 months (letters)", "va_change_m60", 1, None),
        ("Injections per patient", "injections", 2, None),
        ("Clinic visits per patient", "visits", 2, None),
        ("Cost per patient, discounted", "cost", 0, currency),
        ("QALYs per patient, discounted", "qalys", 4, None),
    ]
    parts = []
    for pair in document.get("pairs", []):
        differences = pair.get("differences", {})
        rows = [
            [label, _estimate(differences.get(key), digits, unit, signed=True)]
            for label, key, digits, unit in rows_of
        ]
        rows.append(["ICER (cost per QALY gained)", icer_text(pair, currency)])
        for nmb in pair.get("net_monetary_benefit", []):
            rows.append(
                [
                    f"Net monetary benefit at {_money(nmb['threshold'], currency)} per QALY",
                    _estimate(nmb, 0, currency, signed=True),
                ]
            )
        caption = (
            f"{html_text(pair['second'])} minus {html_text(pair['first'])} "
            "(paired differences per patient, mean and 95 % CI)"
        )
        parts.append(_table(caption, ["", "Difference"], rows, "pair-table"))
        if not pair.get("same_patients", True):
            parts.append(
                "<p class='cmp-note cmp-warning'>The arms enrol different populations: "
                "these differences mix regimen and population.</p>"
            )
    return "".join(parts)


def psa_table_html(document: dict[str, Any]) -> str:
    """The PSA's per-arm intervals over draws, probabilities cost-effective and EVPI."""
    psa = document.get("psa")
    if not psa:
        return ""
    currency = document.get("valuation", {}).get("currency_symbol", "")
    arms = psa.get("arms", [])
    rows = [
        ["Cost per patient", *(_estimate(a["cost"], 0, currency) for a in arms)],
        ["QALYs per patient", *(_estimate(a["qalys"], 3) for a in arms)],
    ]
    for index, row in enumerate(arms[0].get("probability_cost_effective", []) if arms else []):
        rows.append(
            [
                f"Probability most cost-effective at {_money(row['threshold'], currency)} per QALY",
                *(
                    f"{100 * a['probability_cost_effective'][index]['probability']:.0f} %"
                    for a in arms
                ),
            ]
        )
    head = ["", *(html_text(a["name"]) for a in arms)]
    draws = psa.get("draws", 0)
    reused = psa.get("served_without_resimulation", 0)
    caption = (
        f"Probabilistic sensitivity analysis: {draws:,} draws ({reused:,} priced without "
        "re-simulating); mean and 95 % interval over draws"
    )
    parts = [_table(caption, head, rows, "psa-table")]
    for pair in psa.get("pairs", []):
        chances = ", ".join(
            f"{100 * r['probability']:.0f} % at {_money(r['threshold'], currency)}"
            for r in pair.get("probability_second_cost_effective", [])
        )
        parts.append(
            f"<p class='cmp-note'>{html_text(pair['second'])} minus "
            f"{html_text(pair['first'])}: incremental cost "
            f"{_estimate(pair['incremental_cost'], 0, currency, signed=True)}, incremental "
            f"QALYs {_estimate(pair['incremental_qalys'], 4, signed=True)}; probability "
            f"{html_text(pair['second'])} is cost-effective: {chances}.</p>"
        )
    evpi = ", ".join(
        f"{_money(r['value'], currency, 2)} at {_money(r['threshold'], currency)} per QALY"
        for r in psa.get("evpi_per_patient", [])
    )
    if evpi:
        parts.append(
            f"<p class='cmp-note'>Expected value of perfect information per patient: {evpi}.</p>"
        )
    if psa.get("bounds"):
        parts.append(f"<p class='cmp-note'>{html_text(psa['bounds'])}</p>")
    return "".join(parts)
