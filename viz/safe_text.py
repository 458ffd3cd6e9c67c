"""Show user strings verbatim in the dashboard's Markdown and HTML panes.

File names, protocol names, run ids, error messages and field values come from whoever wrote
the file or named the directory. Panel's Markdown panes (and `Alert`, which is one) pass raw
HTML through, so `<img src=x onerror=...>` in a file name would run script in every browser
showing the message; Markdown syntax would turn a name into a link or bold text. `plain()`
makes a string inert for a Markdown pane; `html_text()` for an HTML pane or a Bokeh `Div`.

Does not cover: widget labels and options (Bokeh sets them as text), table cells (Tabulator's
default formatter sets text) and Bokeh tooltips of `@field` values (escaped by Bokeh).
"""

from __future__ import annotations

import html
import re

__all__ = ["html_text", "plain"]

# ASCII punctuation Markdown (with linkify) gives a meaning to; `&<>"'` are left to
# html.escape, whose entities must stay intact. A backslash before any ASCII punctuation is
# a literal in CommonMark, and it also splits text so that linkify finds no URL in it.
_MARKDOWN_PUNCTUATION = re.compile(r"([!#$%()*+,\-./:;=?@\[\\\]^_`{|}~])")


def plain(text: object) -> str:
    """`text` for a Markdown pane: shown exactly as written, never read as HTML or Markdown."""
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", str(text)), quote=True)


def html_text(text: object) -> str:
    """`text` for an HTML pane or attribute: shown exactly as written, never read as HTML."""
    return html.escape(str(text), quote=True)
