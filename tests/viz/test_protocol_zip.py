"""Uploading a time-based protocol with its parameter files as a zip: valid ones become the
chosen protocol under the zip's name; hostile or incomplete archives are refused in one line
and unpack nothing outside their folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from engine.model.protocol_loader import load_protocol, resolve_protocol_path
from engine.state_manager import StateManager
from tests.viz.test_components import shown
from viz.context import ServerContext
from viz.protocol_choice import UPLOADED
from viz.protocol_zip import MAX_MEMBERS
from viz.run_page import RunPage

BUNDLED = "aflibercept_treat_and_extend_altair"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _protocol_folder() -> dict[str, bytes]:
    path = resolve_protocol_path(BUNDLED)
    members = {"clinic.yaml": path.read_bytes()}
    for file in (path.parent / "aflibercept_2mg").glob("*.yaml"):
        members[f"aflibercept_2mg/{file.name}"] = file.read_bytes()
    return members


@pytest.fixture
def page(tmp_path):
    return RunPage(ServerContext(runs_root=tmp_path / "runs"), StateManager())


def test_a_zipped_time_based_protocol_is_chosen_and_runs_as_the_bundled_one(page):
    assert page.receive_upload(_zip(_protocol_folder()), "clinic.zip"), page.message.object
    assert page.protocol.options["uploaded: clinic.zip"] == UPLOADED
    protocol, path = page._selected_protocol()
    assert protocol.parameters == load_protocol(BUNDLED).parameters
    assert path.name == "clinic.yaml" and path.parent.parent.name == ".uploads"
    assert protocol.name in page.choice.card.object


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.yaml": b"x: 1"}, "'../evil.yaml' would unpack outside its folder"),
        ({"/etc/evil.yaml": b"x: 1"}, "would unpack outside its folder"),
        ({"notes.txt": b"hello"}, "the zip must hold one protocol YAML"),
        ({f"f{i}.txt": b"" for i in range(MAX_MEMBERS + 1)}, f"{MAX_MEMBERS + 1} files; at most"),
    ],
)
def test_a_bad_zip_is_refused_in_one_line_and_writes_nothing_outside(
    page, tmp_path, members, message
):
    assert not page.receive_upload(_zip(members), "bad.zip")
    text = shown(page.message.object)
    assert text.startswith("bad.zip: ") and message in text and "\n" not in text
    assert not (tmp_path / "evil.yaml").exists() and not Path("/etc/evil.yaml").exists()


def test_a_zip_missing_a_parameter_file_names_it(page):
    members = _protocol_folder()
    del members["aflibercept_2mg/vision.yaml"]
    assert not page.receive_upload(_zip(members), "partial.zip")
    text = shown(page.message.object)
    assert "vision_parameters_file" in text and "no such file" in text


def test_a_zip_bomb_is_refused_before_unpacking(page, tmp_path):
    huge = _zip({"big.yaml": b"0" * (9 << 20)})  # compresses to a few KiB
    assert len(huge) < page.context.max_upload_bytes
    assert not page.receive_upload(huge, "bomb.zip")
    assert "MiB unpacked; at most 8 MiB" in shown(page.message.object)
    assert not any((tmp_path / "runs").rglob("big.yaml"))
