"""Who may reach a dashboard server, and how `amdsim dashboard` refuses bad addresses and ports.

Servers bound to 0.0.0.0 here are only ever contacted through 127.0.0.1: no test sends
anything to another address.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import re
import socket
import subprocess
import urllib.parse

import pytest

from engine.errors import ParameterError
from tests.viz.dashboard_server import running_dashboard
from tests.viz.pages import AMDSIM
from viz.access import PASSWORD_VARIABLE, USER, plan_access

FOREIGN = "http://evil.example:8080"


def run_dashboard(*arguments: str, runs_root) -> subprocess.CompletedProcess[str]:
    command = [AMDSIM, "dashboard", *arguments, "--runs-dir", str(runs_root)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert text in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        (["--port", "-1"], "--port -1 is not a port number; use 1 to 65535"),
        (["--port", "70000"], "--port 70000 is not a port number; use 1 to 65535"),
        (["--address", "256.1.1.1"], "--address '256.1.1.1' is not an IP address"),
    ],
)
def test_dashboard_bad_port_or_address_is_one_line_exit_2(arguments, text, tmp_path):
    """Case 14: a bad --port or --address is one line on stderr, exit 2, no traceback."""
    assert_one_line(run_dashboard(*arguments, runs_root=tmp_path / "runs"), 2, text)


def test_dashboard_on_a_port_in_use_is_one_line_exit_1(tmp_path):
    """Case 14: a port already in use is one line on stderr, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_dashboard("--port", str(port), runs_root=tmp_path / "runs")
    assert_one_line(done, 1, f"cannot listen on 127.0.0.1:{port}: the port is in use")


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        (["--address", "0.0.0.0"], "name the host browsers will use with --allow-origin"),
        (["--address", "0.0.0.0", "--allow-origin", "*"], "a wildcard would let any web site"),
        (["--address", "0.0.0.0", "--allow-origin", "*:5006"], "a wildcard would let any"),
        (["--allow-origin", "lab.example.org"], "--allow-origin is for a non-loopback"),
    ],
)
def test_exposed_dashboard_needs_named_origins_never_a_wildcard(arguments, text, tmp_path):
    """Case 16: a non-loopback address needs --allow-origin HOST[:PORT]; '*' is refused."""
    assert_one_line(run_dashboard(*arguments, runs_root=tmp_path / "runs"), 2, text)


def test_access_plans_origins_and_password():
    local = plan_access("127.0.0.1", 5006)
    assert local.origins == ("localhost:5006", "127.0.0.1:5006") and not local.exposed
    exposed = plan_access(
        "0.0.0.0", 5006, ["https://Lab.example.org/", "10.0.0.7:8443"], environ={}
    )
    assert exposed.origins == (
        "lab.example.org:5006",
        "10.0.0.7:8443",
        "localhost:5006",
        "127.0.0.1:5006",
    )
    assert exposed.password_generated and len(exposed.password) >= 16
    chosen = plan_access("0.0.0.0", 5006, ["lab"], environ={PASSWORD_VARIABLE: "correct horse"})
    assert chosen.password == "correct horse" and not chosen.password_generated
    with pytest.raises(ParameterError, match="shorter than 8 characters"):
        plan_access("0.0.0.0", 5006, ["lab"], environ={PASSWORD_VARIABLE: "short"})


# -- a served dashboard, reached only through 127.0.0.1 ----------------------------------


def request(port: int, method: str, path: str, body: str = "", headers: dict | None = None):
    """One HTTP request to 127.0.0.1:`port`, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.msg, response.read().decode()
    finally:
        connection.close()


def log_in(port: int, password: str) -> tuple[int, str, str]:
    """(status, Location, the `user` cookie or '') of posting the login form."""
    form = urllib.parse.urlencode({"username": USER, "password": password})
    status, headers, _ = request(
        port,
        "POST",
        "/login",
        form,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    cookies = headers.get_all("Set-Cookie") or []
    user = next((c.split(";")[0] for c in cookies if c.startswith("user=")), "")
    return status, headers.get("Location", ""), user


def open_websocket(port: int, origin: str, cookie: str = "") -> str | None:
    """Open the Bokeh WebSocket as a browser page from `origin` would; the first frame the
    server sends (the header of its ACK), or None if it closed the connection without one.
    Raises tornado's HTTPClientError if the handshake is refused (403)."""
    from bokeh.util.token import generate_jwt_token, generate_session_id
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Origin": origin, **({"Cookie": cookie} if cookie else {})}
    token = generate_jwt_token(generate_session_id())

    async def first_frame() -> str | None:
        ws_request = HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers=headers)
        connection = await websocket_connect(ws_request, subprotocols=["bokeh", token])
        try:
            return await asyncio.wait_for(connection.read_message(), 30)
        finally:
            connection.close()

    # In a thread of its own: the browser tests' Playwright (sync API) keeps an event loop
    # running in this thread for the rest of the session, where asyncio.run would refuse.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, first_frame()).result()


@pytest.mark.slow  # starts a dashboard process (~15 s on 2 busy cores)
def test_exposed_dashboard_refuses_foreign_origins_and_missing_passwords(tmp_path):
    """Case 16: on 0.0.0.0 the dashboard asks for the password printed once at start-up,
    and refuses a WebSocket from a foreign Origin even with it."""
    from tornado.httpclient import HTTPClientError

    log = tmp_path / "dashboard.log"
    with running_dashboard(
        tmp_path / "runs",
        log,
        arguments=lambda port: ["--address", "0.0.0.0", "--allow-origin", f"127.0.0.1:{port}"],
        env={PASSWORD_VARIABLE: ""},
    ) as server:
        port = urllib.parse.urlparse(server.url).port
        local = f"http://127.0.0.1:{port}"
        text = log.read_text()
        assert "warning: the dashboard listens on 0.0.0.0" in text
        (password,) = re.findall(r"password for user 'amdsim' \(shown once.*\): (\S+)", text)

        status, headers, _ = request(port, "GET", "/")
        assert status == 302 and headers["Location"].startswith("./login")
        status, _, page = request(port, "GET", "/login")
        assert status == 200 and "amdsim dashboard" in page
        assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere
        status, location, user = log_in(port, "not the password")
        assert status == 302 and "error=" in location and not user
        with pytest.raises(HTTPClientError) as refused:
            open_websocket(port, local)  # a local page, but no login
        assert refused.value.code == 403

        status, location, user = log_in(port, password)
        assert status == 302 and user.startswith("user=")
        status, _, page = request(port, "GET", "/", headers={"Cookie": user})
        assert status == 200 and "<title>amdsim dashboard</title>" in page
        assert '"msgtype": "ACK"' in (open_websocket(port, local, user) or "")
        with pytest.raises(HTTPClientError) as refused:
            open_websocket(port, FOREIGN, user)
        assert refused.value.code == 403


@pytest.mark.slow  # starts a dashboard process (~15 s on 2 busy cores)
def test_loopback_dashboard_needs_no_password_and_refuses_foreign_origins(tmp_path):
    """Case 16: on 127.0.0.1 (the default) there is no login, and only local pages connect."""
    from tornado.httpclient import HTTPClientError

    with running_dashboard(tmp_path / "runs", tmp_path / "dashboard.log") as server:
        port = urllib.parse.urlparse(server.url).port
        status, _, _ = request(port, "GET", "/login")
        assert status == 404
        assert '"msgtype": "ACK"' in (open_websocket(port, f"http://localhost:{port}") or "")
        with pytest.raises(HTTPClientError) as refused:
            open_websocket(port, FOREIGN)
        assert refused.value.code == 403
        with pytest.raises(HTTPClientError):
            open_websocket(port, f"http://127.0.0.1:{port + 1}")  # another local port
