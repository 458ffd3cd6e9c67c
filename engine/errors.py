"""Project exceptions: one base class and a few families, each saying who raises it and why.

Every error amdsim raises on purpose derives from `AmdsimError`, so the CLI can print the
message as one line and exit non-zero without a traceback, and callers can catch one type.
"""

from __future__ import annotations

__all__ = [
    "AmdsimError",
    "CostFileError",
    "DiskSpaceError",
    "FileSystemError",
    "MemoryBudgetError",
    "ParameterError",
    "ProtocolError",
    "ResultsFormatError",
    "RunNotFoundError",
    "RunPathError",
    "ServeError",
    "TargetsError",
    "UncertaintyError",
    "UtilityFileError",
    "WorkerCrashedError",
    "WriterFailedError",
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


class TargetsError(AmdsimError):
    """A calibration targets file is missing, not YAML, or names a figure amdsim cannot compute.

    Raised by `engine.calibration.targets.load_targets`; the message names the file, the
    target's field path (``$.targets[3].day``) and the problem.
    """

    def __init__(self, source: str, path: str | None, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem)


class CostFileError(TargetsError):
    """A cost file is missing, not YAML, or lacks a price a comparison needs.

    Raised by `engine.economics.costs.load_cost_file` and `drug_cost`; the message names the
    file, the field path (``$.drug_costs.aflibercept_2mg``) and the problem.
    """


class UtilityFileError(TargetsError):
    """A utility table is missing, not YAML, or its bands or utilities are invalid.

    Raised by `engine.economics.utilities.load_utility_table`; the message names the file, the
    field path and the problem.
    """


class UncertaintyError(TargetsError):
    """An uncertainty file (PSA) is missing, not YAML, or declares an invalid distribution.

    Raised by `engine.psa`; the message names the file, the field path
    (``$.uncertainty[2].distribution``) and the problem.
    """


class ParameterError(AmdsimError):
    """A run parameter (patients, years, seed, shard size, recruitment) is out of range.

    Raised before any simulation starts; the message names the parameter and its allowed range.
    """


class RunNotFoundError(AmdsimError):
    """A run id or results directory does not exist or is not a run.

    Raised when opening results; check the id with ``amdsim list`` or the path you passed.
    """


class RunStateError(AmdsimError):
    """A run is not in a state that allows the operation asked for.

    Raised when resuming a run that is complete or still running, deleting a running run, or
    starting a second supervisor on a run directory another process holds. The message says
    the run's status and what to do instead.
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


class WorkerCrashedError(AmdsimError):
    """A shard failed in a worker on every allowed attempt, or workers kept dying.

    Raised by the supervisor after it has stopped the run; `traceback` holds the worker's
    last traceback when there was one. A bug fails the same way every time: report it with
    the traceback. A worker killed from outside (out of memory) may succeed on a re-run.
    """

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback


class WriterFailedError(AmdsimError):
    """The writer process could not write the run (disk full, permissions, I/O error).

    Raised by the supervisor after it has stopped the run and marked it failed; no part file
    of the failed write is left under a final name. Free space or fix the directory, re-run.
    """


class DiskSpaceError(AmdsimError):
    """A run would not fit in the free space of its file system.

    Raised by the supervisor before it starts anything; the message gives the estimate and
    the free space. Free space, write elsewhere (``--runs-dir``), or simulate less.
    """


class ServeError(AmdsimError):
    """The dashboard could not listen on its address and port.

    Raised by `amdsim dashboard` before it serves anything: the port is in use (another
    dashboard?), the address is not one of this machine's, or the port needs privileges.
    Choose another ``--port`` or ``--address``.
    """


class RunPathError(ParameterError):
    """A run was named by something amdsim will not use as a run directory.

    Raised before anything is read, written or deleted: an empty or blank run id, a symbolic
    link named like a run (or a run whose ``patients/`` or ``visits/`` is a link), or a
    directory outside the runs root given to a command that changes runs (``resume``,
    ``run --restart``, ``delete``). Name the run by its id, or pass its root with ``--runs-dir``.
    """


class FileSystemError(AmdsimError):
    """The operating system refused a file operation (read-only file system, a path that is a
    file where a directory is needed, no permission, an I/O error).

    Raised where amdsim writes: the registry, run directories, saved results; the CLI also
    turns any stray `OSError` into one. The message names the path and the reason
    (``runs/: read-only file system``); fix the path or the file system, or choose another
    directory (``--runs-dir``, ``--out``).
    """

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str = "") -> FileSystemError:
        """The error for `exc`, prefixed by what amdsim was `doing` (``writing the registry``)."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        reason = reason[:1].lower() + reason[1:]
        paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
        where = " -> ".join(paths)
        message = f"{where}: {reason}" if where else reason
        return cls(f"{doing}: {message}" if doing else message)


class ClusterError(AmdsimError):
    """A run could not use its Dask cluster, or the cluster could not finish it.

    Raised when the `cluster` extra is not installed (``pip install -e '.[cluster]'``), the
    scheduler cannot be reached, its workers cannot hold one shard, or a task failed on every
    attempt Dask allowed. A run that had started is marked failed (or shows ``interrupted``)
    and resumes with ``amdsim resume RUN --cluster ...``.
    """
