"""`amdsim list`, `delete` and `cleanup`: the runs under a runs root, through its registry."""

from __future__ import annotations

import argparse
import datetime
import re
from pathlib import Path
from typing import Any

import msgspec
from rich import box
from rich.table import Table

from engine.cli.console import out_console, safe_text
from engine.cli.run_command import add_keep_argument
from engine.cli.run_lookup import (
    add_runs_dir_argument,
    find_runs,
    open_registry,
    run_ids_under,
    runs_root,
)
from engine.errors import RunStateError
from engine.manifest import read_manifest
from engine.registry import Registry, RegistryEntry
from engine.run_control import cancel_and_wait
from engine.run_dir import RunPaths
from engine.run_survey import UnreadableRun
from ipc.segments import remove_stale_segments, stale_segments

__all__ = ["format_bytes", "parse_size", "register"]

STATUSES = ("running", "completed", "failed", "cancelled", "interrupted", "missing", "unreadable")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def register(commands: Any) -> None:
    """Add `list`, `delete` and `cleanup` to the CLI."""
    listing = commands.add_parser(
        "list",
        help="list runs",
        description="List the runs under the runs root, newest first. A run whose status is "
        "'running' but whose supervisor is gone shows as 'interrupted' (resume it). A "
        "directory named like a run that amdsim cannot read (a newer format, a damaged or "
        "copied manifest, a symbolic link) shows as 'unreadable' with the reason; amdsim "
        "never deletes it.",
    )
    listing.add_argument(
        "text", nargs="?", default="", help="only runs whose id, name or protocol contains this"
    )
    listing.add_argument("--status", choices=STATUSES, help="only runs with this status")
    listing.add_argument("--since", type=_date, help="only runs created on or after YYYY-MM-DD")
    listing.add_argument("--until", type=_date, help="only runs created before YYYY-MM-DD")
    listing.add_argument("--min-size", type=parse_size, help="only runs at least this big (10M)")
    listing.add_argument("--max-size", type=parse_size, help="only runs at most this big (2G)")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    add_runs_dir_argument(listing)
    listing.set_defaults(handler=list_runs)

    delete = commands.add_parser(
        "delete",
        help="delete runs",
        description="Delete runs: their directories and registry entries.",
    )
    delete.add_argument("runs", nargs="+", metavar="RUN", help="run id or unique id prefix")
    delete.add_argument(
        "--later", action="store_true", help="only mark them; the next 'amdsim cleanup' deletes"
    )
    delete.add_argument(
        "--force",
        action="store_true",
        help="delete even a running run: cancel it, wait for it to stop, then delete",
    )
    add_runs_dir_argument(delete)
    delete.set_defaults(handler=delete_runs)

    cleanup = commands.add_parser(
        "cleanup",
        help="remove marked runs, orphans and leftovers of crashes",
        description="Remove runs marked with 'delete --later' and shared memory left by "
        "killed runs of this runs root; mark entries whose directory is gone as missing. "
        "Directories it cannot read are listed and left alone; symbolic links are never "
        "followed.",
    )
    cleanup.add_argument(
        "--dry-run", action="store_true", help="say what would be removed; remove nothing"
    )
    cleanup.add_argument(
        "--orphans",
        action="store_true",
        help="also remove directories named like runs that no entry owns and that hold no "
        "manifest and no part file at all",
    )
    add_keep_argument(cleanup, "keep at most N runs under the runs root (now and from now on)")
    add_runs_dir_argument(cleanup)
    cleanup.set_defaults(handler=cleanup_runs)


def list_runs(args: argparse.Namespace) -> int:
    """Handler of `amdsim list`."""
    entries: list[RegistryEntry] = []
    unreadable: list[UnreadableRun] = []
    registry: Registry | None = None
    if runs_root(args).is_dir():
        registry = open_registry(args)
        entries = registry.search(
            args.text,
            status=args.status,
            since=args.since,
            until=args.until + datetime.timedelta(days=1) if args.until else None,
            min_bytes=args.min_size,
            max_bytes=args.max_size,
        )
        unreadable = _unreadable_matching(registry, args)
    if args.json:
        out_console.print_json(msgspec.json.encode([*entries, *unreadable]).decode())
        return 0
    if not entries and not unreadable:
        out_console.print(f"no runs under {safe_text(runs_root(args))} match", soft_wrap=True)
        return 0
    named = any(entry.name for entry in entries)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ["Run", "Name", "Protocol", "Status", "Cohort", "Created", "Size"]
    for column in columns if named else [c for c in columns if c != "Name"]:
        table.add_column(column, no_wrap=column not in ("Protocol", "Name"))
    for entry in entries:
        row = [
            safe_text(entry.run_id),
            safe_text(entry.name),
            safe_text(entry.protocol),
            _status_text(entry),
            f"{entry.n_patients:,} x {entry.years:g}y",
            entry.created.astimezone().strftime("%m-%d %H:%M"),
            format_bytes(entry.bytes_on_disk) if entry.saved else "not saved",
        ]
        if not named:
            del row[1]
        table.add_row(*row)
    for found in unreadable:  # the reason goes where the protocol would be
        row = [
            safe_text(found.run_id),
            "",
            safe_text(found.reason),
            "[red]unreadable[/]",
            "-",
            "-",
            "-",
        ]
        if not named:
            del row[1]
        table.add_row(*row)
    out_console.print(table)
    marked = sum(entry.marked_for_cleanup for entry in entries)
    cap = registry.max_runs if registry is not None else None
    if cap is not None or marked:
        kept = f"keeping at most {cap} runs; " if cap is not None else ""
        out_console.print(
            f"{kept}{marked} marked for cleanup ('amdsim cleanup' removes them)", soft_wrap=True
        )
    return 0


def delete_runs(args: argparse.Namespace) -> int:
    """Handler of `amdsim delete`: every RUN is looked up before any is deleted."""
    registry = open_registry(args)
    root = runs_root(args)
    # Every RUN is resolved (and refused if bad) before anything is deleted.
    targets: list[tuple[RegistryEntry | None, Path | None]] = []
    for found in find_runs(args.runs, root, to_change=True, registry=registry):
        if isinstance(found, RegistryEntry):
            targets.append((found, None))
        else:
            targets.append((None, found))
    for entry, run_dir in targets:
        if entry is not None:
            _delete_small_run(registry, entry, args.later)
            continue
        assert run_dir is not None
        run_id = run_dir.name
        if args.later:
            registry.mark_for_cleanup(run_id)
            out_console.print(f"marked {safe_text(run_id)} for cleanup")
            continue
        if registry.get(run_id).status == "running":
            _stop_before_deleting(run_dir, force=args.force)
        registry.delete(run_id)  # a file-system failure is a FileSystemError already
        out_console.print(f"deleted {safe_text(run_id)}")
    return 0


def _delete_small_run(registry: Registry, entry: RegistryEntry, later: bool) -> None:
    """A small run has no run directory: only its entry goes (its --out folder is yours)."""
    if later:
        registry.mark_for_cleanup(entry.run_id)
        out_console.print(f"marked {safe_text(entry.run_id)} for cleanup")
        return
    registry.delete(entry.run_id)
    kept = f"; its saved results in {safe_text(entry.location)} are left as they are"
    kept = kept if entry.location else ""
    out_console.print(f"deleted {safe_text(entry.run_id)} from the registry{kept}", soft_wrap=True)


def cleanup_runs(args: argparse.Namespace) -> int:
    """Handler of `amdsim cleanup`."""
    root = runs_root(args)
    capped: list[str] = []
    if args.keep is not None:
        registry = open_registry(args)
        if args.dry_run:
            capped = registry.preview_cap(args.keep) if args.keep else []
        else:
            capped = registry.set_max_runs(args.keep or None)
    report: dict[str, list[str]] = {}
    own_runs: set[str] = set()
    if root.is_dir():
        registry = open_registry(args)
        # Shared memory is removed only for runs of this root, known before cleanup drops any.
        own_runs = {entry.run_id for entry in registry.list()} | set(run_ids_under(root))
        report = registry.cleanup(dry_run=args.dry_run, orphans=args.orphans)
    segments = stale_segments(own_runs) if args.dry_run else remove_stale_segments(own_runs)
    verb = "would remove" if args.dry_run else "removed"
    lines = [
        ("over the cap, marked for cleanup", capped),
        (f"{verb} marked run", report.get("removed", [])),
        (f"{verb} orphan directory", report.get("orphans", [])),
        ("kept empty directory (remove with --orphans)", report.get("kept_orphans", [])),
        ("left unreadable directory", report.get("unreadable", [])),
        (
            "missing (directory gone)" if args.dry_run else "marked missing",
            report.get("missing", []),
        ),
        (f"{verb} stale shared memory", segments),
    ]
    printed = False
    for label, names in lines:
        for name in names:
            out_console.print(f"{label}: {safe_text(name)}", soft_wrap=True)
            printed = True
    if not printed:
        out_console.print("nothing to clean up")
    if args.keep is not None and not args.dry_run:
        cap = f"at most {args.keep} runs" if args.keep else "no cap"
        out_console.print(f"runs under {safe_text(str(root))}: {cap} from now on", soft_wrap=True)
    return 0


def parse_size(text: str) -> int:
    """``'10M'`` -> 10485760 bytes; plain numbers are bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (like 500K, 10M, 2G)")
    power = " KMGT".index(match[2].upper() or " ")
    return int(float(match[1]) * 1024**power)


def format_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _unreadable_matching(registry: Registry, args: argparse.Namespace) -> list[UnreadableRun]:
    """The unreadable directories `list` shows: none once a date, size or other status is asked."""
    if args.status not in (None, "unreadable") or any(
        value is not None for value in (args.since, args.until, args.min_size, args.max_size)
    ):
        return []
    needle = args.text.lower()
    return [
        found
        for found in registry.unreadable()
        if needle in f"{found.run_id} {found.reason}".lower()
    ]


def _stop_before_deleting(run_dir: Path, force: bool) -> None:
    """Cancel a running run and wait for it to end (`force`), or refuse to delete it."""
    if not force:
        raise RunStateError(
            f"run {run_dir.name} is running; cancel it first (Ctrl-C where it runs, or Cancel "
            "in the dashboard), or use 'amdsim delete --force', which cancels it and then deletes"
        )
    manifest = read_manifest(RunPaths(run_dir).manifest)
    out_console.print(f"cancelling {run_dir.name} ...")
    cancel_and_wait(manifest)


def _date(text: str) -> datetime.datetime:
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc
    return datetime.datetime.combine(
        day, datetime.time(), tzinfo=datetime.datetime.now().astimezone().tzinfo
    )


def _status_text(entry: RegistryEntry) -> str:
    colour = {
        "completed": "green",
        "running": "cyan",
        "interrupted": "yellow",
        "cancelled": "yellow",
        "failed": "red",
        "missing": "red",
    }[entry.status]
    marked = " (marked)" if entry.marked_for_cleanup else ""
    return f"[{colour}]{entry.status}[/]{marked}"
