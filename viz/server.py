"""Serve the dashboard: one `ServerContext`, a new `DashboardSession` per browser session.

Binds 127.0.0.1 unless told otherwise; who may connect (origins, password) is decided by
`viz.access`. All JavaScript and CSS is served by this server (Bokeh's and Panel's bundled
resources, and our own login page), so the dashboard works with no internet. While it
serves, a `BackgroundCleaner` deletes the runs marked for cleanup and logs each removal.
"""

from __future__ import annotations

import errno
import logging
import secrets
import sys
import threading
from pathlib import Path

import panel as pn

from engine.errors import ServeError
from viz.access import PASSWORD_VARIABLE, USER, Access, plan_access
from viz.app import DashboardSession
from viz.cleaner import DEFAULT_INTERVAL_S, BackgroundCleaner
from viz.context import ServerContext
from viz.downloads import download_route

__all__ = ["make_server", "serve_dashboard"]

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


def make_server(context: ServerContext, access: Access, show: bool = False):
    """A started (not yet looping) Panel server for `context`, reachable as `access` says.

    Raises `ServeError` if the address and port cannot be bound (in use, not this machine's).
    """
    pn.config.resources = "server"  # scripts from this server, never from a CDN

    def build() -> pn.viewable.Viewable:
        # Hidden pages reach the browser after the first draw (`viz.deferred_tabs`), so the
        # scripts of their widgets must be asked for now: Panel loads only what it sees.
        pn.extension("tabulator")
        session = DashboardSession(context)
        session.start()
        return session.layout

    auth = {}
    if access.password is not None:
        auth = {
            "basic_auth": {USER: access.password},  # a dict: never read as a file path
            "cookie_secret": secrets.token_urlsafe(32),  # logins last as long as the server
            "login_template": str(TEMPLATES / "login.html"),
            "logout_template": str(TEMPLATES / "logout.html"),
        }
    try:
        return pn.serve(
            {"/": build},
            port=access.port,
            address=access.address,
            websocket_origin=list(access.origins),
            show=show,
            start=False,
            title="amdsim dashboard",
            threaded=False,
            extra_patterns=[download_route(context, access.password is not None)],
            **auth,
        )
    except OSError as exc:
        raise ServeError(_listen_problem(access, exc)) from exc


def _listen_problem(access: Access, exc: OSError) -> str:
    where = f"cannot listen on {access.address}:{access.port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use (another dashboard?); choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {access.address} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"{where}: ports below 1024 need privileges; choose another with --port"
    return f"{where}: {exc.strerror or exc}"


def _announce(access: Access, url: str) -> None:
    """The start-up lines: where to go, and for an exposed server the warning and password."""
    print(url, flush=True)
    if not access.exposed:
        return
    origins = ", ".join(access.origins)
    print(
        f"warning: the dashboard listens on {access.address}:{access.port} for the network; "
        f"pages from {origins} may connect after logging in as user '{USER}' "
        "(plain HTTP: use it on a trusted network or behind an HTTPS proxy)",
        file=sys.stderr,
        flush=True,
    )
    if access.password_generated:
        print(
            f"password for user '{USER}' (shown once; set {PASSWORD_VARIABLE} to choose one): "
            f"{access.password}",
            flush=True,
        )
    else:
        print(f"password for user '{USER}': from {PASSWORD_VARIABLE}", flush=True)


def serve_dashboard(
    runs_root: Path,
    protocols_dir: Path | None = None,
    show: bool = False,
    ready: threading.Event | None = None,
    access: Access | None = None,
    cleanup_interval_s: float = DEFAULT_INTERVAL_S,
    comparisons_root: Path | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C). Runs started from it carry on after it stops.

    `access` (from `viz.access.plan_access`: address, port, origins, password) defaults to
    127.0.0.1:5006 for this machine only. `comparisons_root` (the Compare page's
    comparisons) defaults to "comparisons" beside the runs root.
    """
    access = access or plan_access("127.0.0.1", 5006)
    context = ServerContext(
        runs_root=runs_root, protocols_dir=protocols_dir, comparisons_root=comparisons_root
    )
    server = make_server(context, access, show)
    server.start()
    _log_cleanups_to_stderr()
    cleaner = BackgroundCleaner(context.runs_root, cleanup_interval_s)
    cleaner.start()
    _announce(
        access,
        f"amdsim dashboard on http://{access.address}:{server.port}/ (runs in {runs_root})",
    )
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
