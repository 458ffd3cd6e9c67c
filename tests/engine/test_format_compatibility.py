"""Files written by every past format version open with today's reader and read the same."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest

from engine.errors import ResultsFormatError
from engine.formats import decode_versioned, stored_version
from engine.manifest import FORMAT_VERSION
from engine.results import InMemoryResults, ParquetResults, ResultsFactory
from tests.fixtures.make_format_fixture import SAMPLE_PATIENT, describe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VERSIONS = sorted(FIXTURES.glob("format-*"), key=lambda p: int(p.name.split("-")[1]))


def test_the_current_format_has_a_committed_fixture():
    assert (FIXTURES / f"format-{FORMAT_VERSION}" / "run" / "manifest.json").is_file(), (
        "a new format version needs its fixture: python -m tests.fixtures.make_format_fixture"
    )


@pytest.mark.parametrize("fixture", VERSIONS, ids=[p.name for p in VERSIONS])
@pytest.mark.parametrize("tier", ["run", "memory"])
def test_a_fixture_of_every_version_reads_as_it_did_when_written(fixture, tier):
    expected = json.loads((fixture / "expected.json").read_text())[tier]
    with ResultsFactory.open(fixture / tier) as results:
        assert isinstance(results, ParquetResults if tier == "run" else InMemoryResults)
        # describe() is what was recorded at writing time (it may since have grown keys);
        # a JSON round trip compares like with like.
        actual = json.loads(msgspec.json.encode(describe(results)))
        assert {key: actual[key] for key in expected} == expected
        # ... and the rows agree with the statistics they were stored with.
        patients = pa.Table.from_batches(list(results.iterate_patients(batch_size=257)))
        ids = patients.column("patient_id").to_pylist()
        assert ids == list(range(results.parameters.n_patients))
        visits = sum(batch.num_rows for batch in results.iterate_visits(batch_size=1000))
        assert visits == results.summary_stats().visits == expected["visits"]
        assert results.get_patient(SAMPLE_PATIENT).patient == expected["patient"]


@pytest.mark.parametrize("fixture", VERSIONS, ids=[p.name for p in VERSIONS])
def test_fixture_files_carry_their_format_version(fixture):
    version = int(fixture.name.split("-")[1])
    for name in ("run/manifest.json", "run/checkpoint.json", "memory/results.json"):
        assert stored_version((fixture / name).read_bytes()) == version


class Current(msgspec.Struct):
    format_version: int
    patients_total: int


def test_older_documents_are_upgraded_step_by_step_and_newer_ones_refused():
    # Version 1 called the field "n"; version 2 "patients"; version 3 "patients_total".
    upgrades = {
        1: lambda doc: {"patients": doc.pop("n"), **doc},
        2: lambda doc: {"patients_total": doc.pop("patients"), **doc},
    }
    old = b'{"format_version": 1, "n": 5}'
    assert decode_versioned(old, Current, 3, upgrades, "old.json", "doc") == Current(3, 5)
    unversioned = b'{"n": 7}'  # before format_version existed: version 1
    assert decode_versioned(unversioned, Current, 3, upgrades, "x.json", "doc").patients_total == 7
    with pytest.raises(ResultsFormatError, match=r"new\.json has format version 4; .* Upgrade"):
        decode_versioned(b'{"format_version": 4}', Current, 3, upgrades, "new.json", "doc")
    with pytest.raises(ResultsFormatError, match="no upgrade from 1 to 2"):
        decode_versioned(old, Current, 3, {2: upgrades[2]}, "old.json", "doc")
    with pytest.raises(ResultsFormatError, match=r"bad\.json is not a valid doc"):
        decode_versioned(b'{"format_version": 3}', Current, 3, upgrades, "bad.json", "doc")
