"""`amdsim verify RUN`: check every file a run lists and report what is damaged.

One line per damaged file on stdout (``damaged: visits/part-00001.parquet: row group 3 ...``),
then one summary line; exit 1 if anything is damaged, 0 if every file is intact. The deep
check reads every row group once (engine.integrity), one at a time.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.console import out_console, print_error
from engine.cli.run_lookup import add_runs_dir_argument, resolve_run, runs_root
from engine.errors import ResultsFormatError
from engine.integrity import load_index, verify_run
from engine.resume import read_run_manifest
from engine.run_dir import RunPaths

__all__ = ["register"]

EXIT_DAMAGED = 1


def register(commands: Any) -> None:
    """Add the `verify` subcommand to the CLI."""
    parser = commands.add_parser(
        "verify",
        help="check a run's files for damage",
        description="Check every part file a run lists: size, footer, run id, shard parts, "
        "row counts per shard and the checksum of every page. Prints one line per damaged "
        "file; exits 1 if anything is damaged, 0 if all is well.",
    )
    parser.add_argument("run", metavar="RUN", help="run id, unique id prefix or run directory")
    add_runs_dir_argument(parser)
    parser.set_defaults(handler=verify)


def verify(args: argparse.Namespace) -> int:
    """Handler of `amdsim verify`."""
    paths = RunPaths(resolve_run(args.run, runs_root(args)))
    manifest = read_run_manifest(paths)
    rebuilt = manifest.status == "completed" and not paths.checkpoint.is_file()
    try:
        checkpoint = load_index(paths, manifest)
    except ResultsFormatError as exc:
        _line(f"damaged: {exc}")
        print_error(f"run {manifest.run_id}: its index cannot be read")
        return EXIT_DAMAGED
    damage = verify_run(paths, manifest, checkpoint)
    for item in damage:
        _line(f"damaged: {item}")
    files = 2 * len(checkpoint.parts)
    if damage:
        print_error(
            f"run {manifest.run_id}: {len(damage)} of {files} part files damaged; restore "
            f"them or run it again ('amdsim run --restart {manifest.run_id}')"
        )
        return EXIT_DAMAGED
    note = " (checkpoint.json is missing: indexed from the part files)" if rebuilt else ""
    _line(f"run {manifest.run_id} ({manifest.status}): {files} part files intact{note}")
    return 0


def _line(text: str) -> None:
    """One plain line on stdout: file names and messages are printed as they are, no markup."""
    out_console.print(text, soft_wrap=True, markup=False, emoji=False, highlight=False)
