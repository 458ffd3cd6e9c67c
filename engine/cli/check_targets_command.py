"""`amdsim check-targets [PROTOCOL...]`: does each protocol reproduce its published figures?

Simulates every protocol the targets file names (the bundled aflibercept 2 mg targets unless
``--targets``) and prints one table for calibration targets and one for validation targets:
simulated value and its Monte Carlo SE, the source's value and 95 % CI, pass or FAIL, and the
margin to the nearer CI end in SEs. ``--json`` prints the same as JSON; ``--strict`` exits 1
when a calibration target fails; ``--charts DIR`` writes VA-over-time and injections-per-year
charts (SVG) per protocol, with the targets drawn on them.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.calibration.check import TargetCheck, check_targets
from engine.calibration.targets import SHARE_FIGURES, bundled_targets_path, load_targets
from engine.cli.console import err_console, out_console, safe_text

__all__ = ["register"]

EXIT_FAILED_TARGET = 1
TABLE_WIDTH = 150  # wide enough for one line per target when the output is not a terminal
FIGURE_LABELS = {
    "injections": "injections",
    "va_change": "VA change",
    "va_change_sd": "SD of VA change",
    "gained_15": "gained >= 15",
    "lost_lt_15": "lost < 15",
    "lost_15": "lost >= 15",
    "discontinued": "stopped",
}


def register(commands: Any) -> None:
    """Add the `check-targets` subcommand to the CLI."""
    parser = commands.add_parser(
        "check-targets",
        help="check bundled protocols against the published trial figures",
        description="Simulate each protocol a targets file names and compare every figure "
        "with its source's 95%% confidence interval (docs/validation.md).",
    )
    parser.add_argument(
        "protocols",
        nargs="*",
        metavar="PROTOCOL",
        help="only the targets of these protocols (bundled names or paths); default: all",
    )
    parser.add_argument(
        "--targets",
        type=Path,
        default=None,
        help="targets file (YAML); default: the bundled aflibercept 2 mg targets",
    )
    parser.add_argument("--patients", type=int, default=None, help="cohort per protocol")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a calibration target fails"
    )
    parser.add_argument(
        "--charts", type=Path, default=None, metavar="DIR", help="write SVG charts into DIR"
    )
    parser.set_defaults(handler=check_targets_command)


def check_targets_command(args: argparse.Namespace) -> int:
    """Handler of `amdsim check-targets`."""
    from engine.model.parameters import RunParameters, validate_parameters  # noqa: PLC0415

    path = args.targets or bundled_targets_path()
    targets_file = load_targets(path)
    patients = args.patients if args.patients is not None else targets_file.patients
    seed = args.seed if args.seed is not None else targets_file.seed
    validate_parameters(RunParameters(n_patients=patients, years=1.0, seed=seed))
    with _bar() as bar:
        task = bar.add_task("simulating", total=None)

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=safe_text(name))

        checks = check_targets(
            path, targets_file, args.protocols, patients=patients, seed=seed, progress=progress
        )
    if args.charts is not None:
        from engine.calibration.charts import write_charts  # noqa: PLC0415

        written = write_charts(path, checks, args.charts, patients=patients, seed=seed)
        err_console.print(f"charts: {len(written)} files in {safe_text(args.charts)}")
    if args.json:
        document = {
            "targets_file": str(path),
            "patients": patients,
            "seed": seed,
            "checks": [check.as_dict() for check in checks],
        }
        out_console.print_json(json.dumps(document, allow_nan=False))
    else:
        _print_tables(checks, patients, seed, path)
    failed = [c for c in checks if c.target.role == "calibration" and not c.passed]
    return EXIT_FAILED_TARGET if args.strict and failed else 0


def _print_tables(checks: list[TargetCheck], patients: int, seed: int, path: Path) -> None:
    out_console.print(
        f"Targets: {safe_text(path.name)} · {patients:,} patients per protocol · seed {seed}"
    )
    roles = (
        ("calibration", "Calibration targets (fitted)"),
        ("validation", "Validation targets (not fitted)"),
    )
    for role, title in roles:
        rows = [check for check in checks if check.target.role == role]
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        columns = ("target", "figure", "simulated", "SE", "source (95% CI)", "", "margin, SE")
        for column in columns:
            justify = "left" if column in ("target", "figure", "") else "right"
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        shown = None
        for check in rows:
            if check.target.protocol != shown:
                shown = check.target.protocol
                table.add_row(f"[bold]{safe_text(Path(shown).stem)}[/]", *[""] * 6)
            table.add_row(*_cells(check))
        _wide_console().print(table)
        passed = sum(check.passed for check in rows)
        out_console.print(f"{passed} of {len(rows)} {role} targets inside the source's 95% CI")


def _cells(check: TargetCheck) -> list[str]:
    target, estimate = check.target, check.estimate
    unit = " %" if target.figure in SHARE_FIGURES else ""
    low, high = target.ci
    margin = check.margin_se
    verdict = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
    return [
        "  " + safe_text(target.id),
        safe_text(_figure_label(check)),
        f"{estimate.value:.2f}{unit}",
        f"{estimate.se:.2f}",
        f"{target.value:g}{unit} ({low:g} to {high:g})",
        verdict,
        f"{margin:+.1f}" if math.isfinite(margin) else "-",
    ]


def _figure_label(check: TargetCheck) -> str:
    target = check.target
    label = FIGURE_LABELS[target.figure]
    if target.figure == "injections":
        when = f"days {target.from_day}-{(target.to_day or 1) - 1}"
    elif target.figure == "discontinued":
        when = f"before day {target.day}"
    else:
        when = f"day {target.day}"
    observed = ", observed" if target.view == "observed" else ""
    return f"{label}, {when}{observed}"


def _wide_console() -> Console:
    """The output console, at least `TABLE_WIDTH` wide (a pipe would otherwise get 80)."""
    return Console(highlight=False, emoji=False, width=max(out_console.width, TABLE_WIDTH))


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("protocols"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
