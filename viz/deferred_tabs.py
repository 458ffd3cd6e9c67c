"""Tabs whose pages are built when first needed, and reach the browser after the open one.

All five pages built and rendered up front made the first load ~4 s here: ~0.8 s of Python
building ~700 Bokeh models (the Results page alone has ~400, most of them charts), then the
browser laying all of them out before it drew anything. Here each tab starts as an empty
placeholder; the open page is built and put in before the document is sent, and the others
once the browser says the document is ready (Panel's `pn.state.onload`), so they are there,
already drawn, by the time a user switches tab. A page asked for before that (a fast click,
a link, a run finishing) is built at once.

Unlike Panel's own `Tabs(dynamic=True)`, a page once in stays in the document: switching back
and forth costs nothing and widgets keep their state in the browser. The scripts of widgets
on later pages must be loaded with the first page (`pn.extension("tabulator")` in
`viz.server`): Panel asks the browser only for the scripts of what it first sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import panel as pn

__all__ = ["DeferredTabs"]

TURN_GAP_MS = 20  # between pages: the loop serves other events, the browser draws the last


class DeferredTabs:
    """`pn.Tabs` over named pages, each built by its factory and put in when first needed.

    A page is any object with a `layout`. `on_built(index)` runs after a page is built (the
    session brings it up to date there).
    """

    def __init__(
        self,
        pages: Sequence[tuple[str, Callable[[], Any]]],
        on_built: Callable[[int], None] = lambda _index: None,
    ) -> None:
        self.names = [name for name, _factory in pages]
        self._factories = [factory for _name, factory in pages]
        self._pages: list[Any] = [None] * len(pages)
        self._on_built = on_built
        self._slots = [pn.Column(sizing_mode="stretch_width") for _ in pages]
        self.tabs = pn.Tabs(
            *zip(self.names, self._slots, strict=True),
            dynamic=False,
            sizing_mode="stretch_width",
        )
        self.tabs.param.watch(lambda event: self.fill(event.new), "active")

    def page(self, index: int) -> Any:
        """Page `index`, built now if it was not yet (not necessarily in the document)."""
        if self._pages[index] is None:
            self._pages[index] = self._factories[index]()
            self._on_built(index)
        return self._pages[index]

    def built(self, index: int) -> bool:
        return self._pages[index] is not None

    def fill(self, index: int) -> None:
        """Put page `index` into its tab (once), building it if needed."""
        slot = self._slots[index]
        if not slot.objects:
            slot.objects = [self.page(index).layout]

    def fill_open(self) -> None:
        """Put the open page in: before the document is first sent."""
        self.fill(self.tabs.active)

    def fill_all(self) -> None:
        """Build and put in every page at once (outside a server, for scripts and tests)."""
        for index in range(len(self._slots)):
            self.fill(index)

    def fill_next(self) -> bool:
        """Put in the first page not yet in; False when all are in.

        The server calls this once per event-loop turn (`fill_in_turns`): building the
        Results page holds the loop ~0.7 s here, and other sessions' events wait for it.
        """
        for index in range(len(self._slots)):
            if not self.filled(index):
                self.fill(index)
                return True
        return False

    def fill_in_turns(self) -> None:
        """In a served session: put in the pages one per event-loop turn, in tab order.

        Each turn's changes reach the browser before the next page is built, so the Runs
        page is there well before the Results page, and other sessions get the loop between.
        """
        document = pn.state.curdoc
        if document is None or document.session_context is None:
            self.fill_all()
            return

        def turn() -> None:
            if self.fill_next():
                document.add_timeout_callback(turn, TURN_GAP_MS)

        turn()

    def filled(self, index: int) -> bool:
        return bool(self._slots[index].objects)
