"""The streaming readers' memory limits and leak check, under pytest-memray.

The limits themselves are in `tests/memory/memray_readers.py`; this test builds a run and
runs that file in a fresh pytest process with ``--memray`` and ``PYTHONMALLOC=malloc``
(pytest-memray's advice for leak checks, which can only be set before Python starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, run_pipeline
from tests.helpers import V1_PROTOCOL

CASES = Path(__file__).resolve().parents[1] / "memory" / "memray_readers.py"
LARGEST_LIMIT = 12 << 20  # the largest limit_memory in CASES


@pytest.mark.slow
def test_streaming_readers_stay_within_their_memory_limits_and_leak_nothing(tmp_path):
    pytest.importorskip("pytest_memray")
    params = RunParameters(n_patients=200_000, years=5, seed=9)
    manifest = run_pipeline(
        load_protocol(V1_PROTOCOL), params, tmp_path / "run", PipelineOptions(workers=1)
    )
    assert manifest.uncompressed_bytes > 4 * LARGEST_LIMIT, "the run must dwarf the limits"
    env = {
        **os.environ,
        "PYTHONMALLOC": "malloc",
        "ARROW_DEFAULT_MEMORY_POOL": "system",  # Arrow's buffers through malloc, tracked alike
        "AMDSIM_MEMRAY_RUN": str(tmp_path / "run"),
        "AMDSIM_MEMRAY_PATIENTS": str(manifest.patients),
        "AMDSIM_MEMRAY_VISITS": str(manifest.visits),
    }
    env.pop("COV_CORE_SOURCE", None)  # no coverage tracer in the measured process
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(CASES),
            "--memray",
            "-o",
            "python_files=memray_*.py",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "-q",
            "--memray-bin-path",
            str(tmp_path / "memray"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in summary and "skipped" not in summary, result.stdout
