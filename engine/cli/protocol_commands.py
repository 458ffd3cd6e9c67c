"""`amdsim validate FILE` and `amdsim protocols`: check a protocol file, list bundled ones."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.console import call_with_warnings, out_console, safe_text
from engine.model.protocol_loader import (
    DEFAULT_PROTOCOL,
    bundled_protocol_names,
    load_protocol,
    resolve_protocol_path,
)
from engine.model.v1.protocol import Protocol
from engine.model.v2.schema import TimeBasedProtocol

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add `validate` and `protocols` to the CLI."""
    validate_parser = commands.add_parser(
        "validate",
        help="check a protocol file",
        description="Validate a protocol file; exits 2 with the field path if it is invalid.",
    )
    validate_parser.add_argument("file", help="protocol YAML file or bundled protocol name")
    validate_parser.set_defaults(handler=validate)
    list_parser = commands.add_parser(
        "protocols", help="list the bundled protocols", description="List the bundled protocols."
    )
    list_parser.set_defaults(handler=list_protocols)


def validate(args: argparse.Namespace) -> int:
    """Handler of `amdsim validate`."""
    protocol = call_with_warnings(lambda: load_protocol(args.file))
    path = resolve_protocol_path(args.file)
    out_console.print(
        f"{safe_text(path.name)}: valid - {safe_text(protocol.name)} ({_summary(protocol)})",
        soft_wrap=True,
    )
    for line in _citations(protocol):
        out_console.print(f"  {line}", soft_wrap=True)
    return 0


def _citations(protocol: Protocol | TimeBasedProtocol) -> list[str]:
    """One line per published figure the protocol cites (its `sources:` block)."""
    if not isinstance(protocol, TimeBasedProtocol):
        return []
    lines = []
    for citation in protocol.sources:
        where = f", {citation.where}" if citation.where else ""
        lines.append(
            safe_text(f"source: {citation.figure} - {citation.study}; {citation.reference}{where}")
        )
    return lines


def _summary(protocol: Protocol | TimeBasedProtocol) -> str:
    """Type, intervals and loading of either layout, for one line of output."""
    if isinstance(protocol, TimeBasedProtocol):
        return (
            f"time-based {protocol.protocol_type}, {protocol.min_interval_days}-"
            f"{protocol.max_interval_days} days, {protocol.loading_dose_injections} loading "
            f"doses, {len(protocol.files)} parameter files"
        )
    return (
        f"{protocol.protocol_type}, {protocol.min_interval_days}-{protocol.max_interval_days} "
        f"days, {protocol.loading_doses} loading doses"
    )


def list_protocols(args: argparse.Namespace) -> int:
    """Handler of `amdsim protocols`: one entry per bundled protocol, name first."""
    out_console.print("Bundled protocols (pass the name to --protocol; * marks the default):")
    for name in bundled_protocol_names():
        protocol = load_protocol(name)
        marker = " *" if name == DEFAULT_PROTOCOL else ""
        out_console.print(
            f"  [bold]{safe_text(name)}[/]{marker}  {_summary(protocol)}", soft_wrap=True
        )
        out_console.print(f"      {safe_text(protocol.description)}", soft_wrap=True)
    return 0
