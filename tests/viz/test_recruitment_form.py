"""The Run page offers recruitment as the CLI does (a cohort, over a period, at a weekly
rate): the form shows the one number each needs, refuses a bad one with the CLI's message and
starts nothing, and a run from the form enrols patients exactly as the same CLI run does."""

from __future__ import annotations

import pytest

from engine import run_simulation
from engine.manifest import read_manifest
from engine.model.parameters import Recruitment
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.state_manager import StateManager
from tests.viz.test_components import shown
from viz.context import ServerContext
from viz.recruitment_form import recruitment_arguments
from viz.run_page import RunPage


@pytest.fixture
def context(tmp_path):
    return ServerContext(runs_root=tmp_path / "runs")


def _form(context: ServerContext, patients: int, years: float) -> RunPage:
    page = RunPage(context, StateManager())
    page.protocol.value = DEFAULT_PROTOCOL
    page.patients.value, page.years.value, page.seed.value = patients, years, 6
    page.workers.value = 1
    return page


def test_the_form_shows_only_the_number_the_chosen_recruitment_needs(context):
    fields = RunPage(context, StateManager()).recruitment
    assert fields.value() == Recruitment() and not fields.days.visible
    fields.mode.value = "period"
    assert fields.days.visible and not fields.per_week.visible
    assert fields.value() == Recruitment(mode="period", period_days=365)
    fields.mode.value = "rate"
    assert fields.per_week.visible and not fields.days.visible
    assert fields.value() == Recruitment(mode="rate", patients_per_week=20.0)


@pytest.mark.parametrize(
    ("mode", "days", "per_week", "message"),
    [
        (
            "period",
            0,
            20.0,
            "recruitment period must be between 1 and 730 days (the horizon), got 0",
        ),
        ("period", None, 20.0, "recruitment period: enter a whole number of days"),
        ("rate", 365, -3.0, "patients per week must be above 0"),
        ("rate", 365, 1.0, "recruiting 500 patients at 1 per week takes about 500 weeks"),
    ],
)
def test_a_bad_recruitment_is_refused_with_a_message_and_starts_nothing(
    context, mode, days, per_week, message
):
    page = _form(context, 500, 2.0)
    page.recruitment.mode.value = mode
    page.recruitment.days.value, page.recruitment.per_week.value = days, per_week
    assert page.start() is None
    assert shown(page.message.object).startswith(message), page.message.object
    assert page.message.alert_type == "danger" and not context.launcher.launched
    assert not page.start_button.disabled


def test_a_small_run_over_a_period_enrols_as_the_same_cli_run_does(context):
    page = _form(context, 400, 2.0)
    page.recruitment.mode.value = "period"
    page.recruitment.days.value = 180
    key = page.start()
    page.join(timeout_s=60)
    results = page.state.get(key)
    assert results is not None, page.message.object
    enrolled = results.to_dataframe("patients")["enrollment_day"]
    assert enrolled.min() >= 0 and enrolled.max() < 180 and enrolled.nunique() > 50
    same = run_simulation(
        load_protocol(DEFAULT_PROTOCOL),
        400,
        years=2.0,
        seed=6,
        recruitment=Recruitment(mode="period", period_days=180),
        in_memory=True,
    )
    assert enrolled.tolist() == same.to_dataframe("patients")["enrollment_day"].tolist()


def test_a_streaming_run_from_the_form_gets_the_recruitment(context):
    page = _form(context, 3_000, 3.0)
    page.recruitment.mode.value = "rate"
    page.recruitment.per_week.value = 250.0
    run_id = page.start()
    assert run_id is not None, page.message.object
    launched = context.launcher.launched[run_id]
    try:
        assert launched.process.wait(timeout=180) == 0, launched.log.read_text()
    finally:
        page.watch.stop()
    manifest = read_manifest(launched.run_dir / "manifest.json")
    assert manifest.parameters.recruitment == Recruitment(mode="rate", patients_per_week=250.0)


def test_the_arguments_are_the_clis():
    assert recruitment_arguments(Recruitment()) == ["--recruitment", "cohort"]
    assert recruitment_arguments(Recruitment(mode="period", period_days=90)) == [
        "--recruitment",
        "period",
        "--recruitment-days",
        "90",
    ]
    assert recruitment_arguments(Recruitment(mode="rate", patients_per_week=12.5)) == [
        "--recruitment",
        "rate",
        "--patients-per-week",
        "12.5",
    ]
