"""Memory limits of the streaming readers, enforced by pytest-memray.

Not collected by the main run: `tests/engine/test_memory_limits.py` runs this file in its own
pytest process with ``--memray`` and ``PYTHONMALLOC=malloc`` (so leak checks see every
allocation) over a run it built, named by ``AMDSIM_MEMRAY_RUN``. Every limit is far below
the run's size in memory (the outer test checks that), so reading it all would fail them.
"""

from __future__ import annotations

import os

import pyarrow.compute  # noqa: F401 - imported here so no test counts the import itself
import pytest

from engine.errors import MemoryBudgetError
from engine.results import ParquetResults

RUN = os.environ.get("AMDSIM_MEMRAY_RUN", "")
PATIENTS = int(os.environ.get("AMDSIM_MEMRAY_PATIENTS", "0"))
VISITS = int(os.environ.get("AMDSIM_MEMRAY_VISITS", "0"))

pytestmark = pytest.mark.skipif(not RUN, reason="run by tests/engine/test_memory_limits.py")


@pytest.mark.limit_memory("12 MB")
def test_iterating_every_visit_holds_one_part_and_one_batch():
    with ParquetResults(RUN) as results:
        rows = sum(batch.num_rows for batch in results.iterate_visits(10_000))
    assert rows == VISITS


@pytest.mark.limit_memory("6 MB")
def test_iterating_every_patient_holds_one_part_and_one_batch():
    with ParquetResults(RUN) as results:
        ids = 0
        for batch in results.iterate_patients(10_000):
            assert batch.num_rows <= 10_000
            ids += batch.num_rows
    assert ids == PATIENTS


@pytest.mark.limit_memory("12 MB")
def test_patient_lookups_across_the_run_stay_within_the_caches():
    with ParquetResults(RUN, patient_cache_size=256) as results:
        for patient in range(0, PATIENTS, PATIENTS // 500):
            results.get_patient(patient)


@pytest.mark.limit_memory("4 MB")
def test_to_dataframe_refuses_before_allocating_anything():
    with ParquetResults(RUN) as results, pytest.raises(MemoryBudgetError):
        results.to_dataframe("visits", max_bytes=1 << 20)


@pytest.mark.limit_leaks("1 MB")
def test_opening_and_closing_a_run_repeatedly_leaks_nothing():
    for _ in range(40):
        with ParquetResults(RUN) as results:
            results.get_patient(PATIENTS // 2)
            results.summary_stats()
            next(results.iterate_visits(1_000))
