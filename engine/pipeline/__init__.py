"""Streaming runs: a supervisor, worker processes and one writer, results on disk.

`run_pipeline` is the whole thing in one call, `resume_run` and `restart_run` carry on or
redo a run; `Supervisor` gives access to the run while it goes (its metrics address,
`cancel()`). See DESIGN sections 2, 3 and 5.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.pipeline.launch import restart_run, resume_run, run_pipeline, run_streaming
    from engine.pipeline.options import PipelineOptions, default_workers
    from engine.pipeline.supervisor import Supervisor

__all__ = [
    "PipelineOptions",
    "Supervisor",
    "default_workers",
    "restart_run",
    "resume_run",
    "run_pipeline",
    "run_streaming",
]

# Lazy, so that worker and writer processes importing one module here stay lean.
_EXPORTS = {
    "PipelineOptions": "engine.pipeline.options",
    "default_workers": "engine.pipeline.options",
    "Supervisor": "engine.pipeline.supervisor",
    "restart_run": "engine.pipeline.launch",
    "resume_run": "engine.pipeline.launch",
    "run_pipeline": "engine.pipeline.launch",
    "run_streaming": "engine.pipeline.launch",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
