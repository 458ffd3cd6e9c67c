"""`amdsim compare`: the same patients under two or more protocols, paired differences, costs, QALYs.

Every arm simulates the same patient ids with the same seed (common random numbers), block by
block in worker processes; each block's summary is checkpointed, so an interrupted comparison
resumes with `amdsim compare --resume DIR`. Prints the paired-difference table (or `--json`)
and writes DIR/comparison.json and one summary per arm in DIR/<arm>/.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from rich.table import Table

from engine.cli.cluster_option import add_cluster_argument, cluster_client
from engine.cli.console import out_console
from engine.cli.directories import check_directory_option
from engine.cli.psa_display import amount, print_psa
from engine.cli.run_display import progress_bar
from engine.compare.psa_flow import run_psa
from engine.compare.runner import (
    CompareCancelled,
    CompareSpec,
    load_spec,
    run_blocks,
    write_status,
)
from engine.compare.setup import (
    DEFAULT_THRESHOLDS,
    CompareRequest,
    PsaRequest,
    new_comparison,
    protocols_calibration,
    write_outputs,
)
from engine.errors import ParameterError
from engine.model.parameters import Recruitment
from engine.run_dir import write_atomically

__all__ = ["register"]

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (done, total)

DEFAULT_PATIENTS = 10_000
DEFAULT_YEARS = 5.0
DEFAULT_SEED = 42
DEFAULT_CAPACITY = 20.0


def register(commands: Any) -> None:
    """Add `compare` to the subcommands."""
    parser = commands.add_parser(
        "compare",
        help="compare protocols on the same simulated patients (paired differences, costs, QALYs)",
        description="Simulate the same patients under every protocol given (common random "
        "numbers) and report per arm the outcome table, costs, QALYs and clinic workload, and "
        "per pair the mean paired difference with its 95%% CI, the ICER with Fieller's "
        "interval and the net monetary benefit. Checkpointed block by block: "
        "`amdsim compare --resume DIR` finishes an interrupted comparison.",
    )
    parser.add_argument(
        "protocols", nargs="*", metavar="PROTOCOL", help="two or more protocol files or names"
    )
    parser.add_argument(
        "--patients",
        type=int,
        default=DEFAULT_PATIENTS,
        help="patients per arm (default: %(default)s)",
    )
    parser.add_argument(
        "--years",
        type=float,
        default=DEFAULT_YEARS,
        help="time horizon in years (default: %(default)s)",
    )
    parser.add_argument(
        "--lifetime",
        action="store_true",
        help="follow every patient until death (a 40-year horizon; the share "
        "still alive at its end is reported)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)"
    )
    parser.add_argument(
        "--recruitment",
        choices=("cohort", "period", "rate"),
        default="cohort",
        help="cohort: all enrol on day 0 (default); period: over "
        "--recruitment-days; rate: at --patients-per-week",
    )
    parser.add_argument("--recruitment-days", type=int, default=0)
    parser.add_argument("--patients-per-week", type=float, default=0.0)
    parser.add_argument(
        "--costs",
        type=Path,
        default=None,
        help="cost file (ours or the origin app's format; default: the bundled NHS 2025 costs)",
    )
    parser.add_argument(
        "--utilities",
        type=Path,
        default=None,
        help="utility table by better-seeing-eye VA (default: the bundled one)",
    )
    parser.add_argument(
        "--drug",
        action="append",
        default=[],
        metavar="DRUG=KEY",
        help="cost the protocols' DRUG with the cost file's KEY (repeatable)",
    )
    parser.add_argument(
        "--discount-costs",
        type=float,
        default=0.035,
        help="annual discount rate of costs (default: %(default)s, NICE)",
    )
    parser.add_argument(
        "--discount-outcomes",
        type=float,
        default=0.035,
        help="annual discount rate of QALYs (default: %(default)s, NICE)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        action="append",
        default=None,
        help="willingness to pay per QALY (repeatable; default: 20000 and 30000)",
    )
    parser.add_argument(
        "--second-eye-rate",
        type=float,
        default=0.0,
        metavar="PER_YEAR",
        help="annual rate at which the fellow eye needs treatment too (adds its visits, "
        "injections and costs; default 0: off; 0.115 gives CATT's 20.6%% in 2 years, "
        "Maguire 2013)",
    )
    parser.add_argument(
        "--session-capacity",
        type=float,
        default=DEFAULT_CAPACITY,
        help="patients seen per clinic session (default: %(default)s; your clinic's figure)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes (default: one per CPU, at most the blocks; with --cluster the "
        "cluster's workers run the blocks instead)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="comparison directory (default: ./comparisons/<id>)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="DIR",
        help="finish the interrupted comparison in DIR",
    )
    parser.add_argument(
        "--psa",
        type=int,
        default=0,
        metavar="K",
        help="probabilistic sensitivity analysis with K parameter draws (docs/psa.md)",
    )
    parser.add_argument(
        "--uncertainty",
        type=Path,
        default=None,
        help="the PSA's uncertainty file (distributions of prices, utilities, parameters)",
    )
    parser.add_argument(
        "--calibration",
        default=None,
        metavar="FILE|none",
        help="calibration.json whose covariance the PSA draws the fitted parameters from "
        "(default: the protocols' own, when they share one; 'none': fitted values fixed)",
    )
    parser.add_argument(
        "--psa-seed",
        type=int,
        default=None,
        help="seed of the parameter draws (default: --seed)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print comparison.json instead of tables"
    )
    add_cluster_argument(parser)
    parser.set_defaults(handler=compare)


def compare(args: argparse.Namespace) -> int:
    """Handler of `amdsim compare`."""
    from engine.cluster.connect import cluster_spec  # noqa: PLC0415 - parses only, no Dask

    cluster = cluster_spec(args.cluster)  # bad text is refused before anything is written
    if args.resume is not None:
        if args.protocols:
            raise ParameterError("--resume takes the comparison directory only, no protocols")
        directory = args.resume
        spec = load_spec(directory)
        request = CompareRequest.from_file(directory)
    else:
        if len(args.protocols) < 2:
            raise ParameterError("compare needs two or more protocols")
        request = _request(args)
        directory = args.out or Path("comparisons") / request.run_id
        check_directory_option(directory, "--out")
    # The cluster opens before the directory is written: a missing extra or an unreachable
    # scheduler leaves nothing behind. One cluster serves the base run and the PSA.
    with cluster_client(cluster) as client:
        if args.resume is None:
            spec = new_comparison(directory, request)
        document = _simulate(directory, spec, request, args.workers, client)
    write_status(directory, "completed")
    if args.json:
        out_console.print_json(msgspec.json.encode(document).decode())
    else:
        _print_tables(document, directory)
        if "psa" in document:
            print_psa(document["psa"], document["valuation"].get("currency_symbol", ""))
    return 0


def _simulate(
    directory: Path,
    spec: CompareSpec,
    request: CompareRequest,
    workers: int,
    client: Any | None,
) -> dict[str, Any]:
    """The base comparison, then its PSA if asked for; returns comparison.json's document.

    `workers` local processes (0: one per CPU) or, given `client`, its Dask cluster.
    """
    workers = workers or os.cpu_count() or 1
    cancel = threading.Event()
    totals = _stage(
        directory,
        "comparing",
        spec.params.n_patients,
        lambda progress: run_blocks(directory, spec, workers, progress, cancel, client),
    )
    document = write_outputs(directory, spec, request, totals)
    if request.psa is not None:  # comparison.json without the PSA is kept while it runs
        document["psa"] = _stage(
            directory,
            "PSA draws",
            request.psa.draws,
            lambda progress: run_psa(
                directory, spec, request, totals, workers, progress, cancel, client
            ),
        )
        write_atomically(
            directory / "comparison.json", msgspec.json.format(msgspec.json.encode(document))
        )
    return document


def _stage(directory: Path, label: str, total: int, work: Callable[[Progress], T]) -> T:
    """Run `work` under a progress bar; an interruption or failure is the directory's status."""
    with progress_bar() as bar:
        task = bar.add_task(label, total=total)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            return work(progress)
        except (KeyboardInterrupt, CompareCancelled):
            write_status(directory, "interrupted")
            raise KeyboardInterrupt from None
        except BaseException:
            write_status(directory, "failed")
            raise


def _request(args: argparse.Namespace) -> CompareRequest:
    drugs: dict[str, str] = {}
    for text in args.drug:
        name, sep, key = text.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise ParameterError(f"--drug {text!r}: write DRUG=KEY, e.g. aflibercept_2mg=eylea_2mg")
        drugs[name.strip()] = key.strip()
    thresholds = args.threshold or list(DEFAULT_THRESHOLDS)
    years = 40.0 if args.lifetime else args.years
    psa = None
    if args.psa:
        if args.calibration is None:
            calibration = protocols_calibration(list(args.protocols))
        elif args.calibration.lower() == "none":
            calibration = None
        else:
            calibration = Path(args.calibration)
        seed = args.seed if args.psa_seed is None else args.psa_seed
        psa = PsaRequest.build(args.psa, seed, args.uncertainty, calibration)
    elif args.uncertainty is not None or args.calibration is not None:
        raise ParameterError("--uncertainty and --calibration belong to --psa K")
    return CompareRequest.build(
        protocols=list(args.protocols),
        patients=args.patients,
        years=years,
        seed=args.seed,
        recruitment=Recruitment(
            mode=args.recruitment,
            period_days=args.recruitment_days,
            patients_per_week=args.patients_per_week,
        ),
        costs=args.costs,
        utilities=args.utilities,
        drugs=drugs,
        cost_rate=args.discount_costs,
        outcome_rate=args.discount_outcomes,
        thresholds=thresholds,
        session_capacity=args.session_capacity,
        psa=psa,
        second_eye_rate=args.second_eye_rate,
    )


def _print_tables(document: dict[str, Any], directory: Path) -> None:
    currency = document["valuation"].get("currency_symbol", "")
    arms = Table(title="Per patient (mean, 95% CI)", title_justify="left")
    arms.add_column("")
    for arm in document["arms"]:
        arms.add_column(arm["name"], justify="right")
    rows = [
        ("Injections", "injections", 1, ""),
        ("Visits", "visits", 1, ""),
        ("Cost, discounted", "cost", 0, currency),
        ("Cost, undiscounted", "cost_undiscounted", 0, currency),
        ("QALYs, discounted", "qalys", 3, ""),
        ("Life-years", "life_years", 2, ""),
    ]
    for label, key, digits, unit in rows:
        arms.add_row(
            label, *(_ci(arm["per_patient"][key], digits, unit) for arm in document["arms"])
        )
    arms.add_row(
        "Peak clinic sessions / week",
        *(f"{arm['workload']['peak_sessions']:,.1f}" for arm in document["arms"]),
    )
    out_console.print(arms)
    for pair in document["pairs"]:
        title = f"{pair['second']} minus {pair['first']} (same patients; mean, 95% CI)"
        table = Table(title=title, title_justify="left")
        table.add_column("")
        table.add_column("Difference", justify="right")
        d = pair["differences"]
        for label, key, digits, unit in [
            ("VA change at 12 months, letters", "va_change_m12", 2, ""),
            ("VA change at 24 months, letters", "va_change_m24", 2, ""),
            ("VA change at 60 months, letters", "va_change_m60", 2, ""),
            ("Injections", "injections", 2, ""),
            ("Visits", "visits", 2, ""),
            ("Cost, discounted", "cost", 0, currency),
            ("QALYs, discounted", "qalys", 4, ""),
        ]:
            table.add_row(label, _ci(d[key], digits, unit))
        table.add_row("ICER per QALY", _icer(pair, currency))
        for nmb in pair["net_monetary_benefit"]:
            table.add_row(
                f"Net monetary benefit at {currency}{nmb['threshold']:,.0f}/QALY",
                _ci(nmb, 0, currency),
            )
        if not pair["same_patients"]:
            table.caption = (
                "The arms enrol different populations: differences mix regimen and population."
            )
        out_console.print(table)
    out_console.print(f"Written to {directory}/comparison.json")


def _ci(value: dict[str, Any], digits: int, unit: str) -> str:
    mean = value.get("mean")
    if mean is None:
        return "not available"
    low, high = value.get("low"), value.get("high")
    text = amount(mean, digits, unit)
    if low is not None and high is not None:
        text += f" ({amount(low, digits, unit)} to {amount(high, digits, unit)})"
    return text


_NO_RATIO = {
    "dominant": "costs less and gains more QALYs",
    "dominated": "costs more and gains fewer QALYs",
}


def _icer(pair: dict[str, Any], currency: str) -> str:
    interval = pair["icer_interval"]
    if pair["icer"] is None:
        return pair["dominance"]
    if pair["dominance"] in _NO_RATIO:  # a negative ratio reads as a price: say it in words
        text = f"{pair['second']} is {pair['dominance']} ({_NO_RATIO[pair['dominance']]})"
    elif pair["dominance"] == "less costly, less effective":
        text = f"{currency}{pair['icer']:,.0f} saved per QALY lost (less costly, less effective)"
    else:
        text = f"{currency}{pair['icer']:,.0f} per QALY gained ({pair['dominance']})"
    if interval["kind"] == "bounded" and interval["low"] is not None:
        low, high = amount(interval["low"], 0, currency), amount(interval["high"], 0, currency)
        text += f"; Fieller 95% CI {low} to {high}"
    else:
        text += f"; Fieller 95% CI {interval['kind']}"
    return text
