"""A streamed run of a visit-based protocol stays format 1 and records what reproduces it."""

from __future__ import annotations

import hashlib
import json
import sys

from engine.formats import stored_version
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol, resolve_protocol_path
from engine.pipeline import PipelineOptions, run_pipeline
from engine.run_dir import RunPaths
from tests.helpers import V1_PROTOCOL


def test_a_v1_run_writes_format_1_files_with_the_reproducibility_record(tmp_path):
    path = resolve_protocol_path(V1_PROTOCOL)
    options = PipelineOptions(workers=1, protocol_path=str(path))
    params = RunParameters(n_patients=600, years=1, seed=4, shard_size=200)
    manifest = run_pipeline(load_protocol(path), params, tmp_path / "run", options)
    paths = RunPaths(tmp_path / "run")
    for document in (paths.manifest, paths.checkpoint, paths.stats):
        assert stored_version(document.read_bytes()) == 1, document.name  # as before format 2
    assert manifest.format_version == 1
    record = manifest.reproducibility
    assert record is not None
    assert record.random_scheme == "pcg64-per-shard"
    assert record.command_line == sys.argv
    (protocol_file,) = record.files
    assert protocol_file.role == "protocol"
    assert protocol_file.absolute_path == str(path.resolve())
    assert protocol_file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    stored = json.loads(paths.manifest.read_text())["reproducibility"]
    assert stored["numpy"] and stored["pyarrow"] and stored["python"]
    assert (
        "model_type" not in stored
        and "model_type" not in json.loads(paths.manifest.read_text())["protocol"]
    )
