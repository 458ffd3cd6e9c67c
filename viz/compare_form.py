"""The Compare page's "New comparison" form: protocols, cohort, start and cancel.

Starts `amdsim compare` through `viz.compare_launcher` (the same command a terminal runs);
a bad request is said in one line and starts nothing. The comparison then appears in the
page's list and is followed by its status (blocks done of blocks planned).
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

from engine.errors import AmdsimError
from viz.compare_launcher import time_based_protocols
from viz.context import ServerContext
from viz.safe_text import html_text

__all__ = ["CompareForm"]

DEFAULT_PAIR = ["aflibercept_2q8_view", "aflibercept_2q8_then_capped_prn_view"]


class CompareForm:
    """Widgets of the form; `on_started(name)` opens the new comparison on the page."""

    def __init__(self, context: ServerContext, on_started: Callable[[str], None]) -> None:
        self.context = context
        self.on_started = on_started
        options = time_based_protocols(context.protocols_dir)
        self.protocols = pn.widgets.MultiChoice(
            label="Protocols (two or more; each pair is shown as later minus earlier in this list)",
            options=options,
            value=[p for p in DEFAULT_PAIR if p in options],
            width=520,
            css_classes=["compare-protocols"],
        )
        self.patients = pn.widgets.IntInput(label="Patients per arm", value=10_000, start=1,
                                            width=150)  # fmt: skip
        self.years = pn.widgets.FloatInput(label="Years", value=5.0, start=0.1, end=50.0,
                                           step=0.5, width=100)  # fmt: skip
        self.seed = pn.widgets.IntInput(label="Seed", value=42, start=0, width=100)
        self.name = pn.widgets.TextInput(label="Name (optional)", placeholder="compare-<time>",
                                         width=200)  # fmt: skip
        self.start_button = pn.widgets.Button(label="Start comparison", color="primary",
                                              css_classes=["compare-start"], align="end")  # fmt: skip
        self.message = pn.pane.HTML("", disable_math=True, sizing_mode="stretch_width",
                                    css_classes=["compare-form-message"])  # fmt: skip
        self.start_button.on_click(lambda _: self.start())
        self.layout = pn.Card(
            self.protocols,
            pn.Row(self.patients, self.years, self.seed, self.name, self.start_button),
            self.message,
            title="New comparison (same patients in every arm; NHS costs and Brown 2000 "
            "utilities by default)",
            collapsed=False,
            sizing_mode="stretch_width",
        )

    def start(self) -> str | None:
        """Start the comparison the form describes; its name, or None (the message says why)."""
        try:
            name = self.context.comparison_launcher.start(
                list(self.protocols.value or []),
                int(self.patients.value or 0),
                float(self.years.value or 0.0),
                int(self.seed.value or 0),
                self.name.value or "",
            )
        except AmdsimError as exc:
            self.message.object = f"<p style='color:#b71c1c'>{html_text(str(exc))}</p>"
            return None
        self.message.object = (
            f"<p>Started <b>{html_text(name)}</b>: "
            f"<code>amdsim compare {html_text(' '.join(self.protocols.value))} --patients "
            f"{int(self.patients.value):,} --years {float(self.years.value):g} --seed "
            f"{int(self.seed.value)}</code></p>"
        )
        self.on_started(name)
        return name
