"""The Runs page: the registry as a searchable, sortable table that refreshes by itself,
with Open, Resume, Restart, Delete and Mark for cleanup on the selected run, and the
registry's cap on runs ("keep at most N") with a button that removes the marked runs now."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn

from engine.errors import AmdsimError, RunStateError
from engine.registry import RegistryEntry
from viz.context import ServerContext
from viz.safe_text import plain

__all__ = ["RunsPage", "entries_frame"]

COLUMNS = [
    "run_id",
    "status",
    "storage",
    "protocol",
    "patients",
    "visits",
    "years",
    "seed",
    "MiB",
    "created",
    "marked",
]
CAP_BUTTONS = ("Set cap", "Clean up marked")
STATUSES = ["(any)", "running", "completed", "interrupted", "cancelled", "failed", "missing"]


def entries_frame(entries: list[RegistryEntry]) -> pd.DataFrame:
    """The table's rows, newest first."""
    rows = [
        {
            "run_id": e.run_id,
            "status": e.status,
            "storage": _storage_text(e),
            "protocol": e.protocol,
            "patients": e.patients or e.n_patients,
            "visits": e.visits,
            "years": e.years,
            "seed": e.seed,
            "MiB": round(e.bytes_on_disk / 2**20, 1),
            "created": e.created.strftime("%Y-%m-%d %H:%M:%S"),
            "marked": "yes" if e.marked_for_cleanup else "",
        }
        for e in entries
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _storage_text(entry: RegistryEntry) -> str:
    if entry.storage == "parquet":
        return "disk"
    return "memory, saved" if entry.saved else "memory, not saved"


class RunsPage:
    """Widgets and behaviour of the Runs page for one session."""

    def __init__(
        self,
        context: ServerContext,
        on_open: Callable[[str], None],
        on_follow: Callable[[str], None],
    ) -> None:
        self.context = context
        self.on_open = on_open
        self.on_follow = on_follow
        self.search = pn.widgets.TextInput(label="Search", placeholder="id, name or protocol")
        self.status_filter = pn.widgets.Select(label="Status", options=STATUSES, value="(any)")
        self.table = pn.widgets.Tabulator(
            entries_frame([]),
            show_index=False,
            selectable=1,
            disabled=True,
            pagination="local",
            page_size=20,
            sizing_mode="stretch_width",
            css_classes=["runs-table"],
        )
        self.message = pn.pane.Alert("", alert_type="info", visible=False, disable_math=True)
        buttons = {
            "Open results": self.open_selected,
            "Watch": self.watch_selected,
            "Resume": self.resume_selected,
            "Restart": self.restart_selected,
            "Mark for cleanup": self.mark_selected,
            "Delete": self.delete_selected,
        }
        self.keep = pn.widgets.IntInput(
            label="Keep at most (0: no cap)", value=0, start=0, width=170
        )
        buttons["Set cap"] = self.set_cap
        buttons["Clean up marked"] = self.cleanup_marked
        self.buttons = {}
        for label, action in buttons.items():
            button = pn.widgets.Button(label=label, color="default")
            button.on_click(lambda _, act=action: act())
            self.buttons[label] = button
        self._cap_shown = False  # the input shows the stored cap once, then what is typed
        self.search.param.watch(lambda _: self.refresh(), "value_input")
        self.status_filter.param.watch(lambda _: self.refresh(), "value")
        actions = [self.buttons[label] for label in buttons if label not in CAP_BUTTONS]
        self.layout = pn.Column(
            pn.Row(self.search, self.status_filter),
            self.table,
            pn.Row(*actions),
            pn.Row(self.keep, *(self.buttons[label] for label in CAP_BUTTONS)),
            self.message,
            sizing_mode="stretch_width",
        )

    def refresh(self) -> None:
        """Periodic: list the registry again; the table changes only if the rows did."""
        status = None if self.status_filter.value == "(any)" else self.status_filter.value
        text = self.search.value_input or self.search.value or ""
        with self.context.timings.measure("registry list"):
            registry = self.context.registry()
            entries = registry.search(text=text, status=status)
        if not self._cap_shown:
            self.keep.value = registry.max_runs or 0
            self._cap_shown = True
        frame = entries_frame(entries)
        if not frame.equals(self.table.value):
            selected = self.selected_run()
            self.table.value = frame
            if selected in set(frame["run_id"]):
                self.table.selection = [int(frame.index[frame["run_id"] == selected][0])]

    def selected_run(self) -> str | None:
        if not self.table.selection or self.table.value.empty:
            return None
        index = self.table.selection[0]
        if index >= len(self.table.value):
            return None
        return str(self.table.value.iloc[index]["run_id"])

    def select(self, run_id: str) -> None:
        frame = self.table.value
        matches = frame.index[frame["run_id"] == run_id]
        self.table.selection = [int(matches[0])] if len(matches) else []

    def _act(self, verb: str, action: Callable[[str], object]) -> None:
        run_id = self.selected_run()
        if run_id is None:
            self._say("select a run first", "warning")
            return
        try:
            action(run_id)
        except AmdsimError as exc:
            self._say(str(exc), "danger")
            return
        self._say(f"{verb} {run_id}", "success")
        self.refresh()

    def _say(self, text: str, kind: str) -> None:
        """Show `text` (plain text, shown verbatim: it may hold run ids and errors)."""
        self.message.object = plain(text)
        self.message.alert_type = kind
        self.message.visible = True

    def open_selected(self) -> None:
        self._act("opened", self.on_open)

    def watch_selected(self) -> None:
        """Follow a running run on the Run page (any number of sessions may watch one run)."""

        def watch(run_id: str) -> None:
            self._require_status(self.context.registry().get(run_id), {"running"}, "watch")
            self.on_follow(run_id)

        self._act("watching", watch)

    def resume_selected(self) -> None:
        def resume(run_id: str) -> None:
            entry = self.context.registry().get(run_id)
            self._require_status(entry, {"interrupted", "cancelled", "failed"}, "resume")
            self.context.launcher.resume(run_id)
            self.on_follow(run_id)

        self._act("resuming", resume)

    def restart_selected(self) -> None:
        def restart(run_id: str) -> None:
            entry = self.context.registry().get(run_id)
            if entry.storage == "memory":
                raise RunStateError(f"{run_id} ran in memory: start it again on the Run page")
            self._require_status(
                entry, {"interrupted", "cancelled", "failed", "completed"}, "restart"
            )
            self.context.launcher.restart(run_id)
            self.on_follow(run_id)

        self._act("restarting", restart)

    def mark_selected(self) -> None:
        def mark(run_id: str) -> None:
            registry = self.context.registry()
            registry.mark_for_cleanup(run_id, not registry.get(run_id).marked_for_cleanup)

        self._act("toggled the cleanup mark of", mark)

    def set_cap(self) -> None:
        """Store the "keep at most" value as the registry's cap; say what it marked."""
        keep = int(self.keep.value or 0)
        try:
            marked = self.context.registry().set_max_runs(keep or None)
        except AmdsimError as exc:
            self._say(str(exc), "danger")
            return
        cap = f"keeping at most {keep} runs" if keep else "no cap on runs"
        self._say(f"{cap}; newly marked for cleanup: {', '.join(marked) or 'none'}", "success")
        self.refresh()

    def cleanup_marked(self) -> None:
        """Delete the marked runs now (the server also does it in the background)."""
        try:
            removed = self.context.registry().remove_marked()
        except AmdsimError as exc:
            self._say(str(exc), "danger")
            return
        self._say(f"removed: {', '.join(removed) or 'nothing was marked'}", "success")
        self.refresh()

    def delete_selected(self) -> None:
        self._act("deleted", lambda run_id: self.context.registry().delete(run_id))

    @staticmethod
    def _require_status(entry: RegistryEntry, allowed: set[str], verb: str) -> None:
        if entry.status not in allowed:
            raise RunStateError(f"cannot {verb} {entry.run_id}: it is {entry.status}")
