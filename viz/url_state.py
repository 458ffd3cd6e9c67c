"""Keep a session's view in the page URL, so a reload, a bookmark or a shared link restores it.

The query names the page and what it shows: ``?page=run&run=ID`` (the run the Run page
follows), ``?page=results&run=ID&patient=N`` (the open run and the looked-up patient),
``?page=runs``, ``?page=compare``, ``?page=system``. A new session reads the query of the
request that opened it (`View.from_query`); the session then writes its view back through
Panel's ``pn.state.location`` whenever it changes (`UrlWriter`), which the browser applies
with ``history.pushState`` (no reload).

Why this shape: the URL is the only state a reload keeps, and query strings come from
anyone, so a run id is checked with `engine.run_dir.validate_run_id` (never a path) and a
bad value is dropped with a note, never an error. Does not cover: acting on the view (the
session does, `viz.app.DashboardSession.restore`); the browser's Back button (Panel's
location does not report it, so the view stays as it is).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Literal

import msgspec

from engine.errors import ParameterError
from engine.run_dir import validate_run_id

__all__ = ["PAGES", "UrlWriter", "View"]

Page = Literal["run", "runs", "results", "compare", "system"]
PAGES: tuple[Page, ...] = ("run", "runs", "results", "compare", "system")  # in tab order


class View(msgspec.Struct, frozen=True, kw_only=True):
    """What one session shows, as the URL records it.

    Attributes
    ----------
    page
        The open tab.
    run
        The run the Run page follows, or the run open on the Results page (a run id).
    patient
        The patient looked up on the Results page (an id from 0).
    problems
        What was dropped from the query and why (shown to the user, never raised).
    """

    page: Page = "run"
    run: str | None = None
    patient: int | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, query: Mapping[str, str | list[str]]) -> View:
        """The view a query string asks for; what cannot be used is dropped and noted."""

        def first(name: str) -> str | None:
            value = query.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            return value.strip() if value else None

        problems = []
        page = (first("page") or "run").lower()
        if page not in PAGES:
            problems.append(f"the link's page {page!r} is not one of {', '.join(PAGES)}")
            page = "run"
        run = first("run")
        if run is not None:
            try:
                validate_run_id(run)
            except ParameterError as exc:
                problems.append(f"the link's run: {exc}")
                run = None
        patient = None
        text = first("patient")
        if text is not None:
            if text.isdigit():
                patient = int(text)
            else:
                problems.append(f"the link's patient {text!r} is not a patient id (0, 1, 2, ...)")
        return cls(page=page, run=run, patient=patient, problems=tuple(problems))

    @classmethod
    def from_search(cls, search: str) -> View:
        """The view of a ``?...`` search string (as in ``window.location.search``)."""
        return cls.from_query(urllib.parse.parse_qs(search.lstrip("?")))

    def search(self) -> str:
        """This view as a ``?...`` search string; only what the page shows is in it."""
        query: dict[str, str] = {"page": self.page}
        if self.page in ("run", "results") and self.run:
            query["run"] = self.run
            if self.page == "results" and self.patient is not None:
                query["patient"] = str(self.patient)
        return "?" + urllib.parse.urlencode(query)


class UrlWriter:
    """Writes a session's view into its browser's URL, only when the view changed.

    `location` is the session's ``pn.state.location`` (None outside a served session:
    then nothing is written and `last` still records the view).
    """

    def __init__(self, location: object | None) -> None:
        self.location = location
        self.last: str | None = None

    def write(self, view: View) -> bool:
        """Put `view` into the URL; False if the URL already said so."""
        search = view.search()
        if search == self.last:
            return False
        self.last = search
        if self.location is not None and getattr(self.location, "search", None) != search:
            self.location.search = search
        return True
