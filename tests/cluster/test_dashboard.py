"""The dashboard follows a cluster run like a local one: progress from the client's metrics
stream, the Dask workers' memory, a link to Dask's own dashboard, and the Results page."""

from __future__ import annotations

import threading
import time

from engine.cluster import run_on_cluster
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.state_manager import StateManager
from viz.context import ServerContext
from viz.results_page import ResultsPage
from viz.run_page import RunPage
from viz.safe_text import plain


def test_the_run_page_follows_a_cluster_run_and_links_to_dasks_dashboard(
    tmp_path, two_workers
) -> None:
    root = tmp_path / "runs"
    run_dir = root / "20261204-120000-c1a5"
    context = ServerContext(runs_root=root)
    page = RunPage(context, StateManager())
    followed = threading.Event()
    samples = []

    def on_started(run) -> None:
        page.follow_existing(run_dir)
        followed.set()

    # Enough tasks (8) that the live statistics the client writes between tasks are seen.
    params = RunParameters(n_patients=300_000, years=5.0, seed=3)
    thread = threading.Thread(
        target=run_on_cluster,
        args=(two_workers, load_protocol(DEFAULT_PROTOCOL), params, run_dir, None, on_started),
        daemon=True,
    )
    thread.start()
    assert followed.wait(60)
    deadline = time.monotonic() + 120
    live_charts = set()
    while not page._reported_end and time.monotonic() < deadline:
        page.refresh()
        live_charts.add(page.chart_source.object)
        if page.watch is not None and page.watch.latest is not None:
            samples.append(page.watch.latest)
        time.sleep(0.1)
    thread.join(30)
    assert page._reported_end, "the page never saw the run end"
    assert "completed" in page.status.object
    assert page.progress.value == 100
    assert any(text.startswith("live statistics:") for text in live_charts), live_charts
    assert not (run_dir / "live-stats.msgpack").exists()
    link = two_workers.dashboard_link
    assert page.cluster.visible and f'href="{link}"' in page.cluster.object
    assert "(2 workers)" in page.cluster.object
    running = [s for s in samples if s.status == "running"]
    assert running, "no live sample was seen"
    assert any(0 < s.patients_done < params.n_patients for s in running), "no progress shown"
    roles = {p.role for s in running for p in s.processes}
    assert roles == {"supervisor", "dask-worker"}
    assert sum(p.role == "dask-worker" for p in running[-1].processes) == 2
    from viz.run_internals import run_internals_markdown

    internals = run_internals_markdown(running[-1], 2**34, context.monitor.thresholds)
    assert "each task writes its own part files" in internals
    assert internals.count(f"| {plain('dask-worker')} | - |") == 2  # remote: no local pid
    results = ResultsPage(context, StateManager())
    assert results.open(run_dir.name)
    assert results.lookup(299_999)
