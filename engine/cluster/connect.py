"""Which Dask cluster a run uses, and a client for it.

`--cluster tcp://HOST:8786` (or any address Dask's `Client` takes, or ``$AMDSIM_CLUSTER``)
connects to a running scheduler; ``--cluster local:N`` starts a `distributed.LocalCluster`
with N single-threaded worker processes on this machine, closed again when the run ends.
Dask is imported only here, and only when a cluster is asked for: the local pipeline never
loads it, and without the `cluster` extra the error says how to install it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.cluster import worker_setup
from engine.errors import ClusterError, ParameterError

__all__ = ["CLUSTER_ENV", "ClusterSpec", "cluster_spec", "open_client"]

CLUSTER_ENV = "AMDSIM_CLUSTER"
CONNECT_TIMEOUT_S = 15
_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\s/:]+(:\d+)?/?$", re.IGNORECASE)


@dataclass(frozen=True)
class ClusterSpec:
    """A scheduler's address, or a number of local worker processes to start."""

    address: str | None = None
    local_workers: int | None = None

    def describe(self) -> str:
        """For messages: the address, or ``local cluster of N workers``."""
        if self.local_workers is not None:
            return f"a local Dask cluster of {self.local_workers} worker processes"
        return f"the Dask scheduler at {self.address}"


def cluster_spec(text: str | None) -> ClusterSpec | None:
    """The cluster `text` names (else ``$AMDSIM_CLUSTER``); None: run locally.

    Raises `ParameterError` for text that is neither ``local:N`` nor an address.
    """
    text = (text if text is not None else os.environ.get(CLUSTER_ENV, "")).strip()
    if not text:
        return None
    local = _LOCAL.match(text)
    if local is not None:
        workers = int(local.group(1))
        if not 1 <= workers <= 512:
            raise ParameterError(f"--cluster {text}: local clusters have 1 to 512 workers")
        return ClusterSpec(local_workers=workers)
    if not _ADDRESS.match(text):
        raise ParameterError(
            f"--cluster {text!r}: give a scheduler address (tcp://HOST:8786) or local:N"
        )
    return ClusterSpec(address=text if "://" in text else f"tcp://{text}")


def _distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415 - optional, and never loaded by local runs
    except ImportError:
        raise ClusterError(
            "--cluster needs Dask's distributed scheduler: pip install -e '.[cluster]' "
            "(or pip install 'dask[distributed]')"
        ) from None
    return distributed


def _configured_preloads() -> list[str]:
    """Worker preloads the user's Dask configuration already asks for (kept, ours appended)."""
    import dask.config  # noqa: PLC0415 - loaded with distributed, never by local runs

    configured = dask.config.get("distributed.worker.preload", default=[]) or []
    return [configured] if isinstance(configured, str) else list(configured)


@contextlib.contextmanager
def open_client(spec: ClusterSpec) -> Iterator[Any]:
    """A `distributed.Client` for `spec`, closed (with its local cluster) on exit."""
    distributed = _distributed()
    for name in ("distributed", "distributed.nanny", "distributed.worker", "distributed.scheduler"):
        logging.getLogger(name).setLevel(logging.ERROR)  # our progress bar says what happens
    if spec.local_workers is not None:
        cluster = distributed.LocalCluster(
            n_workers=spec.local_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several runs may share the machine
            silence_logs=logging.ERROR,
            # Workers ignore the terminal's Ctrl-C: the client cancels and closes them.
            preload=[*_configured_preloads(), worker_setup.MODULE],
        )
        try:
            client = distributed.Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(spec.address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"could not reach {spec.describe()} within {CONNECT_TIMEOUT_S} s ({exc}); is "
            "`dask scheduler` running there, and the port open?"
        ) from None
    try:
        yield client
    finally:
        client.close()
