"""Dask preload of a ``--cluster local:N`` cluster's workers: Ctrl-C belongs to the client.

A terminal's Ctrl-C reaches every process of its foreground group, so the workers that
`engine.cluster.connect.open_client` starts on this machine would each die with a
KeyboardInterrupt traceback on the user's screen, while the client is already cancelling
their tasks and closes the cluster itself. They ignore SIGINT instead, as the local
pipeline's workers do (engine.pipeline.processes.prepare_child). Workers of a cluster the
user runs are left alone: their Ctrl-C is the user's business.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["MODULE", "dask_setup"]

MODULE = __name__  # what `open_client` passes to LocalCluster(preload=...)


def dask_setup(worker: Any) -> None:
    """Called by Dask in each worker process as it starts: ignore Ctrl-C."""
    if threading.current_thread() is threading.main_thread():  # where signals are set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
