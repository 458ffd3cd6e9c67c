"""The comparison's document: per arm and per pair, in numbers a clinician and an economist read.

Per arm: the outcome table (DESIGN 4b), injections, visits, discounted and undiscounted cost
and QALYs per patient with 95 % CIs, cost per patient-year and per injection delivered, and
clinic workload. Per pair (second arm minus first, the same patients in both): mean paired
differences with 95 % CIs for VA change at 12, 24 and 60 months, injections, visits, costs
and QALYs; the ICER with Fieller's interval, dominance in words, and net monetary benefit
with its CI at each threshold. Intervals use Student's t with n - 1 degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

from engine.compare.block import PAIRED_MONTHS
from engine.compare.features import VISIT_TYPES
from engine.compare.matrix_moments import MatrixMoments
from engine.compare.totals import CompareTotals, PairTotals
from engine.compare.valuation import ArmWeights
from engine.compare.workload import workload_summary
from engine.economics.cost_effectiveness import (
    dominance,
    fieller_interval,
    icer,
    net_monetary_benefit,
)
from engine.stats.moments import Moments
from engine.stats.outcome_table import outcome_table

__all__ = ["ReportSettings", "comparison_document", "estimate"]


@dataclass(frozen=True)
class ReportSettings:
    """What the document needs besides the totals."""

    arm_names: list[str]
    weights: list[ArmWeights]
    thresholds: list[float]
    session_capacity: float
    valuation: dict[str, Any]  # cost file, utilities, discount rates: shown as given
    run: dict[str, Any]  # patients, years, seed, ...


def estimate(mean: float, variance: float, count: int, level: float = 0.95) -> dict[str, Any]:
    """Mean with its CI (t with n - 1 degrees of freedom), SD and n, for the document.

    No patient (a month beyond the horizon): every figure is None, never a made-up 0.
    """
    if count == 0:
        return {"mean": None, "low": None, "high": None, "sd": None, "n": 0}
    sd = math.sqrt(variance) if count > 1 and not math.isnan(variance) else math.nan
    if count > 1 and not math.isnan(sd):
        half = float(scipy_stats.t.ppf(0.5 + level / 2, count - 1)) * sd / math.sqrt(count)
    else:
        half = math.nan
    return {
        "mean": _finite(mean),
        "low": _finite(mean - half),
        "high": _finite(mean + half),
        "sd": _finite(sd),
        "n": count,
    }


def comparison_document(totals: CompareTotals, settings: ReportSettings) -> dict[str, Any]:
    """The whole comparison.json document."""
    arms = [_arm(totals, a, settings) for a in range(len(totals.arms))]
    pairs = [_pair(totals, pair, settings) for pair in totals.pairs]
    return {
        "run": settings.run,
        "valuation": settings.valuation,
        "arms": arms,
        "pairs": pairs,
    }


def _linear(moments: MatrixMoments, weights: npt.NDArray[np.float64], constant: float = 0.0):
    mean, variance = moments.linear(weights, constant)
    return estimate(mean, variance, moments.count)


def _arm(totals: CompareTotals, a: int, settings: ReportSettings) -> dict[str, Any]:
    arm = totals.arms[a]
    w = settings.weights[a]
    f = arm.features
    cost = _linear(f, w.cost, w.constant)
    cost_plain = _linear(f, w.cost_plain, w.constant)
    injections = _linear(f, w.injections)
    life_years = _linear(f, w.life_years)
    table = outcome_table(arm.counts)
    return {
        "name": settings.arm_names[a],
        "patients": f.count,
        "outcome_table": msgspec.to_builtins(table) if table is not None else None,
        "per_patient": {
            "injections": injections,
            "visits": _linear(f, w.visits),
            **{
                f"visits_{kind}": _linear(f, _unit(f, _index_of(f, w, kind)))
                for kind in VISIT_TYPES
            },
            "cost": cost,
            "cost_undiscounted": cost_plain,
            "qalys": _linear(f, w.qaly),
            "qalys_undiscounted": _linear(f, w.qaly_plain),
            "life_years": life_years,
            "life_years_discounted": _linear(f, w.life_years_disc),
        },
        "cost_per_patient_year": _ratio(cost_plain["mean"], life_years["mean"]),
        "cost_per_injection": _ratio(cost_plain["mean"], injections["mean"]),
        "workload": workload_summary(arm.weekly, settings.session_capacity, f.count),
    }


def _pair(totals: CompareTotals, pair: PairTotals, settings: ReportSettings) -> dict[str, Any]:
    a, b = settings.weights[pair.first], settings.weights[pair.second]
    f = pair.features

    def difference(first: npt.NDArray[np.float64], second: npt.NDArray[np.float64]):
        return np.concatenate([second, second - first])

    def paired(first, second) -> dict[str, Any]:
        mean, variance = f.linear(difference(first, second))
        return estimate(mean, variance, f.count)

    dc = difference(a.cost, b.cost)
    dq = difference(a.qaly, b.qaly)
    mean_dc, var_dc = f.linear(dc)
    mean_dq, var_dq = f.linear(dq)
    cov = f.linear_covariance(dc, dq)
    n = f.count
    differences: dict[str, Any] = {
        f"va_change_m{month}": _moments_estimate(moments)
        for month, moments in zip(PAIRED_MONTHS, pair.va, strict=True)
    }
    differences |= {
        "injections": paired(a.injections, b.injections),
        "visits": paired(a.visits, b.visits),
        "cost": estimate(mean_dc, var_dc, n),
        "cost_undiscounted": paired(a.cost_plain, b.cost_plain),
        "qalys": estimate(mean_dq, var_dq, n),
        "qalys_undiscounted": paired(a.qaly_plain, b.qaly_plain),
        "life_years": paired(a.life_years, b.life_years),
    }
    interval = fieller_interval(mean_dc, mean_dq, var_dc, var_dq, cov, n)
    nmb = []
    for threshold in settings.thresholds:
        mean, low, high = net_monetary_benefit(mean_dc, mean_dq, var_dc, var_dq, cov, n, threshold)
        nmb.append(
            {
                "threshold": threshold,
                "mean": _finite(mean),
                "low": _finite(low),
                "high": _finite(high),
            }
        )
    first_weekly = totals.arms[pair.first].weekly
    second_weekly = totals.arms[pair.second].weekly
    return {
        "first": settings.arm_names[pair.first],
        "second": settings.arm_names[pair.second],
        "same_patients": pair.same_patients,
        "differences": differences,
        "icer": _finite(icer(mean_dc, mean_dq)),
        "icer_interval": {
            "low": _finite(interval.low),
            "high": _finite(interval.high),
            "kind": interval.kind,
        },
        "dominance": dominance(mean_dc, mean_dq),
        "net_monetary_benefit": nmb,
        "workload_difference": workload_summary(
            second_weekly - first_weekly, settings.session_capacity, n, difference=True
        ),
    }


def _moments_estimate(moments: Moments) -> dict[str, Any]:
    return estimate(moments.mean, moments.variance, moments.count)


def _index_of(f: MatrixMoments, w: ArmWeights, kind: str) -> int:
    # visits of one type: the only entry of `w.visits` for that type (plain counts)
    position = VISIT_TYPES.index(kind)
    return int(np.flatnonzero(w.visits)[position])


def _unit(f: MatrixMoments, index: int) -> npt.NDArray[np.float64]:
    out = np.zeros(f.size)
    out[index] = 1.0
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return _finite(numerator / denominator)


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: None for either (the text says what it means)."""
    value = float(value)
    return value if math.isfinite(value) else None


def arm_names_from_sources(sources: Sequence[str]) -> list[str]:
    """Short unique arm names from protocol file stems (a repeated stem gets #2, #3...)."""
    names: list[str] = []
    for source in sources:
        stem = source.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}#{k}", k + 1
        names.append(name)
    return names
