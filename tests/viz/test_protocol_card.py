"""The protocol, shown before a run and for every past run as a clinician reads it: display
name, regimen (loading doses, visit intervals, steps), population, parameters, sources; the
Run page's card follows the choice and an upload keeps its file's name."""

from __future__ import annotations

import html
import re

import pytest

from engine import run_simulation
from engine.model.protocol_loader import (
    bundled_protocol_names,
    load_protocol,
    resolve_protocol_path,
)
from engine.model.v2.schema import TimeBasedProtocol
from engine.state_manager import StateManager
from tests.helpers import V1_PROTOCOL
from viz.context import ServerContext
from viz.protocol_card import protocol_card_html
from viz.protocol_choice import UPLOADED
from viz.results_page import ResultsPage
from viz.run_page import RunPage


def _text(card: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<style>.*?</style>|<[^>]+>", " ", card)))


@pytest.mark.parametrize("name", bundled_protocol_names())
def test_every_bundled_protocol_reads_with_its_own_numbers(name):
    protocol = load_protocol(name)
    text = _text(protocol_card_html(protocol))
    assert protocol.name in text
    loading = (
        protocol.loading_dose_injections
        if isinstance(protocol, TimeBasedProtocol)
        else protocol.loading_doses
    )
    assert (f"Loading doses {loading} injection" in text) == bool(loading), text
    low, high = protocol.min_interval_days, protocol.max_interval_days
    visits = f"every {low} days" if low == high else f"{low} days"
    assert f"Visits {visits}" in text, text
    if isinstance(protocol, TimeBasedProtocol):
        assert protocol.vision_parameters_file in text
        assert protocol_card_html(protocol).count("<li>") == len(protocol.sources)
        for citation in protocol.sources:
            assert citation.study in text


def test_the_view_regimen_reads_as_the_trial_describes_it():
    text = _text(protocol_card_html(load_protocol("aflibercept_2q8_view")))
    assert "Type Fixed interval" in text
    assert "Loading doses 3 injections, every 28 days (4 weeks)" in text
    assert "Visits every 56 days (8 weeks)" in text and "VIEW" in text


def test_a_visit_based_protocol_shows_its_transition_matrix_in_per_cent():
    protocol = load_protocol(V1_PROTOCOL)
    text = _text(protocol_card_html(protocol))
    stable_to_active = round(100 * protocol.disease_transitions.STABLE.ACTIVE)
    row = re.search(r"Stable (\d+) % (\d+) % (\d+) % (\d+) %", text)
    assert row is not None and int(row.group(3)) == stable_to_active, text


def test_text_from_the_file_is_escaped():
    protocol = load_protocol(V1_PROTOCOL)
    from msgspec.structs import replace

    card = protocol_card_html(replace(protocol, name="<img src=x onerror=alert(1)>"))
    assert "<img" not in card and "&lt;img" in card


def test_the_run_pages_card_follows_the_choice_and_an_upload_keeps_its_name(tmp_path):
    page = RunPage(ServerContext(runs_root=tmp_path / "runs"), StateManager())
    choice = page.choice
    first = load_protocol(page.protocol.value).name
    assert first in choice.card.object and choice.about.title == f"About: {first}"
    page.protocol.value = "aflibercept_2q8_view"
    assert load_protocol("aflibercept_2q8_view").name in choice.card.object
    upload = resolve_protocol_path("aflibercept_treat_and_extend").read_bytes()
    upload = upload.replace(b"name:", b"name: Clinic pilot -", 1)
    assert page.receive_upload(upload, "clinic_pilot.yaml")
    assert page.protocol.options["uploaded: clinic_pilot.yaml"] == UPLOADED
    assert "Clinic pilot -" in choice.card.object


def test_the_results_page_shows_the_protocol_a_run_ran(tmp_path):
    state = StateManager()
    state.put("small", run_simulation(load_protocol("aflibercept_2q8_view"), 200, years=1))
    page = ResultsPage(ServerContext(runs_root=tmp_path / "runs"), state)
    assert not page.protocol_about.visible
    assert page.open("small")
    name = load_protocol("aflibercept_2q8_view").name
    assert page.protocol_about.visible and page.protocol_about.title == f"Protocol: {name}"
    assert "every 56 days (8 weeks)" in page.protocol_card.object
    state.cleanup()
