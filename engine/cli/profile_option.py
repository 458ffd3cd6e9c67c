"""``--profile DIR``: profile every process of a run (`engine.profiling`), say where after.

Shared by `amdsim run` (also with ``--restart``) and `amdsim resume`. DIR is checked before
anything starts: a file in the way is a `ParameterError` (exit 2), a directory that cannot
be created or written a `FileSystemError` (exit 1), each one line. The CLI process (the
supervisor, or the Dask client of a cluster run) profiles itself from the command's start;
its children and cluster tasks get DIR through `PipelineOptions.profile`. ``--profile-html``
adds pyinstrument's offline HTML page per process (off by default: rendering it takes a
second or more for a long-running worker, in the run's wall time; see docs/profiling.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.cli.console import err_console, safe_text
from engine.cli.directories import check_directory_option
from engine.errors import FileSystemError, ParameterError
from engine.profiling import SPEEDSCOPE_SUFFIX, ProcessProfile, ProfileTarget

__all__ = ["add_profile_argument", "check_profile_dir", "profile_target", "profiled"]

OPEN_HINT = (
    "open a .speedscope.json file at https://www.speedscope.app (nothing is uploaded), or "
    "offline with speedscope's own build (`npm install -g speedscope`; `speedscope FILE`)"
)
DEFAULT_INTERVAL_MS = 10.0  # see ProfileTarget.interval_s
HTML_HINT = "; the .html pages open in any browser, offline (main thread only)"


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--profile DIR`` option."""
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        default=None,
        help="profile every process of the run (supervisor, workers, writer, cluster tasks) "
        "with pyinstrument; each writes NAME.speedscope.json into DIR, which cluster workers "
        "must see at the same path (docs/profiling.md)",
    )
    parser.add_argument(
        "--profile-html",
        action="store_true",
        help="with --profile: also write pyinstrument's offline page NAME.html per process "
        "(takes a second or more per long-running process as it ends)",
    )
    parser.add_argument(
        "--profile-interval",
        type=_interval_ms,
        default=None,
        metavar="MS",
        help="with --profile: milliseconds between samples (default: 10; 1, pyinstrument's "
        "own default, slows the workers by about 10%%: docs/profiling.md)",
    )


def _interval_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.0 < value <= 1000.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds (0-1000]")
    return value


def profile_target(args: argparse.Namespace) -> ProfileTarget | None:
    """What `PipelineOptions.profile` gets from the checked options (see `profiled`)."""
    if args.profile is None:
        return None
    interval_ms = args.profile_interval or DEFAULT_INTERVAL_MS
    return ProfileTarget(
        directory=str(args.profile), html=args.profile_html, interval_s=interval_ms / 1000
    )


def check_profile_dir(path: Path) -> Path:
    """`path` made absolute and created, once shown writable; else a one-line error."""
    check_directory_option(path, "--profile")
    try:
        import pyinstrument  # noqa: F401, PLC0415 - only a profiled run needs it
    except ImportError:
        raise ParameterError(
            "--profile needs pyinstrument: pip install pyinstrument (or reinstall amdsim)"
        ) from None
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".profile-probe-"):
            pass
    except OSError as exc:
        raise FileSystemError.from_os_error(exc, f"--profile {path}") from None
    return path


def profiled(args: argparse.Namespace, command: Callable[[argparse.Namespace], int]) -> int:
    """Run `command(args)`, profiled into ``args.profile`` if given, and say where the
    profiles are, whether the command succeeded or not.

    ``args.profile`` is replaced by the checked, absolute directory before `command` runs.
    """
    if args.profile is None:
        if args.profile_html or args.profile_interval is not None:
            flag = "--profile-html" if args.profile_html else "--profile-interval"
            raise ParameterError(f"{flag} needs --profile DIR")
        return command(args)
    args.profile = directory = check_profile_dir(args.profile)
    started = time.time() - 1.0  # file times have coarse clocks on some file systems
    try:
        with ProcessProfile.of_process(profile_target(args), "supervisor"):
            return command(args)
    finally:
        _report(directory, started, args.profile_html)


def _report(directory: Path, since: float, html: bool) -> None:
    names = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.endswith(SPEEDSCOPE_SUFFIX) and entry.stat().st_mtime >= since:
                names.append(entry.name.removesuffix(SPEEDSCOPE_SUFFIX))
    if not names:
        err_console.print(f"No profile was written into {safe_text(directory)}", soft_wrap=True)
        return
    err_console.print(
        f"{len(names)} profile{'s' * (len(names) != 1)} in {safe_text(directory)}: "
        f"{safe_text(', '.join(sorted(names)))}; {OPEN_HINT}{HTML_HINT * html}",
        soft_wrap=True,
    )
