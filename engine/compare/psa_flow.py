"""`amdsim compare --psa K`: from the request to the draws' rows and the PSA outputs.

Plans K draws (engine.psa.sampling: calibrated parameters jointly from the calibration's
covariance, the others from the uncertainty file), prices each draw (engine.compare.
psa_pricing), runs them (engine.compare.psa_run: economic-only draws reuse the base
simulation, the others simulate every arm on the same patients again) and writes:

- ``psa/draws.parquet``: one row per draw (per-arm cost and QALYs, per-pair increments and
  their Monte Carlo standard errors, every drawn parameter);
- ``psa/summary.json``: intervals, the acceptability curve, EVPI and Monte Carlo error against
  the spread between draws, per pair and threshold;
- ``psa/ce_plane_<pair>.svg`` and ``psa/ceac.svg``.

A draw whose model values the protocol loader refuses (a combination outside a range) is
skipped and counted, never silently replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.compare.psa_pricing import apply_economic
from engine.compare.psa_run import PSA_DIR, DrawPlan, DrawRow, rows_table, run_psa_draws
from engine.compare.runner import ArmSpec, CompareSpec
from engine.compare.setup import (
    CompareRequest,
    Valuation,
    currency_symbol,
    load_valuation,
    valuation_weights,
)
from engine.compare.totals import CompareTotals
from engine.errors import ProtocolError
from engine.psa.charts import ce_plane_svg, ceac_svg
from engine.psa.sampling import apply_model, draw_parameters, load_calibration_uncertainty
from engine.psa.summary import ceac, evpi, intervals, monte_carlo_vs_between
from engine.psa.uncertainty import load_uncertainty
from engine.run_dir import write_atomically

__all__ = ["CEAC_STEP", "plan_draws", "run_psa"]

CEAC_STEP = 1_000.0  # willingness-to-pay grid step of the acceptability curve, per QALY
CEAC_MAX = 100_000.0


def plan_draws(
    spec: CompareSpec, request: CompareRequest, valuation: Valuation
) -> tuple[list[DrawPlan], list[int], str]:
    """Every draw's plan, the draws the loader refused, and how bounds were handled."""
    psa = request.psa
    assert psa is not None
    uncertain = []
    if psa.uncertainty:
        for arm in spec.arms:  # every arm's parameter set must know every model path
            uncertain = load_uncertainty(Path(psa.uncertainty), arm.protocol)
    calibration = load_calibration_uncertainty(Path(psa.calibration)) if psa.calibration else None
    draws = draw_parameters(psa.draws, psa.seed, calibration, uncertain)
    plans: list[DrawPlan] = []
    refused: list[int] = []
    for index in range(psa.draws):
        draw = draws.draw(index)
        priced = _priced(valuation, draw.economic)
        weights = [
            valuation_weights(priced, arm.protocol, arm.source, request.drugs) for arm in spec.arms
        ]
        draw_spec = None
        if not draw.economic_only:
            try:
                draw_spec = _with_model(spec, draw)
            except ProtocolError:
                refused.append(index)
                continue
        plans.append(DrawPlan(index, draw_spec, weights, dict(draw.parameters)))
    return plans, refused, draws.truncation.describe()


def run_psa(
    directory: Path,
    spec: CompareSpec,
    request: CompareRequest,
    base: CompareTotals,
    workers: int,
    on_draw: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    client: Any | None = None,
) -> dict[str, Any]:
    """Run (or finish) the PSA and write its outputs; returns the summary document.

    Draws that simulate run in `workers` local processes, or on the Dask cluster of
    `client` (a `distributed.Client` the caller owns).
    """
    valuation = load_valuation(request, resumed=True)  # files checked and read once
    plans, refused, truncation = plan_draws(spec, request, valuation)
    rows = run_psa_draws(directory, base, plans, workers, on_draw, cancel, client)
    arm_names = [arm.name for arm in spec.arms]
    pairs = [(p.first, p.second) for p in base.pairs]
    pair_names = [f"{arm_names[b]} minus {arm_names[a]}" for a, b in pairs]
    folder = directory / PSA_DIR
    table = pa.table(rows_table(rows, arm_names, pair_names))
    temporary = folder / "draws.parquet.tmp"
    pq.write_table(table, temporary)
    temporary.replace(folder / "draws.parquet")
    summary = summarise(rows, arm_names, pairs, request.thresholds)
    assert request.psa is not None
    summary |= {
        "draws": request.psa.draws,
        "seed": request.psa.seed,
        "uncertainty": request.psa.uncertainty,
        "calibration": request.psa.calibration,
        "refused_draws": refused,
        "bounds": truncation,
    }
    symbol = currency_symbol(valuation.costs.currency)
    for (a, b), name in zip(pairs, pair_names, strict=True):
        p = pairs.index((a, b))
        svg = ce_plane_svg(
            np.array([r.incremental_cost[p] for r in rows]),
            np.array([r.incremental_qalys[p] for r in rows]),
            request.thresholds,
            symbol,
            f"Cost-effectiveness plane: {name}",
        )
        write_atomically(folder / f"ce_plane_{p + 1}.svg", svg.encode())
    curve = summary["acceptability"]
    write_atomically(
        folder / "ceac.svg",
        ceac_svg(
            np.asarray(curve["thresholds"]),
            np.asarray(curve["probability_best"]),
            arm_names,
            symbol,
        ).encode(),
    )
    write_atomically(folder / "summary.json", msgspec.json.format(msgspec.json.encode(summary)))
    return summary


def summarise(
    rows: list[DrawRow],
    arm_names: list[str],
    pairs: list[tuple[int, int]],
    thresholds: list[float],
) -> dict[str, Any]:
    """Intervals, acceptability, EVPI and Monte Carlo error against spread, from the rows."""
    costs = np.array([r.cost for r in rows], dtype=np.float64)
    qalys = np.array([r.qalys for r in rows], dtype=np.float64)
    grid = np.union1d(np.arange(0.0, CEAC_MAX + 1.0, CEAC_STEP), np.asarray(thresholds))
    best = ceac(costs, qalys, grid)
    at_thresholds = ceac(costs, qalys, np.asarray(thresholds))
    value = evpi(costs, qalys, np.asarray(thresholds))
    cost_low, cost_high = intervals(costs)
    qaly_low, qaly_high = intervals(qalys)
    arms = [
        {
            "name": name,
            "cost": {
                "mean": float(costs[:, a].mean()),
                "low": float(cost_low[a]),
                "high": float(cost_high[a]),
            },
            "qalys": {
                "mean": float(qalys[:, a].mean()),
                "low": float(qaly_low[a]),
                "high": float(qaly_high[a]),
            },
            "probability_cost_effective": [
                {"threshold": t, "probability": float(at_thresholds[i, a])}
                for i, t in enumerate(thresholds)
            ],
        }
        for a, name in enumerate(arm_names)
    ]
    pair_summaries = []
    for p, (a, b) in enumerate(pairs):
        d_cost = np.array([r.incremental_cost[p] for r in rows])
        d_qaly = np.array([r.incremental_qalys[p] for r in rows])
        se_cost = np.array([r.incremental_cost_se[p] for r in rows])
        se_qaly = np.array([r.incremental_qalys_se[p] for r in rows])
        pair_summaries.append(
            {
                "first": arm_names[a],
                "second": arm_names[b],
                "incremental_cost": _interval(d_cost),
                "incremental_qalys": _interval(d_qaly),
                "probability_second_cost_effective": [
                    {"threshold": t, "probability": float(np.mean(t * d_qaly - d_cost > 0))}
                    for t in thresholds
                ],
                "monte_carlo_vs_between": {
                    "incremental_cost": monte_carlo_vs_between(d_cost, se_cost),
                    "incremental_qalys": monte_carlo_vs_between(d_qaly, se_qaly),
                },
            }
        )
    return {
        "resimulated_draws": int(sum(r.resimulated for r in rows)),
        "served_without_resimulation": int(sum(not r.resimulated for r in rows)),
        "arms": arms,
        "pairs": pair_summaries,
        "evpi_per_patient": [
            {"threshold": t, "value": float(value[i])} for i, t in enumerate(thresholds)
        ],
        "acceptability": {
            "thresholds": grid.tolist(),
            "probability_best": best.tolist(),
            "arms": arm_names,
        },
    }


def _interval(values: np.ndarray) -> dict[str, float]:
    low, high = intervals(values)
    return {"mean": float(values.mean()), "low": float(low), "high": float(high)}


def _priced(valuation: Valuation, economic: dict[str, float]) -> Valuation:
    if not economic:
        return valuation
    return Valuation.of(*apply_economic(valuation.costs, valuation.utilities, economic))


def _with_model(spec: CompareSpec, draw: Any) -> CompareSpec:
    arms = [
        ArmSpec(name=arm.name, source=arm.source, protocol=apply_model(arm.protocol, draw))
        for arm in spec.arms
    ]
    return msgspec.structs.replace(spec, arms=arms)
