"""The PSA's tables in the terminal: intervals over draws, acceptability, EVPI, N and K advice."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from engine.cli.console import out_console

__all__ = ["amount", "print_psa"]


def print_psa(summary: dict[str, Any], currency: str) -> None:
    """Print the PSA summary written to psa/summary.json."""
    draws = summary["draws"]
    reused = summary["served_without_resimulation"]
    table = Table(
        title=f"Probabilistic sensitivity analysis: {draws:,} draws "
        f"({reused:,} priced without re-simulating); mean and 95% interval over draws",
        title_justify="left",
    )
    table.add_column("")
    for arm in summary["arms"]:
        table.add_column(arm["name"], justify="right")
    table.add_row(
        "Cost, discounted", *(_interval(arm["cost"], 0, currency) for arm in summary["arms"])
    )
    table.add_row("QALYs, discounted", *(_interval(arm["qalys"], 3, "") for arm in summary["arms"]))
    for i, row in enumerate(summary["arms"][0]["probability_cost_effective"]):
        table.add_row(
            f"P(best) at {currency}{row['threshold']:,.0f}/QALY",
            *(
                f"{arm['probability_cost_effective'][i]['probability']:.0%}"
                for arm in summary["arms"]
            ),
        )
    out_console.print(table)
    for pair in summary["pairs"]:
        lines = [
            f"{pair['second']} minus {pair['first']}: incremental cost "
            f"{_interval(pair['incremental_cost'], 0, currency)}, incremental QALYs "
            f"{_interval(pair['incremental_qalys'], 4, '')}",
        ]
        for row in pair["probability_second_cost_effective"]:
            lines.append(
                f"  probability {pair['second']} is cost-effective at "
                f"{currency}{row['threshold']:,.0f}/QALY: {row['probability']:.0%}"
            )
        lines.append("  " + pair["monte_carlo_vs_between"]["incremental_qalys"]["advice"])
        out_console.print("\n".join(lines))
    for row in summary["evpi_per_patient"]:
        out_console.print(
            f"EVPI per patient at {currency}{row['threshold']:,.0f}/QALY: "
            f"{currency}{row['value']:,.2f}"
        )
    if summary.get("bounds"):
        out_console.print(f"Calibrated parameters: {summary['bounds']}")
    if summary["refused_draws"]:
        out_console.print(
            f"{len(summary['refused_draws'])} draws were refused by the protocol's range checks "
            "and left out (docs/psa.md)."
        )
    out_console.print("Draws, CE plane and acceptability curve: psa/draws.parquet, psa/*.svg")


def _interval(value: dict[str, Any], digits: int, unit: str) -> str:
    low, high = amount(value["low"], digits, unit), amount(value["high"], digits, unit)
    return f"{amount(value['mean'], digits, unit)} ({low} to {high})"


def amount(value: float, digits: int, unit: str = "") -> str:
    """A number with thousands separators, the sign before the currency (-£606, not £-606)."""
    sign = "-" if value < 0 and round(value, digits) != 0 else ""
    return f"{sign}{unit}{abs(value):,.{digits}f}"
