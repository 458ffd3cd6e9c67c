"""Downloads from the Results page: patients and visits as CSV or Parquet, the outcome table as
CSV and the HTML report, streamed batch by batch, each identical to the run's own rows; a bad
request is one plain line; a dashboard with a password wants its login for a download too."""

from __future__ import annotations

import http.cookiejar
import io
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from engine import run_simulation
from engine.export import outcome_table_csv, table_chunks
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.results import ResultsFactory
from engine.results.base import SimulationResults
from tests.viz.dashboard_server import running_dashboard
from tests.viz.pages import finished_run
from viz.access import USER
from viz.download_links import DOWNLOADS, download_links_html


@pytest.fixture(scope="module")
def small_run() -> SimulationResults:
    return run_simulation(load_protocol(DEFAULT_PROTOCOL), 1_500, years=2, seed=3, in_memory=True)


def _read(data: bytes, fmt: str, schema: pa.Schema) -> pa.Table:
    """A downloaded file as a table; CSV read back with the run's column types."""
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    types = {f.name: f.type for f in schema if not pa.types.is_dictionary(f.type)}
    options = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pa_csv.read_csv(io.BytesIO(data), convert_options=options)


def _same_rows(got: pa.Table, expected: pa.Table) -> None:
    assert got.column_names == expected.column_names
    assert got.num_rows == expected.num_rows
    for name in expected.column_names:
        assert got[name].to_pylist() == expected[name].to_pylist(), name


@pytest.mark.parametrize("table", ["patients", "visits"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_in_pieces_is_one_file_with_every_row(small_run, table, fmt):
    expected = small_run._arrow_table(table)
    pieces = list(table_chunks(small_run, table, fmt, batch_rows=500))
    assert len(pieces) >= expected.num_rows // 500 >= 3  # a piece per batch, not one blob
    _same_rows(_read(b"".join(pieces), fmt, expected.schema), expected)


class _CountingResults:
    """`results`, counting the batches its iterators have handed out."""

    def __init__(self, results: SimulationResults) -> None:
        self.results = results
        self.batches = 0

    def _count(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.batches += 1
            yield batch

    def iterate_visits(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        return self._count(self.results.iterate_visits(batch_size))

    def get_patient_range(self, start: int, end: int) -> tuple[pa.Table, pa.Table]:
        return self.results.get_patient_range(start, end)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_reads_one_batch_per_piece_never_the_whole_table(small_run, fmt):
    counting = _CountingResults(small_run)
    chunks = table_chunks(counting, "visits", fmt, batch_rows=1_000)  # type: ignore[arg-type]
    next(chunks)
    assert counting.batches == 1
    next(chunks)
    assert counting.batches == 2
    chunks.close()


def test_bad_table_or_format_is_refused(small_run):
    with pytest.raises(ValueError, match="no table 'doctors'"):
        next(table_chunks(small_run, "doctors", "csv"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no format 'xlsx'"):
        next(table_chunks(small_run, "visits", "xlsx"))  # type: ignore[arg-type]


def test_the_outcome_table_csv_has_both_views_in_letters_and_percent(small_run):
    text = outcome_table_csv(small_run.statistics().outcome_table())
    rows = list(pa_csv.read_csv(io.BytesIO(text.encode())).to_pylist())
    table = small_run.statistics().outcome_table()
    assert len(rows) == len(table.rows)
    first = table.rows[0]
    assert rows[0]["month"] == first.month and rows[0]["patients"] == first.patients
    assert rows[0]["mean_change_letters"] == pytest.approx(first.mean_change, abs=0.005)
    assert rows[0]["gained_15_or_more_percent"] == pytest.approx(100 * first.gain_15, abs=0.005)
    assert {r["view"] for r in rows} == {"trial (LOCF, all patients)", "registry (observed)"}
    assert "not available" in outcome_table_csv(None)


# -- through the dashboard's HTTP route ------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("downloads")
    runs = folder / "runs"
    run_id = finished_run(runs, 20_000, 2, seed=7)
    with running_dashboard(runs, folder / "dashboard.log") as server:
        yield server, run_id


def _get(url: str, opener=None) -> tuple[int, dict[str, str], bytes]:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("name", [n for n in DOWNLOADS if n.endswith((".csv", ".parquet"))])
def test_each_table_downloads_identical_to_the_runs_rows(served, name):
    server, run_id = served
    status, headers, body = _get(f"{server.url}download/{run_id}/{name}")
    assert status == 200, body[:300]
    assert headers["Content-Disposition"] == f'attachment; filename="amdsim-{run_id}-{name}"'
    with ResultsFactory.open(server.runs_root / run_id) as results:
        if name == "outcomes.csv":
            expected = outcome_table_csv(results.statistics().outcome_table()).encode()
            assert body == expected
            return
        table, fmt = name.split(".")
        expected = results._arrow_table(table)
        _same_rows(_read(body, fmt, expected.schema), expected)


def test_the_report_downloads_as_a_page_that_works_offline(served):
    server, run_id = served
    status, headers, body = _get(f"{server.url}download/{run_id}/report.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "<title>amdsim report" in page and "Outcome table" in page
    assert not re.search(r"<(script|link)[^>]+(src|href)=.https?:", page)  # scripts inline


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("{run}/doctors.csv", 404, "no download 'doctors.csv': choose one of patients.csv"),
        ("20991231-000000-zzzz/visits.csv", 404, "cannot download from run 20991231"),
        ("..%2F..%2Fetc/visits.csv", 404, "cannot download from run ../../etc"),
    ],
)
def test_a_bad_download_is_one_plain_line(served, path, status, message):
    server, run_id = served
    code, headers, body = _get(f"{server.url}download/{path.format(run=run_id)}")
    text = body.decode()
    assert code == status and headers["Content-Type"].startswith("text/plain")
    assert text.startswith(message) and text.count("\n") == 1 and "Traceback" not in text


def test_the_results_page_links_to_every_download():
    html = download_links_html("20261204-000000-abcd")
    for name in DOWNLOADS:
        assert f"href='download/20261204-000000-abcd/{name}' download" in html


def test_a_dashboard_with_a_password_wants_its_login_for_a_download(tmp_path):
    runs = tmp_path / "runs"
    run_id = finished_run(runs, 2_000, 1, seed=1)
    password = "another long test password"
    with running_dashboard(
        runs,
        tmp_path / "dashboard.log",
        arguments=lambda port: ["--address", "0.0.0.0", "--allow-origin", f"127.0.0.1:{port}"],
        env={"AMDSIM_DASHBOARD_PASSWORD": password},
    ) as server:
        url = f"{server.url}download/{run_id}/outcomes.csv"
        status, _, body = _get(url)
        assert status == 403 and body.decode() == "log in to the dashboard first\n"
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = urllib.parse.urlencode({"username": USER, "password": password}).encode()
        opener.open(f"{server.url}login", data=form, timeout=60).read()
        status, _, body = _get(url, opener)
        assert status == 200 and body.startswith(b"month,view,patients")


def test_an_open_in_memory_run_is_downloadable_while_a_session_holds_it(tmp_path, small_run):
    from engine.state_manager import StateManager
    from viz.context import ServerContext
    from viz.results_page import ResultsPage

    context = ServerContext(runs_root=tmp_path / "runs")
    state = StateManager()
    state.put("20261204-000000-mmmm", small_run)
    page = ResultsPage(context, state)
    assert page.open("20261204-000000-mmmm")
    assert context.memory_results["20261204-000000-mmmm"] is small_run
    assert "download/20261204-000000-mmmm/visits.parquet" in page.downloads.object
