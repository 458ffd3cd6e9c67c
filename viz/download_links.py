"""The files a run can be downloaded as (served by `viz.downloads`) and the Results page's
links to them; apart so that the page needs nothing of the server's route."""

from __future__ import annotations

__all__ = ["DOWNLOADS", "download_links_html"]

# file name -> (what, content type); the order is the order of the links on the Results page
DOWNLOADS: dict[str, tuple[str, str]] = {
    "patients.csv": ("patients", "text/csv; charset=utf-8"),
    "visits.csv": ("visits", "text/csv; charset=utf-8"),
    "patients.parquet": ("patients", "application/vnd.apache.parquet"),
    "visits.parquet": ("visits", "application/vnd.apache.parquet"),
    "outcomes.csv": ("outcome table", "text/csv; charset=utf-8"),
    "report.html": ("report", "text/html; charset=utf-8"),
}


def download_links_html(run_id: str) -> str:
    """The Results page's links to every download of `run_id` (relative: work behind a
    proxy's prefix too)."""
    links = " · ".join(
        f"<a class='download-link' href='download/{run_id}/{name}' download>{name}</a>"
        for name in DOWNLOADS
    )
    return f"<p><b>Download</b>: {links}</p>"
