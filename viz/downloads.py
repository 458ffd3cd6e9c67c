"""Downloads of a run from the dashboard: patients and visits as CSV or Parquet, the outcome
table as CSV, the HTML report, streamed over plain HTTP.

Why an HTTP route and not Panel's `FileDownload`: that widget sends the whole file through the
session's websocket as one base64 message, built in memory; a 2-million-patient run has about
100 million visits. Here `GET download/<run id>/<file>` encodes one batch of rows at a time
(`engine.export`) in a worker thread and writes it to the socket before reading the next, so
memory stays at one batch and the server keeps serving other sessions. A client that goes away
ends the export at the next batch. When the dashboard asks for a password, a download needs
the same login cookie as the pages.

Does not cover: choosing columns or rows (everything in the table goes out), or comparisons.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from engine.errors import AmdsimError
from engine.export import outcome_table_csv, table_chunks
from engine.results import ResultsFactory
from engine.results.base import SimulationResults
from engine.run_dir import validate_run_id
from viz.context import ServerContext
from viz.download_links import DOWNLOADS
from viz.report import report_html

__all__ = ["DownloadHandler", "download_route"]

log = logging.getLogger(__name__)


def download_route(context: ServerContext, password_required: bool) -> tuple:
    """The Tornado route to add to the server (`pn.serve(extra_patterns=[...])`)."""
    settings = {"context": context, "password_required": password_required}
    return (r"/download/([^/]+)/([^/]+)", DownloadHandler, settings)


class DownloadHandler(RequestHandler):
    """``GET /download/<run id>/<file>``: one of `DOWNLOADS`, streamed."""

    def initialize(self, context: ServerContext, password_required: bool) -> None:
        self.context = context
        self.password_required = password_required

    def _refuse(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text + "\n")

    async def get(self, run_id: str, name: str) -> None:
        if self.password_required and not self.get_secure_cookie("user"):
            return self._refuse(403, "log in to the dashboard first")
        if name not in DOWNLOADS:
            return self._refuse(404, f"no download {name!r}: choose one of {', '.join(DOWNLOADS)}")
        try:
            validate_run_id(run_id)
            results, owned = self._results(run_id)
        except (AmdsimError, OSError) as exc:
            return self._refuse(404, f"cannot download from run {run_id}: {exc}")
        try:
            self.set_header("Content-Type", DOWNLOADS[name][1])
            self.set_header("Content-Disposition", f'attachment; filename="amdsim-{run_id}-{name}"')
            await self._stream(self._chunks(results, name))
        finally:
            if owned:
                results.close()

    def _results(self, run_id: str) -> tuple[SimulationResults, bool]:
        """The run's results, and whether this download opened them (and must close them)."""
        held = self.context.memory_results.get(run_id)
        if held is not None:
            return held, False
        return ResultsFactory.open(self.context.results_location(run_id)), True

    @staticmethod
    def _chunks(results: SimulationResults, name: str) -> Iterator[bytes]:
        stem, fmt = name.rsplit(".", 1)
        if name == "outcomes.csv":
            yield outcome_table_csv(results.statistics().outcome_table()).encode()
        elif name == "report.html":
            yield report_html(results).encode()
        else:
            yield from table_chunks(results, stem, fmt)  # type: ignore[arg-type]

    async def _stream(self, chunks: Iterator[bytes]) -> None:
        loop = IOLoop.current()
        try:
            while True:
                chunk = await loop.run_in_executor(None, next, chunks, None)
                if chunk is None:
                    break
                self.write(chunk)
                await self.flush()  # one batch on the wire before the next is read
        except StreamClosedError:
            log.info("download of %s ended by the client", self.request.path)
            return
        finally:
            chunks.close()  # type: ignore[attr-defined]
        self.finish()
