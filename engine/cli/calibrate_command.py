"""`amdsim calibrate TARGETS --free P1,P2 --out DIR`: fit parameters to published figures.

Fits the named parameters of the one parameter set every target's protocol shares, minimising
the squared errors weighted by each source's 95 % CI (docs/validation.md), with a bounded
derivative-free optimiser and common random numbers. Prints each improvement of the best
error under a progress bar, then the fitted values with approximate standard errors, every
target before and after, the sensitivity (elasticity) of each target to each parameter and
the condition number; writes the fitted parameter files (comments kept, with a header) and
calibration.json into DIR.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.calibration.calibrate import (
    Calibration,
    calibrate,
    prepare,
    targets_digest,
    write_calibration,
)
from engine.calibration.fit import EvaluationReport
from engine.calibration.free_parameters import describe
from engine.calibration.targets import SHARE_FIGURES, load_targets
from engine.cli.console import err_console, out_console, safe_text
from engine.errors import ParameterError

__all__ = ["register"]

TABLE_WIDTH = 130


def register(commands: Any) -> None:
    """Add the `calibrate` subcommand to the CLI."""
    parser = commands.add_parser(
        "calibrate",
        help="fit parameters to published trial figures",
        description="Fit the named parameters jointly over every protocol the targets file "
        "names, minimising squared errors weighted by the sources' 95%% CIs; write the fitted "
        "parameter files and calibration.json into --out.",
    )
    parser.add_argument("targets", type=Path, metavar="TARGETS", help="targets file (YAML)")
    parser.add_argument(
        "--free",
        required=True,
        metavar="PARAM[,PARAM...]",
        help="dotted paths into the parameter files, e.g. "
        "vision.vision_ceilings.baseline_ceiling_factor,"
        "treatment_effect.treatment_response.responder_probability",
    )
    parser.add_argument("--patients", type=int, default=None, help="cohort per protocol")
    parser.add_argument("--seed", type=int, default=None, help="random seed (the same for all)")
    parser.add_argument(
        "--max-evaluations", type=int, default=200, help="search budget (default 200)"
    )
    parser.add_argument(
        "--method", choices=("nelder-mead", "powell"), default="nelder-mead", help="optimiser"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the parameter files already in DIR"
    )
    parser.set_defaults(handler=calibrate_command)


def calibrate_command(args: argparse.Namespace) -> int:
    """Handler of `amdsim calibrate`."""
    from engine.model.parameters import RunParameters, validate_parameters  # noqa: PLC0415

    _check_out(args.out, args.overwrite)
    if not 1 <= args.max_evaluations <= 100_000:
        raise ParameterError(
            f"--max-evaluations must be between 1 and 100000, got {args.max_evaluations}"
        )
    targets_file = load_targets(args.targets)
    problem = prepare(args.targets, targets_file, args.free, patients=args.patients, seed=args.seed)
    validate_parameters(RunParameters(n_patients=problem.patients, years=1.0, seed=problem.seed))
    err_console.print(
        f"Fitting {len(problem.free)} parameters to {len(problem.targets)} calibration targets "
        f"({len({t.protocol for t in problem.targets})} protocols, {problem.patients:,} patients "
        f"each, seed "
        f"{problem.seed})"
    )
    with _bar() as bar:
        task = bar.add_task("starting", total=args.max_evaluations)
        best = [math.inf]

        def report(item: EvaluationReport) -> None:
            bar.update(
                task,
                completed=item.evaluation,
                total=item.budget,
                description=f"{item.phase}: best error {item.best:.3g}",
            )
            if item.error < best[0] and item.phase == "search":
                best[0] = item.error
                bar.console.print(f"evaluation {item.evaluation}: error {item.error:.4g} (best)")

        calibration = calibrate(
            problem,
            max_evaluations=args.max_evaluations,
            method=args.method,
            on_evaluation=report,
        )
    written = write_calibration(calibration, args.out, targets_digest(args.targets))
    _print_report(calibration)
    out_console.print(f"wrote {len(written)} files into {safe_text(args.out)}")
    return 0


def _check_out(out: Path, overwrite: bool) -> None:
    if out.is_symlink():
        raise ParameterError(f"--out {out} is a symbolic link; give the folder itself")
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ParameterError(
            f"--out {out} is not empty; add --overwrite to replace the parameter files in it"
        )


def _print_report(calibration: Calibration) -> None:
    problem, result = calibration.problem, calibration.result
    console = Console(highlight=False, emoji=False, width=max(out_console.width, TABLE_WIDTH))
    rate = result.evaluations / result.seconds if result.seconds > 0 else math.nan
    console.print(
        f"{result.method}: {result.evaluations} evaluations, {result.iterations} iterations, "
        f"{result.seconds:.1f} s ({rate:.2f} evaluations/s); weighted squared error "
        f"{calibration.start_error:.3g} -> {result.error:.3g}; "
        f"{'converged' if result.converged else 'NOT converged: ' + safe_text(result.message)}"
    )
    fitted = Table(title="Fitted parameters", title_justify="left")
    for column in ("parameter", "start", "fitted", "approx. SE", "bounds"):
        fitted.add_column(column, justify="left" if column == "parameter" else "right")
    for p, start, x, se in zip(
        problem.free, problem.start, result.x, result.standard_errors, strict=True
    ):
        fitted.add_row(
            safe_text(p.path),
            f"{start:.4g}",
            f"{x:.4g}",
            _number(se),
            f"{p.lower:g} to {p.upper:g}",
        )
    console.print(fitted)
    targets = Table(title="Targets at the start and fitted", title_justify="left")
    for column in ("target", "role", "source (95% CI)", "start", "fitted", "SE", ""):
        targets.add_column(column, justify="left" if column in ("target", "role", "") else "right")
    rows = [
        (t, "calibration", s, e)
        for t, s, e in zip(
            problem.targets, calibration.start_estimates, calibration.fitted_estimates, strict=True
        )
    ] + [
        (t, "validation", s, e)
        for t, s, e in zip(
            problem.validation,
            calibration.start_validation,
            calibration.fitted_validation,
            strict=True,
        )
    ]
    for target, role, start, end in rows:
        unit = " %" if target.figure in SHARE_FIGURES else ""
        inside = target.ci[0] <= end.value <= target.ci[1]
        targets.add_row(
            safe_text(target.id),
            role,
            f"{target.value:g}{unit} ({target.ci[0]:g} to {target.ci[1]:g})",
            f"{start.value:.2f}",
            f"{end.value:.2f}",
            f"{end.se:.2f}",
            "[green]inside[/]" if inside else "[bold red]outside[/]",
        )
    console.print(targets)
    sensitivity = Table(
        title="Sensitivity: elasticity of each target to each parameter (% change per %)",
        title_justify="left",
    )
    sensitivity.add_column("target")
    for p in problem.free:
        sensitivity.add_column(safe_text(describe(p)), justify="right")
    for target, row in zip(problem.targets, result.elasticities, strict=True):
        sensitivity.add_row(safe_text(target.id), *(_number(v) for v in row))
    console.print(sensitivity)
    console.print(
        f"Condition number of the weighted Jacobian: {_number(result.condition_number)} "
        "(large: some parameters are not identified by these targets)"
    )


def _number(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("evaluations"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
