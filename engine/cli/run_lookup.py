"""Finding the run a command names: a run id, a unique prefix of one, or a directory path.

Whatever names it, the run found is a real directory (`engine.run_dir.check_run_directory`):
a symbolic link named like a run, or a run whose table folder is a link, is refused before
anything is read. Commands that change a run (``resume``, ``run --restart``, ``delete``) take
only runs directly under the runs root; reading commands also open a results directory
elsewhere that the user names by its path (saved in-memory results, ``--out``).

A small run listed in the registry has no run directory: it names the folder it was saved to
(``--out``), or nothing ("not saved"), and `small_run_entry` lets a command say so.

One lookup reads the registry at most once (`_Listing`); `find_run` tells a small run from a
run directory in that one read, and a handler that opened the registry already passes it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from engine.cli.directories import check_directory_option
from engine.errors import RunNotFoundError, RunPathError, RunStateError
from engine.registry import REGISTRY_FILE, Registry, RegistryEntry
from engine.run_dir import RUN_ID_PATTERN, check_run_directory
from engine.small_runs import saved_location

__all__ = [
    "RESULT_FILES",
    "add_runs_dir_argument",
    "default_runs_dir",
    "find_run",
    "find_runs",
    "open_registry",
    "refuse_small_run",
    "resolve_changeable_run",
    "resolve_run",
    "run_ids_under",
    "small_run_entry",
]

RESULT_FILES = ("manifest.json", "results.json")  # a run directory, saved in-memory results


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
    """The runs root the command should use; `ParameterError` if it names a file."""
    option = "--runs-dir" if args.runs_dir else "$AMDSIM_RUNS_DIR"
    return check_directory_option(args.runs_dir or default_runs_dir(), option)


def open_registry(args: argparse.Namespace) -> Registry:
    """The registry under the command's runs root."""
    return Registry(runs_root(args))


class _Listing:
    """The registry's entries under `root`, listed on first use and then kept: one lookup
    reads the registry once. Empty when the root holds no registry file."""

    def __init__(self, root: Path, registry: Registry | None) -> None:
        self._root = root
        self._registry = registry
        self._entries: list[RegistryEntry] | None = None

    def has_registry(self) -> bool:
        return (self._root / REGISTRY_FILE).is_file()

    def entries(self) -> list[RegistryEntry]:
        if self._entries is None:
            self._entries = []
            if self.has_registry():
                self._entries = (self._registry or Registry(self._root)).list()
        return self._entries


def find_run(
    spec: str, root: Path, *, to_change: bool = False, registry: Registry | None = None
) -> Path | RegistryEntry:
    """The small in-memory run `spec` names (its entry, see `small_run_entry`), else the
    directory `resolve_run` finds; the registry is read at most once (`registry`, if given,
    is the one read)."""
    (found,) = find_runs([spec], root, to_change=to_change, registry=registry)
    return found


def find_runs(
    specs: Iterable[str], root: Path, *, to_change: bool = False, registry: Registry | None = None
) -> list[Path | RegistryEntry]:
    """`find_run` for each of `specs`, in order, reading the registry at most once for all."""
    listing = _Listing(root, registry)
    found: list[Path | RegistryEntry] = []
    for spec in specs:
        entry = _small_run_entry(spec, listing)
        found.append(entry if entry is not None else _resolve_run(spec, root, to_change, listing))
    return found


def resolve_run(
    spec: str, root: Path, *, to_change: bool = False, registry: Registry | None = None
) -> Path:
    """The directory `spec` names: a path holding results, else a run id or unique id prefix.

    With `to_change` the run must lie directly under `root` (a command is about to write or
    delete in it). Raises `RunPathError` (bad input: an empty name, a link, a directory
    outside the root) or `RunNotFoundError` naming what was tried, or listing the candidates
    if the prefix is ambiguous. `registry`, if given, is the one read (once).
    """
    return _resolve_run(spec, root, to_change, _Listing(root, registry))


def resolve_changeable_run(spec: str, root: Path, verb: str) -> Path:
    """`resolve_run(spec, root, to_change=True)`, after `refuse_small_run(spec, root, verb)`,
    reading the registry once."""
    found = find_run(spec, root, to_change=True)
    if isinstance(found, RegistryEntry):
        raise _small_run_refusal(found, verb)
    return found


def _resolve_run(spec: str, root: Path, to_change: bool, listing: _Listing) -> Path:
    if not spec.strip():
        raise RunPathError(
            "the run name is empty; give a run id, a unique prefix of one, or a results "
            "directory (see 'amdsim list')"
        )
    path = Path(spec)
    if path.is_dir() and any((path / name).is_file() for name in RESULT_FILES):
        return _checked(path, root, to_change)
    if RUN_ID_PATTERN.match(spec) and os.path.lexists(root / spec):
        return _checked(root / spec, root, to_change)
    known = set()
    if root.is_dir():
        known = set(run_ids_under(root))
        known |= {entry.run_id for entry in listing.entries()}
    matches = sorted(run_id for run_id in known if run_id.startswith(spec))
    if len(matches) == 1 and os.path.lexists(root / matches[0]):
        return _checked(root / matches[0], root, to_change)
    if len(matches) > 1:
        raise RunNotFoundError(f"{spec!r} matches {len(matches)} runs: {', '.join(matches[:5])}")
    if len(matches) == 1 and (entry := _small_run_entry(matches[0], listing)) is not None:
        return saved_location(entry)
    if len(matches) == 1:
        raise RunNotFoundError(
            f"run {matches[0]} is in the registry but its directory is gone "
            "('amdsim cleanup' marks it missing)"
        )
    raise RunNotFoundError(
        f"no run {spec!r}: not a results directory, nor a run id under {root} (see 'amdsim list')"
    )


def run_ids_under(root: Path) -> list[str]:
    """Names under `root` that are run ids (directories or not: links and files too)."""
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if RUN_ID_PATTERN.match(child.name))


def _checked(path: Path, root: Path, to_change: bool) -> Path:
    check_run_directory(path)
    if to_change and path.resolve().parent != root.resolve():
        raise RunPathError(
            f"{path} is not a run under the runs root {root}; amdsim changes only runs under "
            f"its runs root (name the run by its id, with --runs-dir {path.resolve().parent})"
        )
    return path


def small_run_entry(
    spec: str, root: Path, registry: Registry | None = None
) -> RegistryEntry | None:
    """The registry entry of the small in-memory run `spec` names (id or unique prefix), or
    None when it names anything else (a directory, a streaming run, nothing, several)."""
    return _small_run_entry(spec, _Listing(root, registry))


def _small_run_entry(spec: str, listing: _Listing) -> RegistryEntry | None:
    if not spec.strip() or Path(spec).is_dir() or not listing.has_registry():
        return None
    matches = [e for e in listing.entries() if e.run_id.startswith(spec)]
    if len(matches) == 1 and matches[0].storage == "memory":
        return matches[0]
    return None


def refuse_small_run(spec: str, root: Path, verb: str, registry: Registry | None = None) -> None:
    """`RunStateError` if `spec` names a small in-memory run: it finished in one go, so there
    is nothing to `verb` (resume, restart); running it again is the way."""
    entry = small_run_entry(spec, root, registry)
    if entry is not None:
        raise _small_run_refusal(entry, verb)


def _small_run_refusal(entry: RegistryEntry, verb: str) -> RunStateError:
    return RunStateError(
        f"run {entry.run_id} ran in memory and is complete; there is nothing to {verb} "
        "(run it again with 'amdsim run')"
    )
