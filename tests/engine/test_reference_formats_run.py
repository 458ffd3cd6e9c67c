"""Every protocol file of the origin app (../shared/reference-formats/, read in place, never
copied into the project) validates and runs 2,000 patients x 2 years in memory with sane
totals: visits happen, every patient has an enrolment visit on the day of enrolment, and
every VA is within 0..100 letters.

The time-based treat-and-treat file is refused by design at `$.clinical_improvements.enabled`
(docs/model.md section 10); a temporary copy with ``enabled: false`` runs instead.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from engine import run_simulation
from engine.errors import ProtocolError
from engine.model.protocol_loader import load_protocol, validate_protocol
from engine.model.v1.protocol import Protocol
from engine.model.v2.schema import TimeBasedProtocol
from engine.results import InMemoryResults

# ../shared beside the repository (a worktree under /work/wt/ looks one level further up);
# AMDSIM_REFERENCE_FORMATS points elsewhere.
_CANDIDATES = [Path(__file__).resolve().parents[n] / ".." / "shared" for n in (2, 3)]
REFERENCE = Path(
    os.environ.get(
        "AMDSIM_REFERENCE_FORMATS",
        next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]) / "reference-formats",
    )
)
VISIT_BASED = sorted((REFERENCE / "visit-based").glob("*.yaml"))
TIME_BASED = sorted((REFERENCE / "time-based").glob("*.yaml"))
REFUSED = "aflibercept_treat_and_treat_time_based.yaml"  # docs/model.md section 10
N_PATIENTS = 2_000
YEARS = 2

pytestmark = pytest.mark.skipif(
    not (VISIT_BASED and TIME_BASED), reason="../shared/reference-formats is not beside the repo"
)


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keys read by nothing: covered by the loader tests
        return load_protocol(path)


def assert_sane_run(protocol) -> InMemoryResults:
    """Run 2,000 x 2 years in memory and check totals and rows."""
    results = run_simulation(protocol, N_PATIENTS, YEARS, seed=13, in_memory=True)
    assert isinstance(results, InMemoryResults)
    totals = results.totals
    assert totals.patients == N_PATIENTS
    assert totals.visits >= N_PATIENTS and totals.injections > 0
    patients, visits = results.get_patient_range(0, N_PATIENTS)
    assert patients.num_rows == N_PATIENTS and visits.num_rows == totals.visits
    ids = visits.column("patient_id").to_numpy()
    number = visits.column("visit").to_numpy()
    day = visits.column("day").to_numpy()
    first = number == 0
    assert np.array_equal(np.sort(ids[first]), np.arange(N_PATIENTS)), "enrolment visits"
    enrolled = patients.column("enrollment_day").to_numpy()
    order = np.argsort(patients.column("patient_id").to_numpy())
    np.testing.assert_array_equal(day[first][np.argsort(ids[first])], enrolled[order])
    assert int(totals.injections) == int(visits.column("injected").to_numpy().sum())
    for name, values in (
        ("visits.vision", visits.column("vision").to_numpy()),
        ("patients.baseline_vision", patients.column("baseline_vision").to_numpy()),
        ("patients.final_vision", patients.column("final_vision").to_numpy()),
    ):
        assert values.min() >= 0 and values.max() <= 100, name
    assert len(np.unique(visits.column("vision").to_numpy())) > 20, "VA varies"
    return results


@pytest.mark.parametrize("path", VISIT_BASED, ids=[p.name for p in VISIT_BASED])
def test_every_visit_based_file_validates_and_runs(path):
    protocol = _load(path)
    assert isinstance(protocol, Protocol)
    assert validate_protocol(protocol) == protocol
    assert_sane_run(protocol)


RUNNABLE = [p for p in TIME_BASED if p.name != REFUSED]


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_every_accepted_time_based_file_validates_and_runs(path):
    protocol = _load(path)
    assert isinstance(protocol, TimeBasedProtocol)
    assert validate_protocol(protocol) == protocol
    results = assert_sane_run(protocol)
    table = results.statistics().outcome_table()
    assert table is not None and table.rows
    assert {row.month for row in table.rows} >= {12, 24}


def test_the_treat_and_treat_file_is_refused_and_runs_with_improvements_disabled(tmp_path):
    source = REFERENCE / "time-based" / REFUSED
    with pytest.raises(ProtocolError) as caught:
        _load(source)
    assert caught.value.path == "$.clinical_improvements.enabled"
    text = source.read_text()
    assert text.count("enabled: true") == 1
    (tmp_path / REFUSED).write_text(text.replace("enabled: true", "enabled: false"))
    shutil.copytree(source.parent / "parameters", tmp_path / "parameters")
    protocol = _load(tmp_path / REFUSED)
    assert isinstance(protocol, TimeBasedProtocol) and protocol.protocol_type == "fixed"
    results = assert_sane_run(protocol)
    patients, visits = results.get_patient_range(0, N_PATIENTS)
    # A fixed schedule injects at every visit but a discontinuation visit (a patient's last).
    ids = visits.column("patient_id").to_numpy()
    last = np.r_[ids[1:] != ids[:-1], True]
    skipped = ~visits.column("injected").to_numpy()
    assert skipped.any() and last[skipped].all()
    stopped = set(
        patients.column("patient_id").to_numpy()[patients.column("discontinued").to_numpy()]
    )
    assert set(ids[skipped].tolist()) <= stopped
