"""Baseline vision as a distribution: the struct and its checks, shared by both models.

The origin app writes `baseline_vision_distribution` the same way in its current visit-based
files, its `populations/` files and its time-based protocols, so the visit-based model
(`engine.model.v1`) and the time-based model (`engine.model.v2`) read it through this one
struct. How each model samples it stays with the model (v1: `engine.model.v1.baseline`;
v2: `engine.model.v2.population_tables` and `engine.model.v2.patients`), since their draws
and their tables differ and each model's rows must not change. docs/model.md section 2 and
docs/model-v1-layout.md say what each type means.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from engine.errors import ProtocolError
from engine.model.v1.fields import BaselineMean, BaselineStd, Letters, Probability, Range, Schema

__all__ = ["NEEDED_BY_TYPE", "BaselineVisionDistribution", "BetaShape", "check_distribution"]

# Beta shapes of 1 and above have a bounded density, so the tabulated inverse CDF is exact
# to the grid; the origin's files use 2 and 3.5.
BetaShape = Annotated[float, Meta(gt=0.0), Range(1, 100, "(a shape parameter)")]

# Fields each type needs besides min and max.
NEEDED_BY_TYPE: dict[str, tuple[str, ...]] = {
    "normal": ("mean", "std"),
    "uniform": (),
    "beta": ("alpha", "beta"),
    "beta_with_threshold": ("alpha", "beta", "threshold", "threshold_reduction"),
}


class BaselineVisionDistribution(Schema, kw_only=True):
    """Vision at enrolment, in letters, drawn once per patient, within [min, max].

    ``normal`` (the default when `type` is absent): Normal(mean, std). ``uniform``: uniform
    on [min, max] (the visit-based model draws whole letters, the time-based model continuous
    letters). ``beta``: min + (max - min) * Beta(alpha, beta). ``beta_with_threshold``: that beta's density times (1 - threshold_reduction)
    above `threshold` letters, renormalised. `name`, `description` and `source` are labels
    (the origin's `populations/` files carry them); no model reads them. Which fields each
    type needs is `NEEDED_BY_TYPE`, checked by `check_distribution`.
    """

    name: str = ""
    description: str = ""
    source: str = ""
    type: Literal["normal", "uniform", "beta", "beta_with_threshold"] = "normal"
    mean: BaselineMean | None = None
    std: BaselineStd | None = None
    min: Letters = 0.0
    max: Letters = 100.0
    alpha: BetaShape | None = None
    beta: BetaShape | None = None
    threshold: Letters | None = None
    threshold_reduction: Probability | None = None


def check_distribution(dist: BaselineVisionDistribution, source: str, path: str) -> None:
    """Refuse a distribution missing a field its type needs, or with min not below max.

    Raises `ProtocolError` naming `path` and the field. Checks one model adds (the
    visit-based model refuses parameters of another type) stay with that model.
    """
    for name in NEEDED_BY_TYPE[dist.type]:
        if getattr(dist, name) is None:
            raise ProtocolError(
                source, f"{path}.{name}", f"required for type {dist.type}; it is missing"
            )
    if dist.min >= dist.max:
        raise ProtocolError(
            source,
            f"{path}.max",
            f"is {dist.max:g}, not above min {dist.min:g}; the range needs min < max",
        )
