"""The metrics stream: a run publishes `MetricsSample`s; any process may subscribe.

Transport: a Unix stream socket owned by the run's supervisor, at a path recorded in the
run's manifest (normally ``<run dir>/metrics.sock``, permissions 0600). Each frame is a
4-byte length and a msgpack `MetricsSample`. Why a socket rather than a shared-memory block:
subscribers are unrelated processes (a dashboard, another terminal), and on Python 3.11 a
process that attaches to someone else's shared memory registers it with its own resource
tracker, which unlinks the segment when that process exits, breaking the run. A socket
gives push delivery to many readers, costs nothing when nobody listens, cannot be corrupted
by a reader, and a reader that stops reading is simply dropped: it can never slow the run.

A subscriber gets the latest sample at once on connecting, then every new one, and may send
one request back: ``cancel``. Closing the subscriber detaches it; the run does not notice.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from ipc.messages import MetricsSample

__all__ = ["CANCEL_REQUEST", "MetricsPublisher", "MetricsSubscriber", "metrics_socket_path"]

_LENGTH = struct.Struct("<I")
CANCEL_REQUEST = b"cancel"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_SEND_TIMEOUT_S = 0.05


_PRIVATE_PREFIX = "amdsim-"  # of the temporary directory a too-long socket path gets


def metrics_socket_path(run_dir: Path) -> Path:
    """``<run_dir>/metrics.sock``, or a private temporary path if that would be too long."""
    path = run_dir / "metrics.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX)) / "metrics.sock"


def _is_private_directory(directory: Path) -> bool:
    """Whether `directory` is one `metrics_socket_path` made for a long run path."""
    return directory.name.startswith(_PRIVATE_PREFIX) and directory.parent == Path(
        tempfile.gettempdir()
    )


class MetricsPublisher:
    """Serves samples to every connected subscriber from a background thread."""

    def __init__(self, path: Path, on_request: Callable[[bytes], None] | None = None) -> None:
        self.path = path
        self._on_request = on_request
        self._encoder = msgspec.msgpack.Encoder()
        self._latest: bytes | None = None
        self._lock = threading.RLock()  # also serialises sends, so frames never interleave
        self._clients: list[socket.socket] = []  # receiving samples
        self._sockets: set[socket.socket] = set()  # open, read for requests until EOF
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket left by a crashed run
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        os.chmod(path, 0o600)
        self._server.listen(16)
        self._wake_read, self._wake_write = socket.socketpair()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="metrics-publisher", daemon=True)
        self._thread.start()

    @property
    def subscriber_count(self) -> int:
        """Subscribers currently connected."""
        with self._lock:
            return len(self._clients)

    def publish(self, sample: MetricsSample) -> None:
        """Send `sample` to every subscriber; one that cannot keep up is disconnected."""
        payload = self._encoder.encode(sample)
        frame = _LENGTH.pack(len(payload)) + payload
        with self._lock:
            self._latest = frame
            for client in list(self._clients):
                self._send(client, frame)

    def close(self) -> None:
        """Disconnect every subscriber and remove the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")
        self._thread.join(timeout=2.0)
        with self._lock:
            for client in self._sockets:
                with contextlib.suppress(OSError):
                    client.close()
            self._sockets.clear()
            self._clients.clear()
        for sock in (self._server, self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if _is_private_directory(self.path.parent):  # metrics_socket_path's fallback
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()

    def __enter__(self) -> MetricsPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._server, selectors.EVENT_READ)
        selector.register(self._wake_read, selectors.EVENT_READ)
        try:
            while not self._closed:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        return
                    try:
                        if key.fileobj is self._server:
                            self._accept(selector)
                        else:
                            self._read_request(key.fileobj, selector)
                    except (OSError, ValueError, KeyError):
                        continue  # one subscriber's trouble never stops the stream
        finally:
            selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            client, _ = self._server.accept()
        except OSError:
            return
        client.settimeout(_SEND_TIMEOUT_S)
        selector.register(client, selectors.EVENT_READ)  # first, so no request goes unread
        with self._lock:
            self._sockets.add(client)
            self._clients.append(client)
            if self._latest is not None:
                self._send(client, self._latest)

    def _read_request(self, client: socket.socket, selector: selectors.BaseSelector) -> None:
        try:
            data = client.recv(64)
        except OSError:
            data = b""
        if data.strip() == CANCEL_REQUEST and self._on_request is not None:
            self._on_request(CANCEL_REQUEST)
        if not data:
            selector.unregister(client)
            with self._lock:
                self._stop_sending(client)
                self._sockets.discard(client)
            with contextlib.suppress(OSError):
                client.close()

    def _send(self, client: socket.socket, frame: bytes) -> None:
        try:
            client.sendall(frame)
        except OSError:  # gone, or too slow to take a frame in time: send it nothing more
            self._stop_sending(client)

    def _stop_sending(self, client: socket.socket) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)


class MetricsSubscriber:
    """A connection to a run's metrics stream; iterate for samples until the run ends."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 5.0) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout_s)
        try:
            self._socket.connect(os.fspath(path))
        except OSError:
            self._socket.close()
            raise
        self._decoder = msgspec.msgpack.Decoder(MetricsSample)
        self._buffer = bytearray()

    def next(self, timeout_s: float | None = 5.0) -> MetricsSample | None:
        """The next sample, or None once the run has closed the stream.

        Raises `TimeoutError` if nothing arrives within `timeout_s`.
        """
        self._socket.settimeout(timeout_s)
        while True:
            if len(self._buffer) >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(self._buffer)
                if len(self._buffer) >= _LENGTH.size + length:
                    payload = bytes(self._buffer[_LENGTH.size : _LENGTH.size + length])
                    del self._buffer[: _LENGTH.size + length]
                    return self._decoder.decode(payload)
            try:
                chunk = self._socket.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer.extend(chunk)

    def __iter__(self) -> Iterator[MetricsSample]:
        while (sample := self.next(timeout_s=None)) is not None:
            yield sample

    def request_cancel(self) -> None:
        """Ask the run to cancel itself (it stops workers and records `cancelled`)."""
        self._socket.sendall(CANCEL_REQUEST)

    def close(self) -> None:
        """Detach from the stream (idempotent); the run is not affected."""
        with contextlib.suppress(OSError):
            self._socket.close()

    def __enter__(self) -> MetricsSubscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
