"""Probabilistic sensitivity analysis of a comparison: K parameter draws, each on the same patients.

Each draw takes the calibrated parameters from the calibration's joint uncertainty and the
others from the uncertainty file (engine.psa). A draw that changes model parameters is
simulated again: every arm, every block, the same seed, so the draw's arms share their
patients (common random numbers) and draws differ only by their parameters. A draw that
changes only prices or utilities is served from the base simulation's moments without
simulating (costs and QALYs are linear in the per-patient vector, engine.compare.valuation).

Blocks of all draws share one pool of worker processes (or one Dask cluster, given a
`distributed.Client`: engine.compare.executors), a bounded number in flight. A draw's
row is written to ``psa/draw-NNNNNN.json`` (temporary name, then rename) once its blocks are
merged; resume skips the rows on disk, so a killed PSA resumes to the identical result.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from engine.compare.block import BlockSummary
from engine.compare.executors import open_blocks
from engine.compare.runner import CompareCancelled, CompareSpec, block_plan, run_block_task
from engine.compare.totals import CompareTotals, merge_blocks
from engine.compare.valuation import ArmWeights
from engine.run_dir import write_atomically

__all__ = ["PSA_DIR", "DrawRow", "draw_row", "finished_rows", "run_psa_draws"]

PSA_DIR = "psa"
_IN_FLIGHT_PER_WORKER = 2


class DrawRow(msgspec.Struct, frozen=True, kw_only=True):
    """One draw's summary: per arm mean discounted cost and QALYs, per pair the increments."""

    draw: int
    resimulated: bool
    cost: list[float]  # per arm, mean discounted cost per patient
    qalys: list[float]  # per arm, mean discounted QALYs per patient
    incremental_cost: list[float]  # per pair (second minus first)
    incremental_qalys: list[float]
    incremental_cost_se: list[float]  # Monte Carlo standard error within the draw
    incremental_qalys_se: list[float]
    parameters: dict[str, float]  # the draw's values, by path


def draw_row(
    draw: int,
    resimulated: bool,
    totals: CompareTotals,
    weights: list[ArmWeights],
    parameters: dict[str, float],
) -> DrawRow:
    """A draw's row from its totals and its arms' weights."""
    cost = [
        arm.features.linear(w.cost, w.constant)[0]
        for arm, w in zip(totals.arms, weights, strict=True)
    ]
    qalys = [arm.features.linear(w.qaly)[0] for arm, w in zip(totals.arms, weights, strict=True)]
    d_cost, d_qaly, se_cost, se_qaly = [], [], [], []
    for pair in totals.pairs:
        a, b = weights[pair.first], weights[pair.second]
        n = pair.features.count
        for first, second, means, ses in (
            (a.cost, b.cost, d_cost, se_cost),
            (a.qaly, b.qaly, d_qaly, se_qaly),
        ):
            mean, variance = pair.features.linear(np.concatenate([second, second - first]))
            means.append(mean)
            ses.append(float(np.sqrt(variance / n)) if n > 1 else float("nan"))
    return DrawRow(
        draw=draw,
        resimulated=resimulated,
        cost=cost,
        qalys=qalys,
        incremental_cost=d_cost,
        incremental_qalys=d_qaly,
        incremental_cost_se=se_cost,
        incremental_qalys_se=se_qaly,
        parameters=parameters,
    )


def finished_rows(directory: Path) -> dict[int, DrawRow]:
    """Draw rows already written (temporary files of a killed write are removed)."""
    folder = directory / PSA_DIR
    rows: dict[int, DrawRow] = {}
    if not folder.is_dir():
        return rows
    decoder = msgspec.json.Decoder(DrawRow)
    for path in sorted(folder.glob("draw-*")):
        if not path.name.endswith(".json"):
            path.unlink(missing_ok=True)
            continue
        row = decoder.decode(path.read_bytes())
        rows[row.draw] = row
    return rows


@dataclass(frozen=True)
class DrawPlan:
    """What a draw needs: its spec when it is simulated again (None: reuse the base)."""

    draw: int
    spec: CompareSpec | None
    weights: list[ArmWeights]
    parameters: dict[str, float]


def run_psa_draws(
    directory: Path,
    base: CompareTotals,
    plans: list[DrawPlan],
    workers: int,
    on_draw: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    client: Any | None = None,
) -> list[DrawRow]:
    """Every draw's row, simulating the draws that need it; rows on disk are kept.

    Draws simulate in `workers` local processes or, given `client` (a `distributed.Client`
    the caller owns), as tasks on its Dask cluster; the rows are the same.
    """
    (directory / PSA_DIR).mkdir(parents=True, exist_ok=True)
    rows = finished_rows(directory)
    total = len(plans)
    if on_draw:
        on_draw(len(rows), total)
    todo = [plan for plan in plans if plan.draw not in rows]
    for plan in [p for p in todo if p.spec is None]:
        rows[plan.draw] = _save(
            directory, draw_row(plan.draw, False, base, plan.weights, plan.parameters)
        )
        if on_draw:
            on_draw(len(rows), total)
    simulated = [plan for plan in todo if plan.spec is not None]
    if simulated:
        for row in _simulate_draws(
            directory, simulated, workers, on_draw, cancel, rows, total, client
        ):
            rows[row.draw] = row
    return [rows[plan.draw] for plan in plans]


def _simulate_draws(
    directory: Path,
    plans: list[DrawPlan],
    workers: int,
    on_draw: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    rows: dict[int, DrawRow],
    total: int,
    client: Any | None,
) -> list[DrawRow]:
    decoder = msgspec.msgpack.Decoder(BlockSummary)
    tasks: list[tuple[int, bytes, int, list[int]]] = []
    expected: dict[int, int] = {}
    by_draw = {plan.draw: plan for plan in plans}
    for plan in plans:
        assert plan.spec is not None
        spec_json = msgspec.json.encode(plan.spec)
        blocks = block_plan(plan.spec)
        expected[plan.draw] = len(blocks)
        tasks.extend((plan.draw, spec_json, b, shards) for b, shards in enumerate(blocks))
    done: list[DrawRow] = []
    collected: dict[int, list[BlockSummary]] = {}
    queue = iter(tasks)
    pending: dict[concurrent.futures.Future[bytes], int] = {}
    with open_blocks(workers, client) as blocks:
        limit = blocks.slots * _IN_FLIGHT_PER_WORKER
        while True:
            while len(pending) < limit:
                task = next(queue, None)
                if task is None:
                    break
                draw, spec_json, block, shards = task
                label = f"psa-draw-{draw}-block-{block}"
                pending[blocks.submit(label, run_block_task, spec_json, block, shards)] = draw
            if not pending:
                break
            finished, _ = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if cancel is not None and cancel.is_set():
                raise CompareCancelled
            for future in finished:
                draw = pending.pop(future)
                collected.setdefault(draw, []).append(decoder.decode(blocks.result(future)))
                if len(collected[draw]) == expected[draw]:
                    plan = by_draw[draw]
                    totals = merge_blocks(collected.pop(draw))
                    row = _save(
                        directory, draw_row(draw, True, totals, plan.weights, plan.parameters)
                    )
                    done.append(row)
                    rows[draw] = row
                    if on_draw:
                        on_draw(len(rows), total)
    return done


def _save(directory: Path, row: DrawRow) -> DrawRow:
    write_atomically(directory / PSA_DIR / f"draw-{row.draw:06d}.json", msgspec.json.encode(row))
    return row


def rows_table(rows: list[DrawRow], arm_names: list[str], pair_names: list[str]) -> dict[str, Any]:
    """Columns of the per-draw table (for Parquet): one row per draw."""
    columns: dict[str, Any] = {
        "draw": [r.draw for r in rows],
        "resimulated": [r.resimulated for r in rows],
    }
    for a, name in enumerate(arm_names):
        columns[f"cost[{name}]"] = [r.cost[a] for r in rows]
        columns[f"qalys[{name}]"] = [r.qalys[a] for r in rows]
    for p, name in enumerate(pair_names):
        columns[f"incremental_cost[{name}]"] = [r.incremental_cost[p] for r in rows]
        columns[f"incremental_qalys[{name}]"] = [r.incremental_qalys[p] for r in rows]
        columns[f"incremental_cost_se[{name}]"] = [r.incremental_cost_se[p] for r in rows]
        columns[f"incremental_qalys_se[{name}]"] = [r.incremental_qalys_se[p] for r in rows]
    keys = sorted({key for r in rows for key in r.parameters})
    for key in keys:
        columns[f"parameter[{key}]"] = [r.parameters.get(key, float("nan")) for r in rows]
    return columns
