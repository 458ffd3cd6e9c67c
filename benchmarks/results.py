"""Reading a finished run back: patient lookups cold, warm and cached, summaries, scans.

`perf/bench_results.py` measures these on a 10M-patient run; here one small run (v2, the
default protocol, 20k patients x 5 years, built once per environment by `setup_cache` in
asv's own temporary folder) is read by a new `ParquetResults` for every sample. The OS page
cache holds the files throughout, so "cold" means cold for amdsim (nothing opened or cached
in the process), not for the disk.
"""

from __future__ import annotations

import os

from benchmarks._shared import protocol_of, run_parameters
from engine.pipeline import PipelineOptions, run_pipeline
from engine.results import ParquetResults

PATIENTS = 20_000
SHARD_SIZE = 4096
ROW_GROUP_PATIENTS = 1024  # PipelineOptions' default: what one lookup reads
CACHED_LOOKUPS = 100


def setup_cache() -> str:
    """Build the run once; asv runs this in a temporary folder it deletes afterwards."""
    run_dir = os.path.abspath("run")
    run_pipeline(
        protocol_of("v2"),
        run_parameters(PATIENTS, shard_size=SHARD_SIZE),
        run_dir,
        PipelineOptions(workers=1, row_group_patients=ROW_GROUP_PATIENTS),
    )
    return run_dir


# A patient of shard 2: its row groups are never read by `Lookups.setup`.
UNREAD_PATIENT = 2 * SHARD_SIZE + 100


class Lookups:
    """`get_patient`: what one patient costs to find, depending on what is already in memory."""

    timeout = 120

    def setup(self, run_dir: str) -> None:
        self.results = ParquetResults(run_dir)
        self.results.get_patient(0)  # opens the part files and their footers
        for patient in range(CACHED_LOOKUPS):
            self.results.get_patient(patient)  # now in the patient cache

    def teardown(self, run_dir: str) -> None:
        self.results.close()

    def time_lookup_cold(self, run_dir: str) -> None:
        """Open the run (manifest, index) and look up one patient, in a new reader."""
        with ParquetResults(run_dir) as results:
            results.get_patient(PATIENTS // 2)

    def time_lookup_warm(self, run_dir: str) -> None:
        """One patient of a row group not read yet, files already open (one row-group read)."""
        self.results.get_patient(UNREAD_PATIENT)

    def time_lookup_cached(self, run_dir: str) -> None:
        """100 lookups of patients in the reader's patient cache (per call: divide by 100)."""
        get_patient = self.results.get_patient
        for patient in range(CACHED_LOOKUPS):
            get_patient(patient)


class Summary:
    """`summary_stats()`: headline outcomes from the stored statistics, never a scan."""

    def setup(self, run_dir: str) -> None:
        self.results = ParquetResults(run_dir)
        self.results.summary_stats()

    def teardown(self, run_dir: str) -> None:
        self.results.close()

    def time_summary_stats_first(self, run_dir: str) -> None:
        """Open the run and ask for its summary (reads and decodes stats.json)."""
        with ParquetResults(run_dir) as results:
            results.summary_stats()

    def time_summary_stats_again(self, run_dir: str) -> None:
        """The summary from a reader that has loaded the statistics already."""
        self.results.summary_stats()


class Scan:
    """Every row of the run, in batches: what exports and analyses do."""

    timeout = 120

    def setup(self, run_dir: str) -> None:
        self.results = ParquetResults(run_dir)

    def teardown(self, run_dir: str) -> None:
        self.results.close()

    def time_iterate_patients(self, run_dir: str) -> None:
        """All 20k patients in batches of 10,000."""
        for _ in self.results.iterate_patients(10_000):
            pass

    def time_iterate_visits(self, run_dir: str) -> None:
        """All visits (about 400k) in batches of 100,000."""
        for _ in self.results.iterate_visits(100_000):
            pass

    def peakmem_iterate_visits(self, run_dir: str) -> None:
        """Peak RSS of a reader going through every visit (bounded by the batch size)."""
        for _ in self.results.iterate_visits(100_000):
            pass

    def peakmem_to_dataframe_visits(self, run_dir: str) -> None:
        """Peak RSS of loading the whole visits table as a pandas DataFrame."""
        self.results.to_dataframe("visits")
