"""The `amdsim` command line: one subcommand module each, errors as one line, no tracebacks.

Exit codes: 0 success, 1 a run or read failed, 2 bad input (protocol, parameter or usage),
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from engine.cli import (
    inspect_commands,
    protocol_commands,
    registry_commands,
    resume_command,
    run_command,
    verify_command,
    viz_commands,
)
from engine.cli.console import print_error
from engine.errors import AmdsimError, FileSystemError, ParameterError, ProtocolError

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ProtocolError, ParameterError) as exc:
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


def _version() -> str:
    try:
        return version("amdsim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
