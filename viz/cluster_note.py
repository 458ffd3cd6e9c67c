"""One line for a run on a Dask cluster: where it runs, and a link to Dask's own dashboard.

Dask's dashboard (task stream, worker memory, profiles) is the place to look inside the
cluster; amdsim's Run page shows the run itself like a local one and links there.
"""

from __future__ import annotations

import html

from engine.manifest import Manifest

__all__ = ["cluster_note"]


def cluster_note(manifest: Manifest) -> str:
    """HTML for `manifest`'s cluster ("" for a local run); every value escaped."""
    if not manifest.cluster:
        return ""
    text = (
        f"On the Dask cluster at <code>{html.escape(manifest.cluster)}</code> "
        f"({manifest.workers} workers)"
    )
    link = manifest.cluster_dashboard
    if link.startswith(("http://", "https://")):  # never a javascript: or other scheme
        text += (
            f' · <a href="{html.escape(link, quote=True)}" target="_blank" rel="noopener" '
            'class="dask-dashboard">Dask\'s dashboard</a> (task stream, worker memory, profile)'
        )
    return text
