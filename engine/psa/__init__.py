"""Probabilistic sensitivity analysis: uncertain parameters, their draws and the draws' summaries.

`load_uncertainty` reads an uncertainty file; `load_calibration_uncertainty` a calibration's
covariance; `draw_parameters` draws K parameter sets reproducibly by (seed, draw); `apply_model`
puts a draw into a protocol. `engine.psa.summary` has the acceptability curve, EVPI, intervals
and Monte Carlo error against spread; `engine.psa.charts` the cost-effectiveness plane and
acceptability curves as SVG. See docs/psa.md.
"""

from engine.psa.charts import ce_plane_svg, ceac_svg
from engine.psa.sampling import (
    BoundsReport,
    CalibrationUncertainty,
    Draw,
    PsaDraws,
    apply_model,
    draw_parameters,
    load_calibration_uncertainty,
)
from engine.psa.summary import (
    ceac,
    evpi,
    intervals,
    monte_carlo_vs_between,
    net_monetary_benefit,
)
from engine.psa.uncertainty import Uncertain, load_uncertainty

__all__ = [
    "BoundsReport",
    "CalibrationUncertainty",
    "Draw",
    "PsaDraws",
    "Uncertain",
    "apply_model",
    "ce_plane_svg",
    "ceac",
    "ceac_svg",
    "draw_parameters",
    "evpi",
    "intervals",
    "load_calibration_uncertainty",
    "load_uncertainty",
    "monte_carlo_vs_between",
    "net_monetary_benefit",
]
