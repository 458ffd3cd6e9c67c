"""Utility tables: the bundled Brown 2000 table and one-line errors for bad tables."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.economics.utilities import (
    UtilityTable,
    default_utility_table_path,
    load_utility_table,
)
from engine.errors import UtilityFileError

TABLE = """\
format_version: 1
source: "test"
lower_edges: [0, 35, 70]
utilities: [0.5, 0.7, 0.9]
fellow_eye: [0.2, 0.3, 0.5]
treated_eye_better_share: 0.4
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "utilities.yaml"
    path.write_text(text)
    return path


def test_bundled_table_has_brown_2000_time_trade_off_utilities():
    table = load_utility_table(default_utility_table_path())
    assert table.lower_edges == (0, 20, 50, 65, 80)
    assert table.utilities == (0.40, 0.52, 0.57, 0.81, 0.89)
    assert sum(table.fellow_eye) == pytest.approx(1.0, abs=1e-6)
    assert 0 <= table.treated_eye_better_share <= 1
    assert "Brown" in table.source and "2000" in table.source


def test_a_valid_table_loads_into_a_frozen_struct(tmp_path):
    table = load_utility_table(_write(tmp_path, TABLE))
    assert table == UtilityTable(
        source="test",
        lower_edges=(0.0, 35.0, 70.0),
        utilities=(0.5, 0.7, 0.9),
        fellow_eye=(0.2, 0.3, 0.5),
        treated_eye_better_share=0.4,
    )
    assert msgspec.structs.replace(table, utilities=(0.4, 0.6, 0.8)).utilities[0] == 0.4


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "fellow_eye: [0.2, 0.3, 0.5]",
            "fellow_eye: [0.2, 0.3, 0.4]",
            "$.fellow_eye: sums to 0.9; the probabilities must sum to 1 +/- 1e-06",
        ),
        (
            "lower_edges: [0, 35, 70]",
            "lower_edges: [5, 35, 70]",
            "$.lower_edges[0]: must be 0 (the first band starts at 0 letters), got 5",
        ),
        (
            "lower_edges: [0, 35, 70]",
            "lower_edges: [0, 70, 35]",
            "$.lower_edges[2]: must be above the previous edge 70 (edges ascend), got 35",
        ),
        (
            "utilities: [0.5, 0.7, 0.9]",
            "utilities: [0.5, 0.7, 1.2]",
            "$.utilities[2]: must be a number from -0.6 to 1, got 1.2",
        ),
        (
            "utilities: [0.5, 0.7, 0.9]",
            "utilities: [0.5, 0.7]",
            "$.utilities: has 2 values for 3 bands; give one per lower edge",
        ),
        (
            "treated_eye_better_share: 0.4",
            "treated_eye_better_share: -0.1",
            "$.treated_eye_better_share: must be a number from 0 to 1, got -0.1",
        ),
        (
            'source: "test"\n',
            "",
            "$.source: required field is missing",
        ),
    ],
)
def test_bad_tables_are_one_error_naming_the_file_and_field(tmp_path, old, new, message):
    path = _write(tmp_path, TABLE.replace(old, new))
    with pytest.raises(UtilityFileError) as caught:
        load_utility_table(path)
    assert str(caught.value) == f"{path}: {message}"


def test_missing_and_non_yaml_files_are_utility_file_errors(tmp_path):
    with pytest.raises(UtilityFileError, match="cannot be read \\(no such file\\)"):
        load_utility_table(tmp_path / "absent.yaml")
    with pytest.raises(UtilityFileError, match="is not valid YAML"):
        load_utility_table(_write(tmp_path, "utilities: [0.5,\n"))
