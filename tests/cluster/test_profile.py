"""A cluster run with a profile directory: every Dask task profiles its own work into
``task-<first shard>-<attempt>``; a second run into the same directory adds attempts."""

from __future__ import annotations

import json

from engine.cluster import run_on_cluster
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import DEFAULT_PROTOCOL, load_protocol
from engine.pipeline import PipelineOptions
from engine.profiling import ProfileTarget

PARAMS = RunParameters(n_patients=40_000, years=2.0, seed=5)


def test_each_dask_task_writes_its_own_readable_profile(tmp_path, two_workers) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    options = PipelineOptions(profile=ProfileTarget(directory=str(profiles), html=True))
    blocks: list[list[list[int]]] = []
    for attempt in range(2):
        runs = []
        manifest = run_on_cluster(
            two_workers,
            load_protocol(DEFAULT_PROTOCOL),
            PARAMS,
            tmp_path / f"run-{attempt}",
            options,
            on_started=runs.append,
        )
        assert manifest.status == "completed"
        blocks.append(runs[0].plan.blocks)
    assert blocks[0] == blocks[1] and len(blocks[0]) > 1
    expected = {f"task-{block[0]}-{attempt}" for block in blocks[0] for attempt in (0, 1)}
    names = sorted(p.name for p in profiles.iterdir())
    assert names == sorted(f"{s}{x}" for s in expected for x in (".speedscope.json", ".html"))
    for stem in expected:
        document = json.loads((profiles / f"{stem}.speedscope.json").read_text())
        frames = {frame["name"] for frame in document["shared"]["frames"]}
        assert "_simulate_block" in frames, stem
