"""The Run page's protocol editor: a copy of the chosen protocol with new intervals and
loading doses, validated at every change with `amdsim validate`'s messages, saved only under
a new name in the protocols folder, then chosen; the copy runs like any protocol and keeps
the original's disease and vision parameters."""

from __future__ import annotations

import pytest

from engine import run_simulation
from engine.model.protocol_loader import load_protocol
from engine.model.v2.schema import TimeBasedProtocol
from engine.state_manager import StateManager
from tests.viz.test_components import shown
from viz.context import ServerContext
from viz.run_page import RunPage


@pytest.fixture
def page(tmp_path):
    (tmp_path / "protocols").mkdir()
    context = ServerContext(runs_root=tmp_path / "runs", protocols_dir=tmp_path / "protocols")
    page = RunPage(context, StateManager())
    page.editor.layout.collapsed = False  # a user opens "Edit a copy"
    return page


def test_a_copy_with_new_intervals_is_saved_chosen_and_runs(page):
    editor = page.editor
    original = load_protocol(page.protocol.value)
    assert isinstance(original, TimeBasedProtocol)
    assert editor.numbers["max_interval_days"].value == original.max_interval_days
    assert shown(editor.status.object).startswith("valid; give it a file name")
    assert editor.save_button.disabled
    editor.file_name.value = "clinic_te"
    editor.display_name.value = "Clinic T&E, up to 20 weeks"
    editor.numbers["max_interval_days"].value = 140
    assert not editor.save_button.disabled
    saved = editor.save()
    assert saved == page.context.protocols_dir / "clinic_te.yaml"
    assert page.protocol.value == str(saved)
    copy = load_protocol(saved)
    assert (copy.name, copy.max_interval_days) == ("Clinic T&E, up to 20 weeks", 140)
    assert copy.parameters == original.parameters  # disease and vision: the original's
    assert run_simulation(copy, 100, years=1, seed=1).patient_count == 100
    editor.file_name.value = "clinic_te"  # the same name again: never over a file
    assert editor.save_button.disabled and "already exists" in shown(editor.status.object)
    assert editor.save() is None


def test_an_invalid_copy_says_why_with_the_validators_words_and_cannot_be_saved(page):
    editor = page.editor
    editor.file_name.value = "broken"
    editor.numbers["min_interval_days"].value = 200
    text = shown(editor.status.object)
    assert text.startswith("the copy: $.max_interval_days:") and "min_interval_days" in text
    assert editor.save_button.disabled and editor.save() is None
    assert not (page.context.protocols_dir / "broken.yaml").exists()


def test_a_visit_based_protocol_copies_too(page):
    page.protocol.value = "ranibizumab_prn_monthly"
    editor = page.editor
    editor.file_name.value = "prn_copy"
    editor.numbers["loading_dose_injections"].value = 2
    saved = editor.save()
    assert saved is not None, editor.status.object
    assert load_protocol(saved).loading_doses == 2


def test_without_a_protocols_folder_the_editor_says_how_to_save(tmp_path):
    page = RunPage(ServerContext(runs_root=tmp_path / "runs"), StateManager())
    page.editor.layout.collapsed = False
    page.editor.file_name.value = "anything"
    assert "--protocols-dir" in shown(page.editor.status.object)
    assert page.editor.save_button.disabled
