"""The simulation kernels alone: shard outputs as numpy columns, no processes, no I/O.

What `perf/bench_kernel.py` measures at 100k patients, here at a size that times in a
fraction of a second: every block of a cohort through `CompiledModel.simulate_shards`, the
call a worker makes. v1 is the visit-based kernel, v2 the time-based one (fortnightly
updates, counter-based random numbers).
"""

from __future__ import annotations

from benchmarks._shared import protocol_of, run_parameters
from engine.model.interface import compile_model
from engine.model.shards import plan_blocks


class Kernel:
    """One whole cohort through the kernel, one process (what one worker does)."""

    params = (["v1", "v2"], [8192])
    param_names = ["model", "patients"]
    timeout = 120

    def setup(self, model: str, patients: int) -> None:
        self.model = compile_model(protocol_of(model))
        self.params_ = run_parameters(patients)
        self.blocks = plan_blocks(self.params_)

    def time_simulate(self, model: str, patients: int) -> None:
        """Seconds for the cohort (5 years): every block, every shard output."""
        for block in self.blocks:
            self.model.simulate_shards(self.params_, block)

    def peakmem_simulate(self, model: str, patients: int) -> None:
        """Peak RSS of the process simulating the cohort (imports and tables included)."""
        for block in self.blocks:
            self.model.simulate_shards(self.params_, block)


class CompileProtocol:
    """Loading, validating and compiling a bundled protocol into the kernel's tables."""

    params = ["v1", "v2"]
    param_names = ["model"]

    def time_load_and_compile(self, model: str) -> None:
        """Seconds to read the YAML file(s), validate them and build the lookup tables."""
        compile_model(protocol_of(model))
