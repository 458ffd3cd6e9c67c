"""Format-2 (time-based model) patients columns through every store, and the outcome table.

The kernel is not needed: `tests.v2_outputs` makes plausible v2 shard outputs. A streamed run
is written here as the writer writes it (channel wire encoding, part files, checkpoint,
statistics, manifest) and read back with `ParquetResults`.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import platform
import random
import sys
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from engine.columns import (
    PATIENT_COLUMNS,
    PATIENT_COLUMNS_V2,
    V2_MONTHS,
    format_of_patients,
    patient_columns,
)
from engine.errors import RunStateError
from engine.manifest import Checkpoint, Manifest, read_manifest, write_checkpoint, write_manifest
from engine.model.any_protocol import StoredProtocol, dec_hook
from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol, resolve_protocol_path
from engine.model.states import V2_REASON_NAMES
from engine.model.v2.schema import (
    BaselineVisionDistribution,
    Citation,
    SourceFile,
    TimeBasedProtocol,
)
from engine.pipeline.batches import decode_batch, encode_shard
from engine.pipeline.parts import PartFiles
from engine.reproducibility import changed_files, reproducibility_record
from engine.results import InMemoryResults, ParquetResults, ResultsFactory
from engine.resume import check_resumable
from engine.run_dir import RunPaths, write_atomically
from engine.stats.outcome_table import NOT_AVAILABLE, outcome_lines
from engine.stats.run_stats import StatsAccumulator
from engine.stats.shard_stats import shard_stats
from ipc.messages import PatientBatch
from tests.helpers import V1_PROTOCOL, concat_columns, simulate
from tests.v2_outputs import synthetic_v2_outputs

N, SHARD, YEARS = 700, 128, 5.0
PARAMS = RunParameters(n_patients=N, years=YEARS, seed=3, shard_size=SHARD)
HORIZON = PARAMS.horizon_days


def time_based_protocol(files: list[SourceFile] | None = None) -> TimeBasedProtocol:
    return TimeBasedProtocol(
        name="synthetic time-based",
        model_type="time_based",
        protocol_type="treat_and_extend",
        min_interval_days=28,
        max_interval_days=112,
        disease_transitions_file="params/transitions.yaml",
        treatment_effect_file="params/effect.yaml",
        vision_parameters_file="params/vision.yaml",
        discontinuation_parameters_file="params/discontinuation.yaml",
        demographics_parameters_file="params/demographics.yaml",
        baseline_vision_distribution=BaselineVisionDistribution(mean=55.0, std=12.0),
        files=files or [],
    )


@pytest.fixture(scope="module")
def outputs():
    return synthetic_v2_outputs(N, SHARD, HORIZON, seed=5)


def write_streamed_run(run_dir, protocol, outputs, slot_bytes=4 << 20, order=None) -> None:
    """What the writer leaves for these outputs: batches over the wire, parts, stats, manifest."""
    paths = RunPaths(run_dir)
    manifest = Manifest(
        format_version=2,
        run_id=run_dir.name,
        status="completed",
        protocol=protocol,
        parameters=PARAMS,
        shard_count=PARAMS.shard_count,
        compression="zstd",
        workers=1,
        created=datetime.datetime.now(datetime.UTC),
        package_version="test",
        supervisor_pid=0,
        supervisor_started=0.0,
        slot_bytes=slot_bytes,
    )
    parts = PartFiles(
        paths,
        "zstd",
        1 << 30,
        {"amdsim.format_version": "2", "amdsim.run_id": manifest.run_id},
    )
    stats = StatsAccumulator(PARAMS.shard_count, HORIZON)
    locations = []
    for output in order or outputs:
        for batch in encode_shard(output, 0, HORIZON, slot_bytes):
            wire = msgspec.msgpack.encode(batch)  # as the channel carries it
            decoded = decode_batch(msgspec.msgpack.decode(wire, type=PatientBatch))
            locations.append(parts.write(decoded))
            stats.add(batch.shard, batch.part, batch.part_count, decoded.stats)
    part = parts.roll()
    write_checkpoint(
        paths.checkpoint,
        Checkpoint(
            format_version=2,
            run_id=manifest.run_id,
            parts=[] if part is None else [part],
            shards=locations,
            stats=stats.state(),
        ),
    )
    result = stats.result()
    write_atomically(paths.stats, msgspec.json.encode(result.state()))
    write_manifest(paths.manifest, msgspec.structs.replace(manifest, totals=result.totals()))


# -- columns ----------------------------------------------------------------------------------


def test_format_1_keeps_its_columns_and_format_2_adds_the_contracted_ones():
    assert patient_columns(1) is PATIENT_COLUMNS
    assert [c.name for c in PATIENT_COLUMNS_V2[:10]] == [c.name for c in PATIENT_COLUMNS]
    assert PATIENT_COLUMNS_V2[9].dictionary == V2_REASON_NAMES
    added = {c.name: (c.dtype.name, c.nullable) for c in PATIENT_COLUMNS_V2[10:]}
    assert added["age"] == ("float32", False)
    assert added["death_day"] == ("int32", True)
    assert all(added[f"va_m{m}"] == ("int16", True) for m in V2_MONTHS)
    assert all(added[f"treated_m{m}"] == ("bool", False) for m in V2_MONTHS)
    assert added["alive_days"] == added["treated_days"] == ("int32", False)
    assert format_of_patients(c.name for c in PATIENT_COLUMNS) == 1
    with pytest.raises(ValueError, match="no format"):
        format_of_patients(["patient_id"])


# -- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("slot_bytes", [4 << 20, 24 << 10], ids=["whole", "split"])
def test_v2_columns_round_trip_through_streaming(tmp_path, outputs, slot_bytes):
    run_dir = tmp_path / "run"
    write_streamed_run(run_dir, time_based_protocol(), outputs, slot_bytes)
    expected = concat_columns(outputs, "patients")
    with ResultsFactory.open(run_dir) as results:
        assert isinstance(results, ParquetResults)
        assert isinstance(results.protocol, TimeBasedProtocol)
        table = pa.Table.from_batches(list(results.iterate_patients(batch_size=97)))
        assert table.column_names == [c.name for c in PATIENT_COLUMNS_V2]
        for spec in PATIENT_COLUMNS_V2:
            column = table.column(spec.name)
            if spec.dictionary is not None:
                codes = [-1 if v is None else spec.dictionary.index(v) for v in column.to_pylist()]
                assert codes == expected[spec.name].tolist(), spec.name
            elif spec.nullable:
                got = [-1 if v is None else v for v in column.to_pylist()]
                assert got == expected[spec.name].tolist(), spec.name
            else:
                assert np.array_equal(column.to_numpy(), expected[spec.name]), spec.name
        record = results.get_patient(301)
        assert record.patient["age"] == pytest.approx(float(expected["age"][301]))
        assert record.patient["sex"] in ("female", "male")
        visits = concat_columns(outputs, "visits")
        assert record.visits.num_rows == int(np.count_nonzero(visits["patient_id"] == 301))
        frame = results.to_dataframe("patients")
        assert list(frame.columns) == [c.name for c in PATIENT_COLUMNS_V2]
        summary = results.summary_stats()
        assert set(summary.discontinuation_rate_by_reason) == set(V2_REASON_NAMES)
        assert results.statistics().outcome_table() == direct_outcome_table(expected)


def test_v2_in_memory_results_save_and_load(tmp_path, outputs):
    stats = StatsAccumulator(PARAMS.shard_count, HORIZON)
    for o in outputs:
        stats.add(o.shard_index, 0, 1, shard_stats(o.patients, o.visits, HORIZON))
    protocol = time_based_protocol()
    results = InMemoryResults.from_shards(outputs[::-1], protocol, PARAMS, stats.result())
    for table_format in ("parquet", "arrow"):
        folder = results.save(tmp_path / table_format, table_format=table_format)
        loaded = InMemoryResults.load(folder)
        assert loaded.protocol == protocol
        assert loaded.get_patient_range(0, N)[0].equals(results.get_patient_range(0, N)[0])
        assert loaded.get_patient_range(0, N)[1].equals(results.get_patient_range(0, N)[1])
        assert loaded.get_patient(17).patient == results.get_patient(17).patient
        assert loaded.statistics() == results.statistics()


# -- the outcome table ----------------------------------------------------------------------


def direct_outcome_table(patients):
    """The outcome table computed straight from concatenated columns (docs/model.md 6)."""
    baseline = patients["baseline_vision"].astype(float)
    rows = []
    for month in V2_MONTHS:
        va = patients[f"va_m{month}"]
        reached = va != -1
        for chosen in (reached, reached & patients[f"treated_m{month}"]):
            change = va[chosen] - baseline[chosen]
            n = len(change)
            sd = float(np.std(change, ddof=1)) if n > 1 else math.nan
            rows.append(
                (
                    n,
                    float(np.mean(change)) if n else math.nan,
                    sd,
                    float(np.mean(change >= 15)) if n else math.nan,
                    float(np.mean(change > -15)) if n else math.nan,
                    float(np.mean(change <= -15)) if n else math.nan,
                    float(np.mean(va[chosen] >= 70)) if n else math.nan,
                )
            )
    treated = patients["treated_days"].astype(float)
    exposure = [
        np.minimum(treated, 364),
        np.clip(treated - 364, 0, 364),
        np.maximum(treated - 728, 0),
    ]
    per_year = [
        (
            patients[f"injections_{p}"].sum() / (e.sum() / 365.25),
            patients[f"visits_{p}"].sum() / (e.sum() / 365.25),
        )
        for p, e in zip(("y1", "y2", "later"), exposure, strict=True)
    ]
    deaths = int(np.count_nonzero(patients["death_day"] != -1))
    reasons = patients["discontinuation_reason"]
    return _Direct(
        rows,
        per_year,
        deaths,
        100 * deaths / (patients["alive_days"].sum() / 365.25),
        np.bincount(reasons[reasons != -1], minlength=len(V2_REASON_NAMES)).tolist(),
    )


class _Direct:
    """Compares with an `OutcomeTable` to 1e-9 relative (sums of whole letters are exact)."""

    def __init__(self, rows, per_year, deaths, death_rate, reasons):
        self.rows, self.per_year, self.deaths = rows, per_year, deaths
        self.death_rate, self.reasons = death_rate, reasons

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, table) -> bool:
        assert len(table.rows) == len(self.rows)
        for row, want in zip(table.rows, self.rows, strict=True):
            got = (
                row.patients,
                row.mean_change,
                row.sd,
                row.gain_15,
                row.lose_lt_15,
                row.lose_15,
                row.at_least_70,
            )
            assert got[0] == want[0]
            assert got[1:] == pytest.approx(want[1:], rel=1e-9, nan_ok=True)
            if row.patients > 1:
                half = 1.96 * row.sd / math.sqrt(row.patients)
                assert row.ci_high - row.ci_low == pytest.approx(2 * half, rel=1e-9)
        for year, (injections, visits) in zip(table.years, self.per_year, strict=True):
            assert year.injections_per_year == pytest.approx(injections, rel=1e-9)
            assert year.visits_per_year == pytest.approx(visits, rel=1e-9)
        assert table.deaths == self.deaths
        assert table.deaths_per_100_patient_years == pytest.approx(self.death_rate, rel=1e-9)
        assert list(table.discontinuations.values()) == self.reasons
        assert list(table.discontinuations) == list(V2_REASON_NAMES)
        return True


def test_outcome_table_is_order_independent_and_equals_a_direct_computation(outputs):
    expected = concat_columns(outputs, "patients")
    direct = direct_outcome_table(expected)
    states = []
    for trial in range(3):
        order = list(outputs)
        random.Random(trial).shuffle(order)
        stats = StatsAccumulator(PARAMS.shard_count, HORIZON)
        for output in order:
            for batch in encode_shard(output, 0, HORIZON, 24 << 10 if trial else 4 << 20):
                stats.add(batch.shard, batch.part, batch.part_count, decode_batch(batch).stats)
        result = stats.result()
        assert result.outcome_table() == direct
        states.append(msgspec.json.encode(result.state()))
    assert states[0] == states[1] == states[2]
    assert min(r.patients for r in result.outcome_table().rows[:4]) > 100  # the test has data


def test_the_outcome_table_renders_every_month_and_a_format_1_run_says_not_available():
    v1_params, v1_outputs = simulate(load_protocol(V1_PROTOCOL), 60, years=1, shard_size=60)
    v1 = StatsAccumulator(v1_params.shard_count, v1_params.horizon_days)
    (output,) = v1_outputs
    v1.add(0, 0, 1, shard_stats(output.patients, output.visits, v1_params.horizon_days))
    assert v1.result().outcome_table() is None
    assert v1.state().format_version == 1  # format-1 runs keep writing version 1 statistics
    assert outcome_lines(None) == [f"Outcome table: {NOT_AVAILABLE}"]
    (v2_output,) = synthetic_v2_outputs(200, 200, HORIZON, seed=2)
    v2 = StatsAccumulator(1, HORIZON)
    v2.add(0, 0, 1, shard_stats(v2_output.patients, v2_output.visits, HORIZON))
    assert v2.state().format_version == 2
    text = "\n".join(outcome_lines(v2.result().outcome_table()))
    for month in V2_MONTHS:
        assert f"\n{month:>5} locf" in text and f"\n{month:>5} observed" in text
    assert "per 100 patient-years" in text and "stable_disease" in text


# -- the manifest -----------------------------------------------------------------------------


def test_a_time_based_manifest_decodes_back_into_its_protocol(tmp_path, outputs):
    source = SourceFile(role="vision", path="params/vision.yaml", sha256="ab" * 32, text="x: 1\n")
    protocol = time_based_protocol([source])
    run_dir = tmp_path / "run"
    write_streamed_run(run_dir, protocol, outputs[:1])
    manifest = read_manifest(RunPaths(run_dir).manifest)
    assert isinstance(manifest.protocol, TimeBasedProtocol)
    assert manifest.protocol == protocol
    assert manifest.format_version == 2


def test_a_manifest_written_before_files_were_renamed_still_opens(tmp_path, outputs):
    """Until issue 12 the files read were stored under `sources`; they now come back as `files`."""
    record = SourceFile(role="vision", path="params/vision.yaml", sha256="cd" * 32, text="y: 2\n")
    protocol = time_based_protocol([record])
    run_dir = tmp_path / "run"
    write_streamed_run(run_dir, protocol, outputs[:1])
    path = RunPaths(run_dir).manifest
    stored = msgspec.json.decode(path.read_bytes())
    stored["protocol"]["sources"] = stored["protocol"].pop("files")
    path.write_bytes(msgspec.json.encode(stored))
    manifest = read_manifest(path)
    assert manifest.protocol.files == [record]
    assert manifest.protocol.sources == []
    assert manifest.protocol == protocol


def test_a_protocol_cites_its_sources_apart_from_the_files_it_read():
    path = resolve_protocol_path("aflibercept_2q8_view")
    protocol = load_protocol(path)
    assert protocol.sources and all(isinstance(c, Citation) for c in protocol.sources)
    assert {record.role for record in protocol.files} >= {"vision", "mortality"}
    stored = msgspec.json.encode({"protocol": protocol})
    back = msgspec.json.decode(stored, type=_Stored, dec_hook=dec_hook)
    assert back.protocol == protocol


class _Stored(msgspec.Struct):
    protocol: StoredProtocol


# -- reproducibility record and resume ---------------------------------------------------------


def write_protocol_files(folder):
    params = folder / "params"
    params.mkdir(parents=True)
    (params / "vision.yaml").write_text("vision: 1\n")
    (params / "mortality.yaml").write_text("mortality: 2\n")
    (folder / "protocol.yaml").write_text("model_type: time_based\n")
    sources = [
        SourceFile(
            role=role,
            path=f"params/{role}.yaml",
            sha256=hashlib.sha256((params / f"{role}.yaml").read_bytes()).hexdigest(),
            text=(params / f"{role}.yaml").read_text(),
        )
        for role in ("vision", "mortality")
    ]
    return time_based_protocol(sources)


def test_the_manifest_record_says_what_reproduces_the_run(tmp_path):
    protocol = write_protocol_files(tmp_path / "inputs")
    record = reproducibility_record(protocol, tmp_path / "inputs" / "protocol.yaml", "9.9")
    assert record.random_scheme == "counter-based"
    assert record.package_version == "9.9"
    assert record.python == platform.python_version()
    assert record.numpy == np.__version__ and record.pyarrow == pa.__version__
    assert record.command_line == sys.argv
    assert [f.role for f in record.files] == ["protocol", "vision", "mortality"]
    for file in record.files:
        data = Path(file.absolute_path).read_bytes()
        assert Path(file.absolute_path).is_absolute()
        assert file.sha256 == hashlib.sha256(data).hexdigest() and file.text == data.decode()
    assert changed_files(record) == []
    v1 = reproducibility_record(load_protocol(V1_PROTOCOL), None, "9.9")
    assert v1.random_scheme == "pcg64-per-shard" and v1.files == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_in_place_of_a_recorded_file_is_reported_without_reading_it(tmp_path):
    """Opening a pipe to hash it would block resume for ever."""
    protocol = write_protocol_files(tmp_path / "inputs")
    record = reproducibility_record(protocol, tmp_path / "inputs" / "protocol.yaml", "9.9")
    vision = Path(record.files[1].absolute_path)
    vision.unlink()
    os.mkfifo(vision)
    assert changed_files(record) == [f"vision file {vision} is not a regular file"]


def interrupted_run(tmp_path, protocol, record):
    run_dir = tmp_path / "run"
    write_streamed_run(run_dir, protocol, [])
    paths = RunPaths(run_dir)
    manifest = msgspec.structs.replace(
        read_manifest(paths.manifest), status="cancelled", reproducibility=record
    )
    write_manifest(paths.manifest, manifest)
    return paths, read_manifest(paths.manifest)


@pytest.mark.parametrize("change", ["edited", "deleted"])
def test_resume_refuses_a_run_whose_parameter_file_changed(tmp_path, change):
    inputs = tmp_path / "inputs"
    protocol = write_protocol_files(inputs)
    record = reproducibility_record(protocol, inputs / "protocol.yaml", "9.9")
    paths, manifest = interrupted_run(tmp_path, protocol, record)
    check_resumable(paths, manifest)  # unchanged: resumable
    vision = inputs / "params" / "vision.yaml"
    if change == "edited":
        vision.write_text("vision: 3\n")
    else:
        vision.unlink()
    with pytest.raises(RunStateError) as caught:
        check_resumable(paths, manifest)
    message = str(caught.value)
    assert "\n" not in message
    assert str(vision.resolve()) in message
    assert ("changed" if change == "edited" else "missing") in message
    assert "mortality" not in message  # only the file that changed is named
