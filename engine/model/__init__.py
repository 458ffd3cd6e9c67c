"""The AMD treatment models: protocol schemas and loading, compiled tables and kernels.

`engine.model.interface` is what the rest of the engine (pipeline, results, statistics,
storage) uses: compile a protocol once per process, then simulate blocks of shards into rows
and per-patient outcomes. The visit-based model (DESIGN section 4) lives in `engine.model.v1`;
modules shared by every model (run parameters, states, recruitment, shards, protocol files)
sit here.
"""
