"""Paired comparisons with common random numbers (`amdsim compare`, engine.compare).

Every arm simulates the same patients with the same random numbers, so the second arm should
cost about what the first does and the pairing almost nothing (`perf/bench_compare.py`
checks a ratio <= 2.2 at 1M patients). Here 16,384 patients x 5 years (one block of four
shards) with one arm and with two, through `new_comparison` and `run_blocks` as the command
runs them; blocks run in this process (`AMDSIM_COMPARE_IN_PROCESS=1`) so the timing is the
simulation and merge, without a worker pool's start-up.
"""

from __future__ import annotations

import os

from benchmarks._shared import compare_request, new_scratch_dir, remove_scratch_dir
from engine.compare.runner import run_blocks
from engine.compare.setup import new_comparison

VIEW_2Q8 = "aflibercept_2q8_view"
ALTAIR = "aflibercept_treat_and_extend_altair"
ARMS = {1: [ALTAIR], 2: [VIEW_2Q8, ALTAIR]}
PATIENTS = 16_384
IN_PROCESS = "AMDSIM_COMPARE_IN_PROCESS"


class Compare:
    """One comparison simulated and merged: one arm against two arms on the same patients."""

    params = [1, 2]
    param_names = ["arms"]
    timeout = 120
    repeat = (1, 5, 20.0)

    def setup(self, arms: int) -> None:
        self.folder = new_scratch_dir()
        self.request = compare_request(ARMS[arms], PATIENTS, 5.0)
        self.runs = 0
        self.saved_env = os.environ.get(IN_PROCESS)
        os.environ[IN_PROCESS] = "1"

    def teardown(self, arms: int) -> None:
        if self.saved_env is None:
            os.environ.pop(IN_PROCESS, None)
        else:
            os.environ[IN_PROCESS] = self.saved_env
        remove_scratch_dir(self.folder)

    def time_run_blocks(self, arms: int) -> None:
        """Seconds to simulate every block under every arm and merge the paired totals."""
        self.runs += 1
        folder = self.folder / f"comparison-{self.runs}"
        spec = new_comparison(folder, self.request)
        run_blocks(folder, spec, workers=1)
