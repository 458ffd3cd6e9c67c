"""The reproducibility record a run's manifest carries (DESIGN section 3), and its check on resume.

What reproduces a run beyond its protocol and parameters: the amdsim version and git commit,
the Python, numpy and pyarrow versions, the random-number scheme, the command line, and the
content and SHA-256 of the protocol file and of every parameter file it references, each with
the absolute path it was read from. A resumed run must continue with the same model, so
`changed_files` re-reads every recorded file at that path and resume refuses a run whose
files changed or went missing (the manifest keeps their content, so the original inputs are
never lost).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import stat
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import msgspec

from engine.model.any_protocol import AnyProtocol, random_scheme_of
from engine.model.v2.schema import TimeBasedProtocol

__all__ = ["RecordedFile", "Reproducibility", "changed_files", "reproducibility_record"]

_GIT_TIMEOUT_S = 2.0


class RecordedFile(msgspec.Struct, frozen=True, kw_only=True):
    """One input file: its role, path as written, absolute path read, SHA-256 and text."""

    role: str  # "protocol" or the parameter file's role ("vision", "mortality", ...)
    path: str
    absolute_path: str | None  # None when the run was given a protocol object, not a file
    sha256: str
    text: str


class Reproducibility(msgspec.Struct, frozen=True, kw_only=True):
    """Everything besides protocol and parameters that a run's rows depend on."""

    package_version: str
    git_commit: str | None
    python: str
    numpy: str
    pyarrow: str
    random_scheme: str
    command_line: list[str]
    files: list[RecordedFile] = []


def reproducibility_record(
    protocol: AnyProtocol, protocol_path: str | Path | None, package_version: str
) -> Reproducibility:
    """The record of a run starting now in this process.

    `protocol_path` is the file `protocol` was loaded from (None for a protocol built in
    code: its content is in the manifest, but there is no file to check on resume).
    """
    return Reproducibility(
        package_version=package_version,
        git_commit=_git_commit(),
        python=platform.python_version(),
        numpy=_version("numpy"),
        pyarrow=_version("pyarrow"),
        random_scheme=random_scheme_of(protocol),
        command_line=list(sys.argv),
        files=_files(protocol, None if protocol_path is None else Path(protocol_path)),
    )


def changed_files(record: Reproducibility) -> list[str]:
    """One line per recorded file that is missing or whose SHA-256 differs now."""
    problems = []
    for file in record.files:
        if file.absolute_path is None:
            continue
        try:
            digest = _sha256_of_regular_file(Path(file.absolute_path))
        except OSError as exc:
            reason = "is missing" if isinstance(exc, FileNotFoundError) else "cannot be read"
            problems.append(f"{file.role} file {file.absolute_path} {reason}")
            continue
        if digest is None:
            problems.append(f"{file.role} file {file.absolute_path} is not a regular file")
            continue
        if digest != file.sha256:
            problems.append(f"{file.role} file {file.absolute_path} changed since the run started")
    return problems


def _sha256_of_regular_file(path: Path) -> str | None:
    """SHA-256 of the file at `path`, read in chunks; None if it is not a regular file.

    A pipe or device put in a recorded file's place would block the read or never end.
    """
    if not stat.S_ISREG(path.stat().st_mode):  # before opening: opening a pipe blocks
        return None
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(protocol: AnyProtocol, protocol_path: Path | None) -> list[RecordedFile]:
    files = []
    folder = None
    if protocol_path is not None:
        absolute = protocol_path.resolve()
        folder = absolute.parent
        data = absolute.read_bytes()
        files.append(
            RecordedFile(
                role="protocol",
                path=str(protocol_path),
                absolute_path=str(absolute),
                sha256=hashlib.sha256(data).hexdigest(),
                text=data.decode("utf-8", errors="replace"),
            )
        )
    if isinstance(protocol, TimeBasedProtocol):
        for source in protocol.files:
            where = None if folder is None else str((folder / source.path).resolve())
            files.append(
                RecordedFile(
                    role=source.role,
                    path=source.path,
                    absolute_path=where,
                    sha256=source.sha256,
                    text=source.text,
                )
            )
    return files


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - every dependency is installed
        return "unknown"


@functools.cache
def _git_commit() -> str | None:
    """The commit of the source tree amdsim runs from, or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None
