"""The `amdsim` command line: one subcommand module each, errors as one line, no tracebacks.

Exit codes: 0 success, 1 a run or read failed, 2 bad input (protocol, parameter or usage),
130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from engine.cli import (
    calibrate_command,
    check_targets_command,
    compare_command,
    inspect_commands,
    protocol_commands,
    registry_commands,
    resume_command,
    run_command,
    verify_command,
    viz_commands,
)
from engine.cli.console import print_error
from engine.errors import (
    AmdsimError,
    FileSystemError,
    ParameterError,
    ProtocolError,
    TargetsError,
)

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated(BaseException):
    """SIGTERM arrived outside a streaming run (which cancels itself instead)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="amdsim",
        description="Simulate anti-VEGF treatment of wet AMD for large patient cohorts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_command.register(commands)
    resume_command.register(commands)
    verify_command.register(commands)
    registry_commands.register(commands)
    inspect_commands.register(commands)
    protocol_commands.register(commands)
    viz_commands.register(commands)
    check_targets_command.register(commands)
    calibrate_command.register(commands)
    compare_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # unwind and clean up on SIGTERM, as on Ctrl-C
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.handler(args) or 0)
    except (ProtocolError, ParameterError, TargetsError) as exc:
        print_error(str(exc))
        return EXIT_BAD_INPUT
    except AmdsimError as exc:
        print_error(str(exc))
        return EXIT_FAILED
    except OSError as exc:  # the last boundary: a file operation nobody turned into a message
        print_error(str(FileSystemError.from_os_error(exc)))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except _Terminated:
        print_error("terminated")
        return EXIT_TERMINATED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _version() -> str:
    try:
        return version("amdsim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
