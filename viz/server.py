"""Serve the dashboard: one `ServerContext`, a new `DashboardSession` per browser session.

Binds 127.0.0.1 unless told otherwise. All JavaScript and CSS is served by this server
(Bokeh's and Panel's bundled resources), so the dashboard works with no internet. While it
serves, a `BackgroundCleaner` deletes the runs marked for cleanup and logs each removal.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import panel as pn

from viz.app import DashboardSession
from viz.cleaner import DEFAULT_INTERVAL_S, BackgroundCleaner
from viz.context import ServerContext

__all__ = ["make_server", "serve_dashboard"]

log = logging.getLogger(__name__)


def make_server(
    context: ServerContext, port: int = 5006, address: str = "127.0.0.1", show: bool = False
):
    """A started (not yet looping) Panel server for `context`."""
    pn.config.resources = "server"  # scripts from this server, never from a CDN

    def build() -> pn.viewable.Viewable:
        session = DashboardSession(context)
        session.start()
        return session.layout

    origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    return pn.serve(
        {"/": build},
        port=port,
        address=address,
        websocket_origin=origins if address not in ("0.0.0.0", "::") else "*",
        show=show,
        start=False,
        title="amdsim dashboard",
        threaded=False,
    )


def serve_dashboard(
    runs_root: Path,
    port: int = 5006,
    address: str = "127.0.0.1",
    protocols_dir: Path | None = None,
    show: bool = False,
    ready: threading.Event | None = None,
    cleanup_interval_s: float = DEFAULT_INTERVAL_S,
) -> None:
    """Serve until interrupted (Ctrl-C). Runs started from it carry on after it stops."""
    context = ServerContext(runs_root=runs_root, protocols_dir=protocols_dir)
    server = make_server(context, port, address, show)
    server.start()
    _log_cleanups_to_stderr()
    cleaner = BackgroundCleaner(context.runs_root, cleanup_interval_s)
    cleaner.start()
    print(f"amdsim dashboard on http://{address}:{server.port}/ (runs in {runs_root})", flush=True)
    if ready is not None:
        ready.set()
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        cleaner.stop()
        context.live.stop_all()
        server.stop()


def _log_cleanups_to_stderr() -> None:
    """Show what the background cleaner removes (nothing else configures logging)."""
    cleaner_log = logging.getLogger("viz.cleaner")
    if not cleaner_log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        cleaner_log.addHandler(handler)
        cleaner_log.setLevel(logging.INFO)
