"""Terminal output shared by the commands: consoles, one-line errors and warnings, numbers."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console

__all__ = ["err_console", "human_count", "out_console", "print_error", "print_warnings_from"]

out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

T = TypeVar("T")


def print_error(message: str) -> None:
    """One line on stderr: ``error: <message>``."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, emoji=False)


@contextmanager
def print_warnings_from() -> Iterator[None]:
    """Show warnings raised inside the block as one ``warning:`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        err_console.print(f"[yellow]warning:[/] {warning.message}", soft_wrap=True, emoji=False)


def call_with_warnings(function: Callable[[], T]) -> T:
    """Call `function`, printing any warnings it raises as one line each."""
    with print_warnings_from():
        return function()


def human_count(value: float) -> str:
    """1234567 -> '1.23 M', 51234 -> '51,234'."""
    if value >= 10_000_000:
        return f"{value / 1e6:,.1f} M"
    if value >= 1_000_000:
        return f"{value / 1e6:,.2f} M"
    return f"{value:,.0f}"
