"""Who may use a dashboard server: the address it binds, the origins it accepts, its password.

Anyone who can open the dashboard's WebSocket can start, cancel and delete runs, so:
- On a loopback address (the default, 127.0.0.1) only pages served from this machine
  (`localhost:PORT`, `127.0.0.1:PORT`) may connect, and there is no password: whoever can
  reach a loopback port already runs code on this machine.
- Any other address (0.0.0.0, a LAN address) needs `--allow-origin HOST[:PORT]` naming the
  host browsers will use (never `*`: a wildcard lets any web site a user visits drive the
  dashboard), and Panel's basic auth: user `amdsim`, with the password taken from
  AMDSIM_DASHBOARD_PASSWORD or generated at start-up and printed once.

Everything here is checked before Panel is imported, so a bad `--port`, `--address` or
`--allow-origin` is one line and exit 2. Does not cover TLS: basic auth over plain HTTP is
readable on the network, which the start-up warning says. See also `viz.server`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.errors import ParameterError

__all__ = ["PASSWORD_VARIABLE", "USER", "Access", "plan_access"]

PASSWORD_VARIABLE = "AMDSIM_DASHBOARD_PASSWORD"
USER = "amdsim"
MIN_PASSWORD_CHARS = 8
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
_ORIGIN = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>\d{1,5}))?")


@dataclass(frozen=True)
class Access:
    """How one dashboard server is reached.

    `origins` are the `host:port` values a browser page's Origin must match to open the
    WebSocket; `password` is None on loopback (no login), else the basic-auth password.
    """

    address: str
    port: int
    origins: tuple[str, ...]
    password: str | None = None
    password_generated: bool = False

    @property
    def exposed(self) -> bool:
        """True when the server listens beyond this machine (and so asks for a password)."""
        return self.password is not None


def plan_access(
    address: str,
    port: int,
    allow_origins: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Access:
    """Check `--address`, `--port` and `--allow-origin`; raise `ParameterError` naming the bad one."""
    environ = os.environ if environ is None else environ
    _check_port(port)
    loopback = _is_loopback(address)
    allowed = list(allow_origins or [])
    local = tuple(f"{host}:{port}" for host in _LOOPBACK_HOSTS)
    if loopback:
        if allowed:
            raise ParameterError(
                f"--allow-origin is for a non-loopback --address; on {address} only pages from "
                "this machine (localhost) may connect"
            )
        return Access(address, port, local)
    if not allowed:
        raise ParameterError(
            f"--address {address} exposes the dashboard to the network: name the host browsers "
            "will use with --allow-origin HOST[:PORT] (a password is then required)"
        )
    origins = tuple(dict.fromkeys([*(_origin(value, port) for value in allowed), *local]))
    password = environ.get(PASSWORD_VARIABLE, "")
    if password and len(password) < MIN_PASSWORD_CHARS:
        raise ParameterError(
            f"{PASSWORD_VARIABLE} is shorter than {MIN_PASSWORD_CHARS} characters; choose a "
            "longer password, or unset it to have one generated"
        )
    if password:
        return Access(address, port, origins, password)
    return Access(address, port, origins, secrets.token_urlsafe(12), password_generated=True)


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise ParameterError(f"--port {port} is not a port number; use 1 to 65535")


def _is_loopback(address: str) -> bool:
    """Whether `address` (an IP address or `localhost`) is this machine's loopback."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        raise ParameterError(
            f"--address {address!r} is not an IP address; use 127.0.0.1 (this machine only), "
            "0.0.0.0 (every network interface) or one of this machine's addresses"
        ) from None


def _origin(value: str, port: int) -> str:
    """`host:port` from `--allow-origin HOST[:PORT]` (the port defaults to the server's)."""
    text = value.strip()
    for scheme in ("http://", "https://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if "*" in text:
        raise ParameterError(
            f"--allow-origin {value!r}: a wildcard would let any web site drive the dashboard; "
            "name each host browsers will use, e.g. --allow-origin lab-server.example.org"
        )
    match = _ORIGIN.fullmatch(text)
    if match is None or not 1 <= int(match["port"] or port) <= 65535:
        raise ParameterError(
            f"--allow-origin {value!r} is not HOST[:PORT], e.g. lab-server.example.org:5006 "
            "(IPv6 origins are not supported)"
        )
    return f"{match['host'].lower()}:{int(match['port'] or port)}"
