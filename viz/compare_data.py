"""Read a comparison directory (`amdsim compare --out DIR`) for the Compare page and report.

A comparison is listed once its directory holds `spec.json`, `status.json` or
`comparison.json`; it can be shown only once `comparison.json` exists. A comparison still
running, interrupted or failed is read as its status (and how far its blocks got), never as
an error, so the page says what state it is in instead of failing.

Does not cover: drawing (`viz.compare_charts`), tables (`viz.compare_tables`), running or
resuming a comparison (`amdsim compare`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["Comparison", "is_comparison", "list_comparisons", "read_comparison"]

COMPARISON_FILE = "comparison.json"
_MARKERS = ("comparison.json", "spec.json", "status.json")


def is_comparison(directory: Path) -> bool:
    """True if `directory` looks like a comparison directory (finished or not)."""
    return directory.is_dir() and any((directory / name).is_file() for name in _MARKERS)


def list_comparisons(root: Path | None) -> list[str]:
    """Names of the comparison directories directly under `root`, most recently updated first.

    An absent root lists nothing: no comparison has been run yet.
    """
    if root is None or not Path(root).is_dir():
        return []
    found = []
    for child in Path(root).iterdir():
        if child.name.startswith(".") or child.is_symlink() or not is_comparison(child):
            continue
        found.append((_updated(child), child.name))
    return [name for _, name in sorted(found, reverse=True)]


def _updated(directory: Path) -> float:
    times = []
    for name in _MARKERS:
        try:
            times.append((directory / name).stat().st_mtime)
        except OSError:
            continue
    return max(times, default=0.0)


@dataclass
class Comparison:
    """What one comparison directory holds now.

    `document` is comparison.json (None until the comparison has finished its arms);
    `draws` the PSA draws as columns (empty without a PSA); `problem` says why something could
    not be read.
    """

    path: Path
    status: str
    updated: str = ""
    document: dict[str, Any] | None = None
    draws: dict[str, list[float]] = field(default_factory=dict)
    blocks_done: int = 0
    blocks_total: int | None = None
    problem: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        return self.status == "completed" and self.document is not None

    @property
    def currency(self) -> str:
        if self.document is None:
            return ""
        return str(self.document.get("valuation", {}).get("currency_symbol", ""))

    def status_text(self) -> str:
        """One sentence for a reader: the status and, unless completed, what to do about it."""
        when = f" (updated {self.updated})" if self.updated else ""
        if self.status == "completed":
            return f"completed{when}"
        progress = ""
        if self.blocks_total:
            progress = f"; {self.blocks_done} of {self.blocks_total} blocks of patients done"
        hints = {
            "running": "it is still running: this page shows it once it has finished",
            "interrupted": f"finish it with `amdsim compare --resume {self.path}`",
            "cancelled": f"finish it with `amdsim compare --resume {self.path}`",
            "failed": f"see its log; `amdsim compare --resume {self.path}` retries it",
        }
        hint = hints.get(self.status, "it has no readable status.json")
        return f"{self.status}{when}{progress}: {hint}"


def read_comparison(directory: Path) -> Comparison:
    """The comparison at `directory` as it is now; never raises for a half-written one."""
    directory = Path(directory)
    status = _read_json(directory / "status.json")
    comparison = Comparison(
        path=directory,
        status=str(status.get("status", "unknown")) if status else "unknown",
        updated=str(status.get("updated", "")) if status else "",
    )
    comparison.blocks_done = len(list((directory / "blocks").glob("block-*.msgpack")))
    comparison.blocks_total = _blocks_total(directory)
    path = directory / COMPARISON_FILE
    if path.is_file():
        document = _read_json(path)
        if document is None or "arms" not in document:
            comparison.problem = f"{path} is damaged or from another version"
        else:
            comparison.document = document
            if comparison.status == "unknown":
                comparison.status = "completed"
    if comparison.document is not None and "psa" in comparison.document:
        comparison.draws = _read_draws(directory / "psa" / "draws.parquet")
    return comparison


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return value if isinstance(value, dict) else None


def _blocks_total(directory: Path) -> int | None:
    """Blocks of the whole comparison, from its spec (None if it cannot tell)."""
    spec = _read_json(directory / "spec.json")
    try:
        params = spec["params"]  # type: ignore[index]
        shards = math.ceil(int(params["n_patients"]) / int(params["shard_size"]))
        per_block = int(spec.get("shards_per_block", 4))  # type: ignore[union-attr]
    except (TypeError, KeyError, ValueError):
        return None
    return max(1, math.ceil(shards / per_block))


def _read_draws(path: Path) -> dict[str, list[float]]:
    """The cost, QALY and incremental columns of psa/draws.parquet (empty if unreadable)."""
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - only comparisons with a PSA need it

        table = pq.read_table(path)
    except Exception:
        return {}
    wanted = ("cost[", "qalys[", "incremental_cost[", "incremental_qalys[")
    return {
        name: table.column(name).to_pylist()
        for name in table.column_names
        if name.startswith(wanted)
    }
