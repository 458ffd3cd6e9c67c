"""The asv benchmark suite: tracked timings and memory of amdsim's hot paths.

Run and compare with airspeed velocity from the repository root (docs/performance.md,
"Benchmark history (asv)"). Each module benchmarks one part: `kernel`, `pipeline`, `writer`,
`results`, `stats`, `tdigest`, `compare`; `_shared` holds what several of them (and the
`perf/` scripts) build their inputs with.

Benchmarks import only the installed `engine` and `ipc` packages, never the working tree
(asv puts only this folder's package on the path), so `asv continuous main HEAD` measures
each commit's own code. Sizes are small on purpose: the whole suite runs in a few minutes
on two cores; `perf/` has the full-size measurements and their targets.
"""
