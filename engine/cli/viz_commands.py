"""`amdsim dashboard` (serve the Panel dashboard) and `amdsim report RUN|DIR --out FILE`
(a run's Results page, or a comparison directory's Compare page, as one offline HTML file)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.cli.console import out_console, safe_text
from engine.cli.directories import check_directory_option, check_file_option
from engine.cli.run_lookup import add_runs_dir_argument, resolve_run, runs_root
from viz.access import PASSWORD_VARIABLE, plan_access
from viz.compare_data import is_comparison

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the `dashboard` and `report` subcommands to the CLI."""
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the dashboard (live runs, registry, results explorer)",
        description="Serve the dashboard on 127.0.0.1 (all JavaScript served locally: works "
        "offline). Runs started from it carry on if the browser or the dashboard closes. "
        "Any other address needs --allow-origin and a login (user amdsim; the password is "
        f"read from {PASSWORD_VARIABLE} or generated and printed once).",
    )
    dashboard.add_argument("--port", type=int, default=5006, help="port (default: 5006)")
    dashboard.add_argument(
        "--address",
        default="127.0.0.1",
        help="IP address to bind (default: 127.0.0.1; 0.0.0.0 exposes it to the network and "
        "then needs --allow-origin and a password)",
    )
    dashboard.add_argument(
        "--allow-origin",
        action="append",
        metavar="HOST[:PORT]",
        help="a host browsers use to reach a non-loopback --address (repeatable; the port "
        "defaults to --port; never '*')",
    )
    dashboard.add_argument(
        "--protocols-dir",
        type=Path,
        help="a folder of protocol files to offer besides the bundled ones",
    )
    dashboard.add_argument(
        "--comparisons-dir",
        type=Path,
        default=None,
        help="the folder of `amdsim compare` directories the Compare page lists (default: "
        "comparisons beside the runs root, i.e. ./comparisons with the default ./runs)",
    )
    dashboard.add_argument("--show", action="store_true", help="open a browser")
    add_runs_dir_argument(dashboard)
    dashboard.set_defaults(handler=serve)

    report = commands.add_parser(
        "report",
        help="write a run's results page (or a comparison's) as one self-contained HTML file",
        description="Write the Results page of RUN (charts from its stored statistics), or "
        "the Compare page of a comparison directory (`amdsim compare --out DIR`), as one "
        "HTML file with everything inlined, so it opens offline and can be sent as is.",
    )
    report.add_argument(
        "run",
        metavar="RUN|DIR",
        help="run id, unique id prefix or directory, or a comparison directory",
    )
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    add_runs_dir_argument(report)
    report.set_defaults(handler=write)


def serve(args: argparse.Namespace) -> int:
    """Handler of `amdsim dashboard`."""
    access = plan_access(args.address, args.port, args.allow_origin)  # before Panel loads
    from viz.server import serve_dashboard  # noqa: PLC0415 - Panel loads only when needed

    comparisons = args.comparisons_dir
    if comparisons is not None:
        comparisons = check_directory_option(comparisons, "--comparisons-dir")
    serve_dashboard(
        runs_root(args),
        protocols_dir=args.protocols_dir,
        show=args.show,
        access=access,
        comparisons_root=comparisons,
    )
    return 0


def write(args: argparse.Namespace) -> int:
    """Handler of `amdsim report`."""
    from viz.report import write_report  # noqa: PLC0415 - Bokeh loads only when needed

    check_file_option(args.out, "--out")
    if is_comparison(Path(args.run)):
        from viz.compare_report import write_compare_report  # noqa: PLC0415 - as above

        path = write_compare_report(Path(args.run), args.out)
    else:
        path = write_report(resolve_run(args.run, runs_root(args)), args.out)
    out_console.print(f"wrote {safe_text(path)} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
