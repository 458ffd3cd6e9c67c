"""The Run page's recruitment fields, as the CLI's `--recruitment`, `--recruitment-days` and
`--patients-per-week`: everyone on day 0 (a cohort), arrivals spread over a period, or arrivals
at a weekly rate. Only the field the chosen way needs is shown; its value is checked with the
form's other numbers (a message, never a silent clamp) and then by `validate_parameters`,
which knows the horizon."""

from __future__ import annotations

import panel as pn

from engine.errors import ParameterError
from engine.model.parameters import Recruitment

__all__ = ["RecruitmentFields", "recruitment_arguments"]

MODES = {
    "All at the start (a cohort)": "cohort",
    "Over a period": "period",
    "At a weekly rate": "rate",
}


def recruitment_arguments(recruitment: Recruitment) -> list[str]:
    """The `amdsim run` arguments that ask for `recruitment`."""
    arguments = ["--recruitment", recruitment.mode]
    if recruitment.mode == "period":
        arguments += ["--recruitment-days", str(recruitment.period_days)]
    if recruitment.mode == "rate":
        arguments += ["--patients-per-week", repr(recruitment.patients_per_week)]
    return arguments


class RecruitmentFields:
    """The choice of how patients enter, and the one number it needs."""

    def __init__(self) -> None:
        self.mode = pn.widgets.Select(
            label="Recruitment",
            options=MODES,
            value="cohort",
            width=340,
            css_classes=["recruitment-mode"],
        )
        # No `start`: a value below the minimum is refused with a message by `value`.
        self.days = pn.widgets.IntInput(
            label="Recruitment period (days)",
            value=365,
            width=165,
            visible=False,
            css_classes=["recruitment-days"],
        )
        self.per_week = pn.widgets.FloatInput(
            label="Patients per week",
            value=20.0,
            step=1.0,
            width=165,
            visible=False,
            css_classes=["patients-per-week"],
        )
        self.mode.param.watch(lambda _: self._show_needed(), "value")
        self.layout = pn.Column(self.mode, pn.Row(self.days, self.per_week))

    def _show_needed(self) -> None:
        self.days.visible = self.mode.value == "period"
        self.per_week.visible = self.mode.value == "rate"

    def value(self) -> Recruitment:
        """The recruitment the fields ask for; `ParameterError` saying what is wrong."""
        mode = self.mode.value
        if mode == "period":
            days = self.days.value
            if not isinstance(days, int) or isinstance(days, bool):
                raise ParameterError("recruitment period: enter a whole number of days")
            return Recruitment(mode="period", period_days=days)
        if mode == "rate":
            rate = self.per_week.value
            if not isinstance(rate, int | float) or isinstance(rate, bool):
                raise ParameterError("patients per week: enter a number")
            return Recruitment(mode="rate", patients_per_week=float(rate))
        return Recruitment()
