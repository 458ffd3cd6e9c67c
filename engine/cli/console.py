"""Terminal output shared by the commands: consoles, one-line errors and warnings, numbers.

Text from users (protocol names and descriptions, run names, paths, error messages quoting
a file) goes through `safe_text` before Rich sees it: Rich would take ``[/bold]`` in a name
as markup (and raise MarkupError on an unmatched tag), and the terminal would obey escape
sequences (``\x1b[2J`` clears the screen). Our own markup stays in the f-string around it.
Emoji codes (``:smile:``) are off on both consoles for the same reason.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.markup import escape

__all__ = [
    "err_console",
    "human_count",
    "out_console",
    "plain_text",
    "print_error",
    "print_warnings_from",
    "safe_text",
]

out_console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)

# Whole escape sequences first (CSI ``ESC [ ... final`` or its 8-bit form, OSC/DCS/APC/PM
# strings up to their terminator, two-byte ``ESC x``), then any C0 control but tab and newline, DEL and C1.
_TERMINAL_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)

T = TypeVar("T")


def plain_text(value: object) -> str:
    """`value` as text with terminal control characters and escape sequences removed.

    Newlines and tabs stay; everything else that could move the cursor, clear the screen,
    retitle the window or hide text is dropped.
    """
    return _TERMINAL_CONTROL.sub("", str(value))


def safe_text(value: object) -> str:
    """`value` ready to put inside Rich markup: printed literally, never obeyed."""
    return escape(plain_text(value))


def print_error(message: str) -> None:
    """One line on stderr: ``error: <message>`` (the message is printed literally)."""
    err_console.print(
        f"[bold red]error:[/] {safe_text(message)}", soft_wrap=True, markup=True, emoji=False
    )


@contextmanager
def print_warnings_from() -> Iterator[None]:
    """Show warnings raised inside the block as one ``warning:`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        err_console.print(
            f"[yellow]warning:[/] {safe_text(warning.message)}", soft_wrap=True, emoji=False
        )


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
