"""Finding the run a command names: a run id, a unique prefix of one, or a directory path."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engine.errors import RunNotFoundError
from engine.registry import Registry
from engine.run_dir import RUN_ID_PATTERN

__all__ = ["add_runs_dir_argument", "default_runs_dir", "open_registry", "resolve_run"]

_RESULT_FILES = ("manifest.json", "results.json")  # a run directory, saved in-memory results


def default_runs_dir() -> Path:
    """``$AMDSIM_RUNS_DIR``, or ``runs`` under the current directory."""
    return Path(os.environ.get("AMDSIM_RUNS_DIR", "runs"))


def add_runs_dir_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--runs-dir`` option every command that looks runs up shares."""
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="the runs root holding the registry (default: $AMDSIM_RUNS_DIR or ./runs)",
    )


def runs_root(args: argparse.Namespace) -> Path:
    """The runs root the command should use."""
    return args.runs_dir or default_runs_dir()


def open_registry(args: argparse.Namespace) -> Registry:
    """The registry under the command's runs root."""
    return Registry(runs_root(args))


def resolve_run(spec: str, root: Path) -> Path:
    """The directory `spec` names: a path holding results, else a run id or unique id prefix.

    Raises `RunNotFoundError` naming what was tried, or listing the candidates if the
    prefix is ambiguous.
    """
    path = Path(spec)
    if path.is_dir() and any((path / name).is_file() for name in _RESULT_FILES):
        return path
    if RUN_ID_PATTERN.match(spec) and (root / spec).is_dir():
        return root / spec
    known = set()
    if root.is_dir():
        known = {child.name for child in root.iterdir() if RUN_ID_PATTERN.match(child.name)}
        if (root / "registry.json").is_file():
            known |= {entry.run_id for entry in Registry(root).list()}
    matches = sorted(run_id for run_id in known if run_id.startswith(spec))
    if len(matches) == 1 and (root / matches[0]).is_dir():
        return root / matches[0]
    if len(matches) > 1:
        raise RunNotFoundError(f"{spec!r} matches {len(matches)} runs: {', '.join(matches[:5])}")
    if len(matches) == 1:
        raise RunNotFoundError(
            f"run {matches[0]} is in the registry but its directory is gone "
            "('amdsim cleanup' marks it missing)"
        )
    raise RunNotFoundError(
        f"no run {spec!r}: not a results directory, nor a run id under {root} (see 'amdsim list')"
    )
