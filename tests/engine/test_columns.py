"""numpy columns become Arrow with the schema of DESIGN section 5, nulls and dictionaries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.columns import PATIENTS_SCHEMA, VISITS_SCHEMA, numpy_view
from engine.model.protocol_loader import load_protocol
from tests.helpers import V1_PROTOCOL, simulate


@pytest.fixture(scope="module")
def output():
    protocol = load_protocol(V1_PROTOCOL)
    _, outputs = simulate(protocol, n_patients=3_000, years=6)
    return outputs[0]


def test_batches_have_the_documented_schema(output):
    assert output.patients_batch().schema.equals(PATIENTS_SCHEMA)
    assert output.visits_batch().schema.equals(VISITS_SCHEMA)
    assert PATIENTS_SCHEMA.names == [
        "patient_id",
        "enrollment_day",
        "baseline_vision",
        "final_vision",
        "final_state",
        "injections",
        "visits",
        "discontinued",
        "discontinuation_day",
        "discontinuation_reason",
    ]
    assert VISITS_SCHEMA.names == [
        "patient_id",
        "visit",
        "day",
        "vision",
        "injected",
        "disease_state",
        "interval_days",
    ]


def test_arrow_values_equal_the_numpy_columns_with_nulls_for_minus_one(output):
    batch = output.visits_batch()
    interval = output.visits["interval_days"]
    arrow_interval = batch.column("interval_days")
    assert arrow_interval.null_count == int((interval == -1).sum()) > 0
    assert arrow_interval.to_pylist() == [None if v == -1 else int(v) for v in interval]
    assert batch.column("injected").to_pylist() == output.visits["injected"].tolist()
    names = ["NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE"]
    assert batch.column("disease_state").to_pylist() == [
        names[c] for c in output.visits["disease_state"]
    ]


def test_reasons_are_dictionary_strings_and_null_when_not_discontinued(output):
    batch = output.patients_batch()
    reasons = batch.column("discontinuation_reason").to_pylist()
    codes = output.patients["discontinuation_reason"]
    names = ["poor_vision", "high_injections", "long_treatment"]
    assert reasons == [None if c == -1 else names[c] for c in codes]
    assert any(r is not None for r in reasons)


def test_numpy_view_reads_values_without_copying_and_refuses_nulls():
    values = np.arange(10, dtype=np.int32)
    array = pa.Array.from_buffers(pa.int32(), 10, [None, pa.py_buffer(values)])
    view = numpy_view(array.slice(3, 4), np.int32)
    assert view.tolist() == [3, 4, 5, 6]
    assert np.shares_memory(view, values)
    chunked = pa.chunked_array([array.slice(0, 2), array.slice(5, 2)])
    assert numpy_view(chunked, np.int32).tolist() == [0, 1, 5, 6]
    with pytest.raises(ValueError, match="without nulls"):
        numpy_view(pa.array([1, None], type=pa.int32()), np.int32)
