"""Project exceptions: one base class and a few families, each saying who raises it and why.

Every error amdsim raises on purpose derives from `AmdsimError`, so the CLI can print the
message as one line and exit non-zero without a traceback, and callers can catch one type.
"""

from __future__ import annotations

__all__ = [
    "AmdsimError",
    "MemoryBudgetError",
    "ParameterError",
    "ProtocolError",
    "ResultsFormatError",
    "RunNotFoundError",
]


class AmdsimError(Exception):
    """Base class of every error amdsim raises deliberately.

    The message is one sentence meant for the person running the tool: what is wrong,
    where, and what to do about it.
    """


class ProtocolError(AmdsimError):
    """A protocol file is missing, unreadable, not YAML, or fails validation.

    Raised by `load_protocol`. The message names the file, the field path
    (``$.disease_transitions.STABLE``) and the problem; fix the file and load it again.
    """

    def __init__(self, source: str, path: str | None, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem)


class ParameterError(AmdsimError):
    """A run parameter (patients, years, seed, shard size, recruitment) is out of range.

    Raised before any simulation starts; the message names the parameter and its allowed range.
    """


class RunNotFoundError(AmdsimError):
    """A run id or results directory does not exist or is not a run.

    Raised when opening results; check the id with ``amdsim list`` or the path you passed.
    """


class ResultsFormatError(AmdsimError):
    """Saved results cannot be read: a file is missing, truncated or of an unknown format.

    Raised when loading results; the message names the file. Re-run the simulation or
    restore the directory from a backup.
    """


class MemoryBudgetError(AmdsimError):
    """An operation would need more memory than the budget allows.

    Raised before the memory is allocated, e.g. by ``to_dataframe`` on a large run. The
    message names the estimate and the budget; read in batches (``iterate_visits``), use
    fewer workers or smaller batches, or keep results on disk.
    """
