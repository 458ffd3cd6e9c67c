"""``--cluster``: run (or resume, or restart) a run, or a comparison, on a Dask cluster.

Shared by `amdsim run`, `amdsim resume` and `amdsim compare`. Without the option (and
without ``$AMDSIM_CLUSTER``) runs stay local and Dask is never imported.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from engine.cli.console import err_console, safe_text
from engine.manifest import Manifest

if TYPE_CHECKING:
    from engine.cluster.connect import ClusterSpec

__all__ = ["add_cluster_argument", "cluster_client", "on_cluster_or_here", "wants_cluster"]

Launch = Callable[[Callable[[Any], None]], Manifest]


def add_cluster_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--cluster`` option."""
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help="run on a Dask cluster: a scheduler address (tcp://HOST:8786) or local:N to start "
        "N local worker processes (default: $AMDSIM_CLUSTER, else this machine's own workers); "
        "the run directory must be on storage every worker sees (docs/cluster.md)",
    )


def on_cluster_or_here(
    text: str | None, here: Launch, on_cluster: Callable[[Any, Callable[[Any], None]], Manifest]
) -> Launch:
    """`here`, or a launch that opens the cluster `text` names and calls `on_cluster(client,
    on_started)` in it."""
    from engine.cluster.connect import cluster_spec  # noqa: PLC0415 - no Dask import here

    spec = cluster_spec(text)
    if spec is None:
        return here

    def launch(on_started: Callable[[Any], None]) -> Manifest:
        with cluster_client(spec) as client:
            return on_cluster(client, on_started)

    return launch


@contextlib.contextmanager
def cluster_client(spec: ClusterSpec | None) -> Iterator[Any | None]:
    """A `distributed.Client` for `spec` (saying where on stderr), or None to stay here.

    The client, and a ``local:N`` cluster with it, closes when the block ends; a missing
    `cluster` extra or an unreachable scheduler is a one-line `ClusterError`.
    """
    if spec is None:
        yield None
        return
    from engine.cluster.connect import open_client  # noqa: PLC0415 - loads Dask

    with open_client(spec) as client:
        link = getattr(client, "dashboard_link", "")
        err_console.print(
            f"on {safe_text(spec.describe())}"
            + (f"; Dask's dashboard: {safe_text(link)}" if link else "")
        )
        yield client


def wants_cluster(text: str | None) -> bool:
    """Whether `text` (or ``$AMDSIM_CLUSTER``) asks for a cluster; bad text raises."""
    from engine.cluster.connect import cluster_spec  # noqa: PLC0415

    return cluster_spec(text) is not None
