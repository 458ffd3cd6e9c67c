"""Runs on a Dask distributed cluster (DESIGN section 9; docs/cluster.md).

Optional: needs the `cluster` extra (``pip install -e '.[cluster]'``), and only loads Dask
when a cluster is asked for. `run_on_cluster`, `resume_on_cluster` and `restart_on_cluster`
take a `distributed.Client`; `open_client` makes one from ``--cluster`` text.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.cluster.connect import ClusterSpec, cluster_spec, open_client
    from engine.cluster.launch import restart_on_cluster, resume_on_cluster, run_on_cluster

__all__ = [
    "ClusterSpec",
    "cluster_spec",
    "open_client",
    "restart_on_cluster",
    "resume_on_cluster",
    "run_on_cluster",
]

_EXPORTS = {
    "ClusterSpec": "engine.cluster.connect",
    "cluster_spec": "engine.cluster.connect",
    "open_client": "engine.cluster.connect",
    "restart_on_cluster": "engine.cluster.launch",
    "resume_on_cluster": "engine.cluster.launch",
    "run_on_cluster": "engine.cluster.launch",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
