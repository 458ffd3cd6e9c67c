"""Make Bokeh model changes safe from any Panel callback, locked or not.

A chart here is a Bokeh figure updated in place (`viz.charts`). Bokeh's server accepts a
change to a document's models only while the session holds the document lock. Periodic
callbacks hold it; a button's click handler may not: Panel first awaits the session's
pending widget changes (a table row just selected, a URL just written), which releases the
lock, and a chart update from the click then fails with Bokeh's "_pending_writes should be
non-None" RuntimeError, leaving the page as it was (seen as "Open results does nothing" on a
loaded machine). Panel's own widget updates go through `pn.io.unlocked`, which dispatches
the changes either way; `dispatched` puts a chart update through the same path. Outside a
served session (tests, `amdsim report`) it just calls the method.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import panel as pn

__all__ = ["dispatched"]

P = ParamSpec("P")
R = TypeVar("R")


def dispatched(method: Callable[P, R]) -> Callable[P, R]:
    """`method`, with the Bokeh model changes it makes sent through `pn.io.unlocked`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with pn.io.unlocked():
            return method(*args, **kwargs)

    return wrapper
