"""A simple protocol editor on the Run page: copy the chosen protocol, change its intervals and
loading doses, see at once whether it is valid, and save it under a new name in the
protocols folder (`amdsim dashboard --protocols-dir DIR`), where the Run page lists it.

Only the regimen's numbers are edited; disease, vision and population stay those of the
protocol copied, so a copy differs from its original in the regimen alone. A time-based
protocol's parameter files are referred to by absolute path in the copy (they stay where the
original's are). Every change is validated as `amdsim validate` would (the same messages);
nothing is written until Save, never over an existing file, and the file is written to a
temporary name and renamed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn
import yaml

from engine.errors import AmdsimError
from engine.model.any_protocol import AnyProtocol
from engine.model.protocol_loader import load_protocol
from viz.context import ServerContext
from viz.protocol_choice import ProtocolChoice
from viz.safe_text import plain

__all__ = ["ProtocolEditor"]

# (key in the file, label); the time-based and the visit-based layouts share these names.
FIELDS = (
    ("loading_dose_injections", "Loading doses"),
    ("loading_dose_interval_days", "Loading interval (days)"),
    ("min_interval_days", "Shortest interval (days)"),
    ("max_interval_days", "Longest interval (days)"),
    ("extension_days", "Extend by (days)"),
    ("shortening_days", "Shorten by (days)"),
)
FILE_KEYS = (
    "disease_transitions_file",
    "treatment_effect_file",
    "vision_parameters_file",
    "discontinuation_parameters_file",
    "demographics_parameters_file",
    "mortality_parameters_file",
)
STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ProtocolEditor:
    """Widgets and behaviour of the editor for one session."""

    def __init__(
        self, context: ServerContext, choice: ProtocolChoice, say: Callable[[str, str], None]
    ) -> None:
        self.context = context
        self.choice = choice
        self.say = say
        self.file_name = pn.widgets.TextInput(
            label="Save as (file name)", placeholder="my_treat_and_extend", width=330
        )
        self.display_name = pn.widgets.TextInput(label="Display name", width=330)
        self.numbers = {
            key: pn.widgets.IntInput(label=label, value=0, width=160) for key, label in FIELDS
        }
        self.status = pn.pane.Alert("", alert_type="info", disable_math=True, width=330)
        self.save_button = pn.widgets.Button(label="Save copy", color="primary", disabled=True)
        self.save_button.on_click(lambda _: self.save())
        self._copying = False  # filling the form from a protocol: check once, at the end
        for widget in (self.display_name, *self.numbers.values()):
            widget.param.watch(lambda _: self._copying or self.check(), "value")
        self.file_name.param.watch(lambda _: self.check(), ["value", "value_input"])
        self.choice.select.param.watch(lambda _: self._opened() and self.copy_chosen(), "value")
        rows = list(self.numbers.values())
        self._fields = [
            self.file_name,
            self.display_name,
            *(pn.Row(a, b) for a, b in zip(rows[::2], rows[1::2], strict=True)),
            self.status,
            self.save_button,
        ]
        # The fields go in, and the chosen protocol is copied, when the card is first opened:
        # closed, they cost the first load of every session ~20 models and a validation.
        self.layout = pn.Card(
            title="Edit a copy", collapsed=True, width=350, css_classes=["protocol-editor"]
        )
        self.layout.param.watch(lambda event: event.new or self._open(), "collapsed")
        self._base: dict[str, Any] = {}
        self._source = Path()

    def _opened(self) -> bool:
        return bool(self.layout.objects)

    def _open(self) -> None:
        if not self._opened():
            self.layout.objects = list(self._fields)
            self.copy_chosen()

    def copy_chosen(self) -> None:
        """Start from the chosen protocol's file (its numbers as the loader resolved them)."""
        try:
            protocol, path = self.choice.selected()
            base = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (AmdsimError, OSError, yaml.YAMLError) as exc:
            self._base = {}
            self._show(f"cannot copy this protocol: {exc}", "danger")
            return
        self._base, self._source = dict(base), Path(path)
        self._copying = True
        try:
            self._fill_form(protocol)
        finally:
            self._copying = False
        self.check()

    def _fill_form(self, protocol: AnyProtocol) -> None:
        """The form's fields from `protocol` (the caller checks once afterwards)."""
        with pn.io.hold():
            self.display_name.value = f"{protocol.name} (copy)"
            loading = getattr(protocol, "loading_dose_injections", None)
            values = {
                "loading_dose_injections": loading
                if loading is not None
                else getattr(protocol, "loading_doses", 0),
                "loading_dose_interval_days": protocol.loading_dose_interval_days or 28,
                "min_interval_days": protocol.min_interval_days,
                "max_interval_days": protocol.max_interval_days,
                "extension_days": protocol.extension_days,
                "shortening_days": protocol.shortening_days,
            }
            for key, widget in self.numbers.items():
                widget.value = int(values[key])

    def edited(self) -> dict[str, Any]:
        """The copy as a YAML mapping: the original with the form's values."""
        data = dict(self._base)
        data["name"] = self.display_name.value
        for key, widget in self.numbers.items():
            data[key] = widget.value
        if "loading_doses" in data:  # the older visit-based key: one source of truth
            data["loading_doses"] = data.pop("loading_dose_injections")
        for key in FILE_KEYS:  # parameter files stay where the original's are
            if isinstance(data.get(key), str):
                data[key] = str((self._source.parent / data[key]).resolve())
        if data.get("model_type") == "time_based" and "mortality_parameters_file" not in data:
            folder = Path(data["demographics_parameters_file"]).parent
            data["mortality_parameters_file"] = str(folder / "uk_mortality_wet_amd.yaml")
        return data

    def check(self) -> bool:
        """Validate the copy as it stands; Save is on only when it is valid and named."""
        if not self._base:
            self.save_button.disabled = True
            return False
        text = yaml.safe_dump(self.edited(), sort_keys=False)
        try:
            with tempfile.TemporaryDirectory(prefix="amdsim-edit-") as folder:
                candidate = Path(folder) / "copy.yaml"
                candidate.write_text(text, encoding="utf-8")
                load_protocol(candidate)
        except AmdsimError as exc:
            message = str(exc).replace(str(candidate), "the copy")
            self._show(message.replace(candidate.name, "the copy", 1), "danger")
            self.save_button.disabled = True
            return False
        problem = self._name_problem()
        self._show(
            problem or "valid: Save writes it to the protocols folder",
            "warning" if problem else "success",
        )
        self.save_button.disabled = bool(problem)
        return not problem

    def _name_problem(self) -> str:
        stem = (self.file_name.value_input or self.file_name.value or "").strip()
        folder = self.context.protocols_dir
        if folder is None:
            return "valid; to save it, start the dashboard with --protocols-dir DIR"
        if not STEM.match(stem):
            return "valid; give it a file name: letters, digits, _ and - (at most 64)"
        if (Path(folder) / f"{stem}.yaml").exists():
            return f"valid; {stem}.yaml already exists in the protocols folder: choose another name"
        return ""

    def save(self) -> Path | None:
        """Write the copy to the protocols folder and choose it; its path, or None."""
        if not self.check():
            return None
        stem = (self.file_name.value_input or self.file_name.value).strip()
        folder = Path(self.context.protocols_dir)  # type: ignore[arg-type]
        target = folder / f"{stem}.yaml"
        temporary = folder / f".{stem}.yaml.tmp"
        temporary.write_text(yaml.safe_dump(self.edited(), sort_keys=False), encoding="utf-8")
        temporary.replace(target)
        self.choice.refresh_options(choose=str(target))
        self.say(
            f"saved {target.name} in the protocols folder; it is now the chosen protocol", "success"
        )
        return target

    def _show(self, text: str, kind: str) -> None:
        self.status.object = plain(text)
        self.status.alert_type = kind
