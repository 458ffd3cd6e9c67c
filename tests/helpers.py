"""Building protocols and runs for tests: start from the bundled v1 protocol, change fields."""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import msgspec
import msgspec.yaml
import yaml

from engine.model.parameters import Recruitment, RunParameters
from engine.model.protocol_loader import load_protocol_text
from engine.model.v1.kernel import simulate_shards
from engine.model.v1.protocol import Protocol
from engine.model.v1.tables import compile_protocol

STATES = ("NAIVE", "STABLE", "ACTIVE", "HIGHLY_ACTIVE")
# The bundled visit-based (v1) protocol the tests build on: the default protocol until
# issue 12 (now the time-based aflibercept_treat_and_extend_altair). Tests of the visit-based
# model, of format 1 and of the pipeline name it, so a change of default does not change them.
V1_PROTOCOL = "aflibercept_treat_and_extend"


def default_protocol_dict() -> dict[str, Any]:
    """The bundled v1 protocol (`V1_PROTOCOL`) as plain YAML data."""
    path = resources.files("engine") / "protocols" / f"{V1_PROTOCOL}.yaml"
    return msgspec.yaml.decode(path.read_bytes())


def with_changes(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Copy of `base` with dotted-path keys set (``"baseline_vision.std": 0``)."""
    out = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def protocol_yaml(**changes: Any) -> str:
    """YAML text of the v1 protocol with `changes` (``__`` in names means ``.``)."""
    data = with_changes(
        default_protocol_dict(), {k.replace("__", "."): v for k, v in changes.items()}
    )
    return yaml.safe_dump(data, sort_keys=False)


def make_protocol(**changes: Any) -> Protocol:
    """The v1 protocol with `changes` applied, validated."""
    return load_protocol_text(protocol_yaml(**changes), source="test.yaml")


def constant_matrix(target: str) -> dict[str, dict[str, float]]:
    """A transition matrix that sends every state to `target`."""
    return {row: {col: 1.0 if col == target else 0.0 for col in STATES} for row in STATES}


def matrix(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """A full matrix from partial rows (missing entries 0)."""
    return {row: {col: rows.get(row, {}).get(col, 0.0) for col in STATES} for row in STATES}


def simulate(
    protocol: Protocol,
    n_patients: int,
    years: float = 5.0,
    seed: int = 1,
    shard_size: int = 4096,
    recruitment: Recruitment | None = None,
    blocks: list[list[int]] | None = None,
):
    """Run the kernel directly; returns (params, list of ShardOutput in shard order)."""
    params = RunParameters(
        n_patients=n_patients,
        years=years,
        seed=seed,
        shard_size=shard_size,
        recruitment=recruitment or Recruitment(),
    )
    tables = compile_protocol(protocol)
    if blocks is None:
        blocks = [list(range(params.shard_count))]
    outputs = [o for block in blocks for o in simulate_shards(tables, params, block)]
    return params, sorted(outputs, key=lambda o: o.shard_index)


def concat_columns(outputs, table: str) -> dict[str, Any]:
    """Concatenate one table's numpy columns over shard outputs."""
    import numpy as np

    names = getattr(outputs[0], table).keys()
    return {name: np.concatenate([getattr(o, table)[name] for o in outputs]) for name in names}


def to_struct_dict(struct: msgspec.Struct) -> dict[str, Any]:
    """A struct as plain builtins (for comparisons in messages)."""
    return msgspec.to_builtins(struct)
