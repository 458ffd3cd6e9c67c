"""The Runs page: the registry as a searchable, sortable table that refreshes by itself,
with Open, Resume, Restart, Delete and Mark for cleanup on the selected run, and the
registry's cap on runs ("keep at most N") with a button that removes the marked runs now.

A running run's manifest holds its totals only once it ends, so its row shows the latest
metrics sample of its live watch instead: patients done of the total, visits and bytes
written so far.

Delete and Restart destroy results, so each first asks: the question names the run and
what is lost (patients, bytes on disk), and nothing happens until Confirm."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
import panel as pn

from engine.errors import AmdsimError, RunStateError
from engine.registry import RegistryEntry
from ipc.messages import MetricsSample
from viz.context import ServerContext
from viz.safe_text import plain

__all__ = ["RunsPage", "delete_question", "empty_text", "entries_frame", "restart_question"]

COLUMNS = [
    "name",
    "run_id",
    "status",
    "progress",
    "storage",
    "protocol",
    "patients",
    "visits",
    "years",
    "seed",
    "MiB",
    "created",
    "marked",
    "notes",
]
NOTES_SHOWN = 60  # characters of a run's notes shown in the table
CAP_BUTTONS = ("Set cap", "Clean up marked")
STATUSES = ["(any)", "running", "completed", "interrupted", "cancelled", "failed", "missing"]


def entries_frame(
    entries: list[RegistryEntry], live: Mapping[str, MetricsSample] | None = None
) -> pd.DataFrame:
    """The table's rows, newest first; a running run with a sample in `live` (run id ->
    latest sample) shows its progress, visits and bytes written from it."""
    live = live or {}
    rows = []
    for e in entries:
        sample = live.get(e.run_id) if e.status == "running" else None
        rows.append(
            {
                "name": e.name,
                "run_id": e.run_id,
                "status": e.status,
                "progress": _progress_text(sample),
                "storage": _storage_text(e),
                "protocol": e.protocol,
                "patients": e.patients or e.n_patients,
                "visits": sample.visits_written if sample else e.visits,
                "years": e.years,
                "seed": e.seed,
                "MiB": round((sample.bytes_written if sample else e.bytes_on_disk) / 2**20, 1),
                "created": e.created.strftime("%Y-%m-%d %H:%M:%S"),
                "marked": "yes" if e.marked_for_cleanup else "",
                "notes": _shortened(e.notes.replace("\n", " "), NOTES_SHOWN),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def empty_text(search: str, status: str | None) -> str:
    """What the Runs page says instead of an empty table."""
    if not search and status is None:
        return "No runs yet: start one on the Run page."
    asked = [f"“{search}”"] if search else []
    asked += [f"status {status}"] if status else []
    return plain(f"No runs match {' and '.join(asked)}.")


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _progress_text(sample: MetricsSample | None) -> str:
    if sample is None:
        return ""
    percent = 100 * sample.fraction_done
    return f"{sample.patients_done:,} / {sample.patients_total:,} ({percent:.0f} %)"


def _size_text(size_bytes: int) -> str:
    if size_bytes >= 2**30:
        return f"{size_bytes / 2**30:,.1f} GiB"
    return f"{size_bytes / 2**20:,.1f} MiB"


def _what_is_lost(entry: RegistryEntry) -> str:
    patients = entry.patients or 0
    return f"its {patients:,} patients and {_size_text(entry.bytes_on_disk)} of results"


def delete_question(entry: RegistryEntry) -> str:
    """The question Delete asks (Markdown): the run and what deleting it loses."""
    run = f"**Delete run {plain(entry.run_id)}**"
    if entry.storage == "memory":
        kept = (
            f"the folder it was saved to ({plain(entry.location)}) is kept"
            if entry.location
            else "it ran in memory and was not saved, so nothing on disk is removed"
        )
        return f"{run}: it leaves the list of runs; {kept}. This cannot be undone."
    return f"{run}: {_what_is_lost(entry)} are removed; this cannot be undone."


def restart_question(entry: RegistryEntry) -> str:
    """The question Restart asks (Markdown): the run and what restarting it discards."""
    return (
        f"**Restart run {plain(entry.run_id)}**: {_what_is_lost(entry)} are discarded and "
        f"it runs again from the start ({entry.n_patients:,} patients, same protocol, "
        "parameters and seed); this cannot be undone."
    )


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
        self.empty_note = pn.pane.Markdown("", css_classes=["runs-empty"], disable_math=True)
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
        self.question = pn.pane.Markdown("", css_classes=["confirm-question"], disable_math=True)
        self.confirm_button = pn.widgets.Button(label="Confirm", color="danger")
        self.dismiss_button = pn.widgets.Button(label="Cancel")
        self.confirm_button.on_click(lambda _: self.confirm())
        self.dismiss_button.on_click(lambda _: self.dismiss())
        self.confirmation = pn.Column(
            self.question,
            pn.Row(self.confirm_button, self.dismiss_button),
            visible=False,
            css_classes=["confirm-box"],
            styles={"border": "2px solid #c62828", "border-radius": "6px", "padding": "4px 12px"},
        )
        self._pending: tuple[str, str, Callable[[str], object]] | None = None
        self._cap_shown = False  # the input shows the stored cap once, then what is typed
        self.search.param.watch(lambda _: self.refresh(), "value_input")
        self.status_filter.param.watch(lambda _: self.refresh(), "value")
        actions = [self.buttons[label] for label in buttons if label not in CAP_BUTTONS]
        self.layout = pn.Column(
            pn.Row(self.search, self.status_filter),
            self.table,
            self.empty_note,
            pn.Row(*actions),
            self.confirmation,
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
        frame = entries_frame(entries, self._live_samples(entries))
        self.empty_note.object = empty_text(text, status) if frame.empty else ""
        if not frame.equals(self.table.value):
            selected = self.selected_run()
            self.table.value = frame
            if selected in set(frame["run_id"]):
                self.table.selection = [int(frame.index[frame["run_id"] == selected][0])]

    def _live_samples(self, entries: list[RegistryEntry]) -> dict[str, MetricsSample]:
        """The latest sample of each running run, watched (one watch per run per server)."""
        samples = {}
        for entry in entries:
            if entry.status == "running" and entry.storage == "parquet":
                latest = self.context.live.watch(self.context.runs_root / entry.run_id).latest
                if latest is not None:
                    samples[entry.run_id] = latest
        return samples

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
        """Ask before restarting the selected run (its results are discarded)."""

        def ask(run_id: str) -> None:
            entry = self.context.registry().get(run_id)
            if entry.storage == "memory":
                raise RunStateError(f"{run_id} ran in memory: start it again on the Run page")
            self._require_status(
                entry, {"interrupted", "cancelled", "failed", "completed"}, "restart"
            )
            self._ask(
                "restarting",
                run_id,
                restart_question(entry),
                self._restart,
            )

        self._act_or_ask(ask)

    def _restart(self, run_id: str) -> None:
        entry = self.context.registry().get(run_id)  # as it is now, not when asked
        self._require_status(entry, {"interrupted", "cancelled", "failed", "completed"}, "restart")
        self.context.launcher.restart(run_id)
        self.on_follow(run_id)

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
        """Ask before deleting the selected run: it cannot be undone."""

        def ask(run_id: str) -> None:
            entry = self.context.registry().get(run_id)
            if entry.status == "running":
                raise RunStateError(f"run {run_id} is still running; cancel it first")
            self._ask(
                "deleted",
                run_id,
                delete_question(entry),
                self._delete,
            )

        self._act_or_ask(ask)

    def _delete(self, run_id: str) -> None:
        self.context.registry().delete(run_id)
        self.context.deleted_runs.add(run_id)  # other sessions showing it say it was deleted

    # -- confirming destructive actions -----------------------------------------------------

    def _act_or_ask(self, ask: Callable[[str], None]) -> None:
        """Check the selected run with `ask`, which shows the question or raises why not."""
        run_id = self.selected_run()
        if run_id is None:
            self._say("select a run first", "warning")
            return
        try:
            ask(run_id)
        except AmdsimError as exc:
            self.dismiss(quietly=True)
            self._say(str(exc), "danger")

    def _ask(self, verb: str, run_id: str, question: str, action: Callable[[str], object]) -> None:
        self._pending = (verb, run_id, action)
        self.question.object = question
        self.confirmation.visible = True
        self.message.visible = False

    def confirm(self) -> bool:
        """Do the action asked about, on the run it named (whatever is selected now)."""
        pending, self._pending = self._pending, None
        self.confirmation.visible = False
        if pending is None:
            return False
        verb, run_id, action = pending
        try:
            action(run_id)
        except AmdsimError as exc:
            self._say(str(exc), "danger")
            return False
        self._say(f"{verb} {run_id}", "success")
        self.refresh()
        return True

    def dismiss(self, quietly: bool = False) -> None:
        """Forget the question; nothing was done."""
        pending, self._pending = self._pending, None
        self.confirmation.visible = False
        if pending is not None and not quietly:
            self._say(f"nothing was done to {pending[1]}", "info")

    @staticmethod
    def _require_status(entry: RegistryEntry, allowed: set[str], verb: str) -> None:
        if entry.status not in allowed:
            raise RunStateError(f"cannot {verb} {entry.run_id}: it is {entry.status}")
