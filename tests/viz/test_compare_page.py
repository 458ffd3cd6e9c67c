"""The Compare page and `amdsim report DIR` from real small comparisons (with and without a
PSA), an interrupted one, and the page in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from engine.cli import main
from tests.cli.in_process import run_cli
from tests.viz.dashboard_server import running_dashboard
from viz.app import DashboardSession
from viz.compare_page import ComparePage
from viz.context import ServerContext

FIRST, SECOND = "aflibercept_2q8_view", "aflibercept_2q8_then_capped_prn_view"
UNCERTAINTY = Path(__file__).parents[2] / "engine/psa/examples/economic_uncertainty.yaml"
SCREENSHOT = Path("/tmp/compare_page.png")
OFFLINE = re.compile(r"""<(script|link|img)[^>]*(src|href)=["']https?://""")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A comparisons root: `with_psa`, `plain`, `interrupted` (no comparison.json) and
    `running` (only its spec and status)."""
    folder = tmp_path_factory.mktemp("comparisons")
    common = [FIRST, SECOND, "--patients", "2000", "--years", "2", "--json"]
    assert main(["compare", *common, "--out", str(folder / "plain")]) == 0
    psa = ["--psa", "5", "--uncertainty", str(UNCERTAINTY), "--calibration", "none"]
    assert main(["compare", *common, "--out", str(folder / "with_psa"), *psa]) == 0
    interrupted = folder / "interrupted"
    shutil.copytree(folder / "plain", interrupted)
    (interrupted / "comparison.json").unlink()
    for block in sorted((interrupted / "blocks").glob("*.msgpack"))[1:]:
        block.unlink()
    (interrupted / "status.json").write_text(json.dumps({"status": "interrupted"}))
    running = folder / "running"
    running.mkdir()
    shutil.copy(folder / "plain" / "spec.json", running / "spec.json")
    (running / "status.json").write_text(json.dumps({"status": "running"}))
    return folder


@pytest.fixture
def page(root, tmp_path) -> ComparePage:
    compare = ComparePage(ServerContext(runs_root=tmp_path / "runs", comparisons_root=root))
    compare.refresh()
    return compare


def document(root: Path, name: str) -> dict:
    return json.loads((root / name / "comparison.json").read_text())


def renderer(figure, name: str):
    (found,) = [r for r in figure.renderers if r.name == name]
    return found.data_source.data


def test_the_page_lists_every_comparison_under_its_root(page):
    """Finished and unfinished comparisons are listed; the newest is opened."""
    assert set(page.select.options) == {"plain", "with_psa", "interrupted", "running"}
    assert page.shown is not None and page.shown.name == page.select.value


def test_each_chart_holds_each_arms_data(page, root):
    """VA change, injections per year and weekly visits come from each arm's own results."""
    assert page.open("with_psa")
    data = document(root, "with_psa")
    for arm in data["arms"]:
        name = arm["name"]
        va = renderer(page.va_change.object, f"va:{name}")
        rows = arm["outcome_table"]["rows"]  # months beyond the horizon have no mean
        locf = [r for r in rows if r["kind"] == "locf" and r["mean_change"] is not None]
        assert [r["month"] for r in locf] == [3, 6, 12, 24]
        assert va["month"] == [r["month"] for r in locf]
        assert va["mean"] == pytest.approx([r["mean_change"] for r in locf])
        assert va["low"] == pytest.approx([r["ci_low"] for r in locf])
        bars = renderer(page.injections.object, f"injections:{name}")
        years = arm["outcome_table"]["years"][:2]  # "later years": days at the horizon's edge
        assert bars["period"] == ["year 1", "year 2"]
        assert bars["injections"] == pytest.approx([y["injections_per_year"] for y in years])
        weekly = renderer(page.workload.object, f"workload:{name}")
        visits = arm["workload"]["weekly_visits"]
        assert sum(weekly["visits"]) == pytest.approx(sum(sum(v) for v in visits.values()))
        legend = [item.label.value for item in page.va_change.object.legend[0].items]
        assert name in legend
    assert page.charts.visible


def test_the_psa_charts_hold_every_draw_and_curve(page, root):
    """The CE plane has one point per draw; the CEAC one curve per arm, probabilities 0..1."""
    page.open("with_psa")
    data = document(root, "with_psa")
    plane = renderer(page.ce_plane.object, f"ce_plane:{SECOND} minus {FIRST}")
    assert len(plane["cost"]) == len(plane["qalys"]) == 5
    for index, name in enumerate(data["psa"]["acceptability"]["arms"]):
        curve = renderer(page.ceac.object, f"ceac:{name}")
        expected = [row[index] for row in data["psa"]["acceptability"]["probability_best"]]
        assert curve["probability"] == pytest.approx(expected)
    assert page.psa_charts.visible
    assert "Probabilistic sensitivity analysis: 5 draws" in page.psa.object


def test_the_paired_difference_table_says_every_difference(page, root):
    """VA at 12/24/60 months, injections, visits, cost, QALYs, the ICER and NMB per threshold."""
    page.open("plain")
    text = page.pairs.object
    for label in (
        "VA change at 12 months",
        "VA change at 60 months",
        "Injections per patient",
        "Clinic visits per patient",
        "Cost per patient, discounted",
        "QALYs per patient, discounted",
        "ICER (cost per QALY gained)",
        "Net monetary benefit at £20,000 per QALY",
        "Net monetary benefit at £30,000 per QALY",
    ):
        assert label in text
    assert f"{SECOND} minus {FIRST}" in text
    assert "not available" in text  # 60 months is beyond a 2-year horizon
    assert "e+" not in text and "e-0" not in text  # no scientific notation
    assert FIRST in page.arms.object and "£" in page.arms.object


def test_without_a_psa_there_are_no_psa_charts(page):
    assert page.open("plain")
    assert not page.psa_charts.visible and page.psa.object == ""


@pytest.mark.parametrize(
    ("name", "words"),
    [("interrupted", ["interrupted", "1 of", "--resume"]), ("running", ["running"])],
)
def test_an_unfinished_comparison_shows_its_status(page, name, words):
    """No comparison.json yet: the status and what to do, no charts, no error."""
    assert not page.open(name)
    for word in words:
        assert word in page.status.object
    assert not page.charts.visible and page.pairs.object == ""


def test_a_damaged_comparison_says_so(page, root, tmp_path):
    damaged = root / "damaged"
    damaged.mkdir(exist_ok=True)
    (damaged / "comparison.json").write_text("{not json")
    (damaged / "status.json").write_text(json.dumps({"status": "completed"}))
    assert not page.open("damaged")
    assert "damaged" in page.status.object
    shutil.rmtree(damaged)


def test_the_session_has_a_compare_tab_after_results(tmp_path):
    session = DashboardSession(ServerContext(runs_root=tmp_path / "runs"))
    assert list(session.tabs._names) == ["Run", "Runs", "Results", "Compare", "System"]
    assert session.context.comparisons_root == tmp_path / "comparisons"
    session.close()


def test_report_writes_an_offline_file_with_the_arms_and_icer(capsys, root, tmp_path):
    out = tmp_path / "x.html"
    result = run_cli(capsys, "report", str(root / "with_psa"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert not OFFLINE.search(text), "the report fetches from the network"
    for word in (FIRST, SECOND, "ICER", "Cost-effectiveness plane"):
        assert word in text


def test_report_of_an_unfinished_comparison_says_its_status(capsys, root, tmp_path):
    out = tmp_path / "x.html"
    result = run_cli(capsys, "report", str(root / "interrupted"), "--out", str(out))
    assert result.returncode != 0
    assert "interrupted" in result.stderr + result.stdout
    assert not out.exists()


def test_the_compare_tab_in_a_browser(browser, root, tmp_path):
    """Open the Compare tab, choose the PSA comparison, see the paired differences."""
    with running_dashboard(
        tmp_path / "runs",
        tmp_path / "dashboard.log",
        arguments=lambda _port: ["--comparisons-dir", str(root)],
    ) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.url)
            page.locator(".bk-tab", has_text="Compare").first.click()
            page.locator(".comparison-select select").first.select_option("with_psa")
            page.get_by_text("ICER (cost per QALY gained)").first.wait_for()
            page.get_by_text(f"{SECOND} minus {FIRST} (paired").first.wait_for()
            page.get_by_text("Probabilistic sensitivity analysis: 5 draws").first.wait_for()
            deadline = time.monotonic() + 30  # five charts, each at least one canvas
            while page.locator(".bk-Figure canvas").count() < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
            page.wait_for_timeout(1000)  # let the last canvases draw
            page.screenshot(path=SCREENSHOT, full_page=True)
            assert not errors, errors[:5]
        finally:
            context.close()
