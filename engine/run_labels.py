"""A run's name and notes: what the user calls it and why they ran it.

Pages and listings show the name instead of the run id ("ALTAIR arm, 2-week steps" rather than
"20261204-151222-2170"); the notes say what the run was for. Both are stored in the run's
manifest and its registry entry, and change no row. Checked here once for the CLI and the
dashboard: a name is one line of at most `MAX_NAME` characters, notes at most `MAX_NOTES`,
neither with control characters (they would garble a terminal), so a bad one is one clear
line, never a stored surprise.
"""

from __future__ import annotations

import unicodedata

from engine.errors import ParameterError

__all__ = ["MAX_NAME", "MAX_NOTES", "check_name", "check_notes"]

MAX_NAME = 80
MAX_NOTES = 2000


def _controls(text: str, allowed: str = "") -> list[str]:
    return [c for c in text if unicodedata.category(c) == "Cc" and c not in allowed]


def check_name(name: str) -> str:
    """`name` with surrounding spaces removed, or `ParameterError` saying what is wrong."""
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ParameterError(f"name: at most {MAX_NAME} characters, got {len(name)}")
    if _controls(name):
        raise ParameterError("name: one line of text, without tabs or control characters")
    return name


def check_notes(notes: str) -> str:
    """`notes` with surrounding white space removed, or `ParameterError`."""
    notes = notes.strip()
    if len(notes) > MAX_NOTES:
        raise ParameterError(f"notes: at most {MAX_NOTES:,} characters, got {len(notes):,}")
    if _controls(notes, allowed="\n\t"):
        raise ParameterError("notes: text only, without control characters")
    return notes
