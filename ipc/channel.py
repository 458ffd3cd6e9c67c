"""A bounded many-to-one channel: msgspec messages through shared-memory slots.

Design. The owner (the supervisor) creates one shared-memory segment cut into fixed-size
slots and keeps it until the run ends (it alone unlinks it). The receiver listens on a Unix
socket; each sender connects, and the receiver lends it a few slots as *credits*. To send,
a sender encodes the message, copies it into a slot it holds and tells the receiver which
slot over its own connection; the receiver decodes it in place (columns as memoryviews
into the slot, no copy) and, once the caller releases it, hands the slot back. A sender
with no credit waits for one: that is the backpressure, and the bound on memory. Small
messages (under `INLINE_BYTES`) skip the slots and travel on the connection itself; they are
bounded too: once a sender has as many inline messages unreleased as it has credits, the
receiver stops reading its connection until one is released, so the sender's next send
blocks on the full socket.

Flow control cannot deadlock, whatever the number of slots. The receiver is the side that
reads, so it never waits on a send: credits go out as one frame per batch of slots, written
without blocking; what a sender's full socket does not take waits in the receiver (merged
into the next frame) until the socket has room, while the receiver keeps reading. A sender
blocked sending therefore always gets unblocked, and it reads its credits when it needs one.

Why this shape. No lock or queue is shared between processes, so a sender killed at any
moment (even while waiting for a slot) cannot wedge the others: its connection simply
reaches EOF, its unfilled slots go back to the pool, and everything it did send is still
delivered first. Senders may join at any time (a replacement worker just connects), and the
channel ends, like Trio's, when every sender the receiver has admitted has closed. A sender
is admitted shortly after it connects, so to hand over between senders without a gap, keep
one open: the owner names its sender in the spec and holds it until it will start no more,
and the channel cannot end before that sender has connected and closed. How many slots to
make is the owner's choice; `bounded_credits` caps a wish at `SENDER_SLOT_BYTES` per sender,
so the segment does not grow with how finely a run is cut.

Does not cover: what the messages mean (`ipc.messages`), who sends what (`engine.pipeline`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import secrets
import selectors
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing import connection, shared_memory
from typing import Any

import msgspec

from ipc.segments import segment_name

__all__ = [
    "INLINE_BYTES",
    "SENDER_SLOT_BYTES",
    "Channel",
    "ChannelClosedError",
    "ChannelReceiver",
    "ChannelSender",
    "ChannelSpec",
    "ChannelStatistics",
    "EndOfChannel",
    "MessageTooLargeError",
    "Received",
    "WouldBlock",
    "bounded_credits",
]

INLINE_BYTES = 64 * 1024
SENDER_SLOT_BYTES = 64 << 20  # `bounded_credits`: the most slot bytes one sender is lent
HEADER_BYTES = 64  # statistics kept by the receiver at the start of the segment
_STATS = struct.Struct("<qqqq")  # in_use, peak, messages, bytes
_CONNECT_RETRY_S = 0.01

# Wire frames on a sender's connection (tag byte + fields).
_HELLO = b"H"  # sender -> receiver: sender id
_FILLED = b"F"  # sender -> receiver: slot, bytes
_INLINE = b"I"  # sender -> receiver: the encoded message itself
_CREDIT = b"C"  # receiver -> sender: slots the sender may fill, any number in one frame
_FRAME = struct.Struct("<qq")
_SLOT = struct.Struct("<q")
_LENGTH = struct.Struct("!i")  # the length prefix `multiprocessing.connection` frames carry


class EndOfChannel(Exception):
    """Raised by `ChannelReceiver.receive` once every sender has closed and all is received."""


class ChannelClosedError(Exception):
    """The other end of the channel is gone (receiver exited, or this end was closed)."""


class WouldBlock(Exception):
    """Raised by `send_nowait` when the sender holds no free slot."""


class MessageTooLargeError(ValueError):
    """A message does not fit in a slot; split it or create the channel with larger slots."""


class ChannelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a process needs to join a channel; safe to pass to child processes."""

    segment: str
    address: str
    authkey: bytes
    slot_count: int
    slot_bytes: int
    credits_per_sender: int
    owner_sender: int | None = None  # if set, the channel cannot end before it has connected


def bounded_credits(wanted: int, slot_bytes: int) -> int:
    """`wanted` credits per sender, but no more slots than `SENDER_SLOT_BYTES` hold (at least 2).

    For owners that size the channel from their work (slots for a block of shards): the
    segment then stays bounded however finely the work is cut.
    """
    return max(1, min(wanted, max(2, SENDER_SLOT_BYTES // slot_bytes)))


class ChannelStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Occupancy of a channel: slots filled and not yet released, now and at the peak."""

    slot_count: int
    slot_bytes: int
    in_use: int
    peak_in_use: int
    messages: int
    bytes: int


class Channel:
    """The owner's handle: creates the shared-memory segment and removes it on `close`."""

    def __init__(
        self,
        slot_count: int,
        slot_bytes: int,
        credits_per_sender: int = 2,
        owner_sender: int | None = None,
        tag: str = "channel",
    ) -> None:
        """Create the segment. With `owner_sender`, the channel stays open until that sender
        has connected and closed, so other senders may start before the owner connects.
        `tag` goes into the segment's name (a run id), so a crash's leftovers can be found.
        """
        if slot_count < 1 or slot_bytes < 1024 or credits_per_sender < 1:
            raise ValueError("a channel needs at least one slot of at least 1 KiB and 1 credit")
        self._segment = shared_memory.SharedMemory(
            name=segment_name(tag), create=True, size=HEADER_BYTES + slot_count * slot_bytes
        )
        self._segment.buf[:HEADER_BYTES] = bytes(HEADER_BYTES)
        self.spec = ChannelSpec(
            segment=self._segment.name,
            address=_new_address(),
            authkey=secrets.token_bytes(32),
            slot_count=slot_count,
            slot_bytes=slot_bytes,
            credits_per_sender=credits_per_sender,
            owner_sender=owner_sender,
        )
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def statistics(self) -> ChannelStatistics:
        """Current occupancy, as last recorded by the receiver."""
        if self._closed:
            raise ChannelClosedError("the channel is closed")
        return _read_statistics(self._segment, self.spec)

    def close(self) -> None:
        """Unlink the segment (idempotent); processes still attached keep their mapping."""
        if self._closed:
            return
        self._closed = True
        self._segment.close()
        with contextlib.suppress(FileNotFoundError):
            self._segment.unlink()
        if not self.spec.address.startswith("\0"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.spec.address)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChannelSender:
    """One sender: connects to the receiver, sends messages through the slots it is lent."""

    def __init__(
        self,
        spec: ChannelSpec,
        sender_id: int,
        connect_timeout_s: float = 30.0,
        credits: int | None = None,
    ) -> None:
        """Connect as `sender_id`, asking for `credits` slots (default: the channel's share).

        A sender that only sends small (inline) messages, like the owner's, asks for 0.
        """
        self.spec = spec
        self.sender_id = sender_id
        self._segment = _attach(spec.segment)
        self._encoder = msgspec.msgpack.Encoder()
        self._buffer = bytearray(spec.slot_bytes)
        self._credits: deque[int] = deque()
        self._closed = False
        try:
            self._conn = _connect(spec, connect_timeout_s)
            wanted = spec.credits_per_sender if credits is None else credits
            self._conn.send_bytes(_HELLO + _FRAME.pack(sender_id, wanted))
        except BaseException:
            self._segment.close()
            raise

    def send(self, message: msgspec.Struct, timeout_s: float | None = None) -> None:
        """Send `message`, waiting for a free slot if none is held (backpressure).

        Raises `MessageTooLargeError` if the encoded message exceeds a slot, `TimeoutError`
        if no slot came within `timeout_s`, `ChannelClosedError` if the receiver is gone.
        """
        size = self._encode(message)
        if size <= INLINE_BYTES:
            self._write(_INLINE + bytes(memoryview(self._buffer)[:size]))
            return
        self._collect_credits(block=False)
        if not self._credits:
            self._collect_credits(block=True, timeout_s=timeout_s)
        self._fill(size)

    def send_nowait(self, message: msgspec.Struct) -> None:
        """Send `message` or raise `WouldBlock` at once if no slot is held."""
        size = self._encode(message)
        if size <= INLINE_BYTES:
            self._write(_INLINE + bytes(memoryview(self._buffer)[:size]))
            return
        self._collect_credits(block=False)
        if not self._credits:
            raise WouldBlock(f"sender {self.sender_id} holds no free slot")
        self._fill(size)

    def close(self) -> None:
        """Close the connection (the receiver sees this sender end); idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._conn.close()
        self._segment.close()

    def __enter__(self) -> ChannelSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _encode(self, message: msgspec.Struct) -> int:
        if self._closed:
            raise ChannelClosedError(f"sender {self.sender_id} is closed")
        self._encoder.encode_into(message, self._buffer)
        size = len(self._buffer)
        if size > self.spec.slot_bytes:
            del self._buffer[self.spec.slot_bytes :]
            raise MessageTooLargeError(
                f"a {type(message).__name__} of {size / 2**20:.2f} MiB does not fit a "
                f"{self.spec.slot_bytes / 2**20:.2f} MiB channel slot; split it or use larger slots"
            )
        return size

    def _fill(self, size: int) -> None:
        slot = self._credits.popleft()
        start = HEADER_BYTES + slot * self.spec.slot_bytes
        self._segment.buf[start : start + size] = memoryview(self._buffer)[:size]
        self._write(_FILLED + _FRAME.pack(slot, size))

    def _write(self, frame: bytes) -> None:
        try:
            self._conn.send_bytes(frame)
        except (OSError, EOFError) as exc:
            raise ChannelClosedError("the channel receiver is gone") from exc

    def _collect_credits(self, block: bool, timeout_s: float | None = None) -> None:
        """Take every credit already sent; with `block`, wait until at least one is held."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if self._poll(0):
                frame = self._receive_frame()
                if frame[:1] == _CREDIT:
                    self._credits.extend(slot for (slot,) in _SLOT.iter_unpack(frame[1:]))
                continue
            if not block or self._credits:
                return
            wait_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._poll(wait_s):
                # Raised here, outside the connection-error handling: TimeoutError is an OSError.
                raise TimeoutError(f"no channel slot became free within {timeout_s} s")

    def _poll(self, timeout_s: float | None) -> bool:
        try:
            return self._conn.poll(timeout_s)
        except (OSError, EOFError) as exc:
            raise ChannelClosedError("the channel receiver is gone") from exc

    def _receive_frame(self) -> bytes:
        try:
            return self._conn.recv_bytes()
        except (OSError, EOFError) as exc:
            raise ChannelClosedError("the channel receiver is gone") from exc


class Received:
    """A received message; its memoryviews point into a slot until `release()`.

    Use as a context manager, or call `release()` once the message's buffers are no longer
    needed (after that the sender may overwrite them). `release()` may be called from any
    thread: the slot is handed back by the receiving thread, which it wakes up.
    """

    def __init__(self, message: Any, sender_id: int, release: Callable[[], None]) -> None:
        self.message = message
        self.sender_id = sender_id
        self._release = release

    def release(self) -> None:
        """Give the slot back to its sender (idempotent)."""
        release, self._release = self._release, None
        self.message = None
        if release is not None:
            release()

    def __enter__(self) -> Any:
        return self.message

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _SenderState:
    """What the receiver knows of one sender's connection; changed by the receiving thread only."""

    def __init__(self, conn: connection.Connection) -> None:
        self.conn = conn
        # A second handle on the same socket, for sends that must never block (MSG_DONTWAIT);
        # the connection itself stays blocking, so a frame is always read whole.
        self.socket = socket.socket(fileno=os.dup(conn.fileno()))
        self.sender_id: int | None = None
        self.wanted = 0
        self.credits: set[int] = set()  # slots lent to it (sent or still to send), not filled
        self.unsent: list[int] = []  # lent, not yet written: they go out in the next frame
        self.outgoing = b""  # the part of a credit frame its socket has not taken yet
        self.filled = 0  # slots it filled that are not yet released
        self.inline_held = 0  # inline messages received from it, not yet released
        self.closed = False
        self.broken = False  # a send to it failed; its EOF is still to be read

    @property
    def readable(self) -> bool:
        """False while it has as many inline messages unreleased as credits: backpressure."""
        return not self.closed and self.inline_held < max(1, self.wanted)

    @property
    def has_output(self) -> bool:
        return not self.broken and bool(self.outgoing or self.unsent)

    @property
    def drained(self) -> bool:
        return self.filled == 0 and self.inline_held == 0

    def close(self) -> None:
        self.closed = True
        for handle in (self.socket, self.conn):
            with contextlib.suppress(OSError):
                handle.close()


class ChannelReceiver:
    """The single receiver: lends slots to senders and yields their messages in order.

    `on_sender_closed(sender_id)` is called once everything a sender put in the channel has
    been received and released, so the caller knows that sender's output is complete.
    """

    def __init__(
        self,
        spec: ChannelSpec,
        decoder: msgspec.msgpack.Decoder,
        on_sender_closed: Callable[[int], None] | None = None,
    ) -> None:
        self.spec = spec
        self._decoder = decoder
        self._on_sender_closed = on_sender_closed
        self._segment = _attach(spec.segment)
        self._free: deque[int] = deque(range(spec.slot_count))
        self._senders: list[_SenderState] = []
        self._in_flight: dict[int, _SenderState] = {}
        self._closing_after_release: dict[int, _SenderState] = {}
        self._ready: deque[Received] = deque()
        self._ever_connected = False
        self._owner_seen = False
        self._peak = 0
        self._messages = 0
        self._bytes = 0
        self._turn = itertools.count()
        self._closed = False
        self._new_connections: queue.SimpleQueue[connection.Connection] = queue.SimpleQueue()
        self._released: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._owner_thread = threading.get_ident()  # the thread that receives; slots change there
        self._wake_read, self._wake_write = socket.socketpair()
        self._listener = connection.Listener(spec.address, family="AF_UNIX", authkey=spec.authkey)
        self._acceptor = threading.Thread(
            target=self._accept_forever, name="channel-accept", daemon=True
        )
        self._acceptor.start()

    def _release_from_any_thread(self, release: Callable[[], None]) -> None:
        if threading.get_ident() == self._owner_thread:
            release()
            return
        self._released.put(release)
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")

    def _apply_releases(self) -> None:
        while True:
            try:
                release = self._released.get_nowait()
            except queue.Empty:
                return
            release()

    def receive(self, timeout_s: float | None = None) -> Received:
        """The next message from any sender; raises `EndOfChannel` when all have closed.

        Every frame already waiting is read first (up to each sender's allowance of inline
        messages), so occupancy counts everything sent and not yet released; messages are
        returned in arrival order per sender.
        """
        self._owner_thread = threading.get_ident()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self._apply_releases()
            if self._ready:
                return self._ready.popleft()
            self._admit_new_connections()
            if self._ended():
                raise EndOfChannel
            for state in self._in_turn(self._wait(deadline, timeout_s)):
                while state.readable and state.conn.poll(0):
                    result = self._read_one(state)
                    if result is not None:
                        self._ready.append(result)

    def _ended(self) -> bool:
        if self._senders or self._in_flight or self._closing_after_release:
            return False
        if self.spec.owner_sender is not None:
            return self._owner_seen
        return self._ever_connected

    def statistics(self) -> ChannelStatistics:
        """Current and peak occupancy as this receiver sees it."""
        if self._closed:
            raise ChannelClosedError("the channel receiver is closed")
        return _read_statistics(self._segment, self.spec)

    def close(self) -> None:
        """Stop listening, drop every sender connection and detach (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self._admit_new_connections()  # accepted but never received from: close those too
        for state in self._senders:
            state.close()
        self._senders.clear()
        self._wake_read.close()
        self._wake_write.close()
        with contextlib.suppress(BufferError):  # views still held elsewhere die with them
            self._segment.close()

    def __enter__(self) -> ChannelReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------

    def _accept_forever(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, connection.AuthenticationError):
                continue  # a client failed the handshake, or the listener was closed
            if self._closed:
                conn.close()
                return
            self._new_connections.put(conn)
            with contextlib.suppress(OSError):
                self._wake_write.send(b"\0")

    def _admit_new_connections(self) -> None:
        while True:
            try:
                conn = self._new_connections.get_nowait()
            except queue.Empty:
                return
            self._senders.append(_SenderState(conn))
            self._ever_connected = True

    def _wait(self, deadline: float | None, timeout_s: float | None) -> list[_SenderState]:
        """Wait until a sender may be read or the wake-up socket rings; meanwhile send the
        credits that wait for room in a sender's socket. Returns the senders to read.
        """
        wait_s = None if deadline is None else max(0.0, deadline - time.monotonic())
        with selectors.PollSelector() as selector:
            selector.register(self._wake_read, selectors.EVENT_READ)
            for state in self._senders:
                events = (selectors.EVENT_READ if state.readable else 0) | (
                    selectors.EVENT_WRITE if state.has_output else 0
                )
                if events:
                    selector.register(state.conn, events, state)
            ready = selector.select(wait_s)
        readable = []
        for key, events in ready:
            if key.fileobj is self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    self._wake_read.recv(4096)
                continue
            if events & selectors.EVENT_WRITE:
                self._flush(key.data)
            if events & selectors.EVENT_READ:
                readable.append(key.data)
        if not ready and deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"nothing received within {timeout_s} s")
        return readable

    def _in_turn(self, ready: list[_SenderState]) -> list[_SenderState]:
        states = [s for s in self._senders if s in ready]
        if len(states) > 1:
            shift = next(self._turn) % len(states)
            states = states[shift:] + states[:shift]
        return states

    def _read_one(self, state: _SenderState) -> Received | None:
        try:
            frame = state.conn.recv_bytes()
        except (OSError, EOFError):
            self._sender_gone(state)
            return None
        kind = frame[:1]
        if kind == _HELLO:
            state.sender_id, wanted = _FRAME.unpack_from(frame, 1)
            state.wanted = min(wanted, self.spec.credits_per_sender)
            self._owner_seen |= state.sender_id == self.spec.owner_sender
            self._lend_credits(state)
            self._flush(state)
            return None
        if kind == _INLINE:
            message = self._decoder.decode(memoryview(frame)[1:])
            state.inline_held += 1
            self._count(len(frame) - 1)
            return Received(
                message,
                state.sender_id,
                lambda: self._release_from_any_thread(lambda: self._release_inline(state)),
            )
        slot, size = _FRAME.unpack_from(frame, 1)
        state.credits.discard(slot)
        state.filled += 1
        self._in_flight[slot] = state
        self._count(size)
        start = HEADER_BYTES + slot * self.spec.slot_bytes
        view = self._segment.buf[start : start + size]
        try:
            message = self._decoder.decode(view)
        except BaseException:
            self._release(slot, view)
            raise
        return Received(
            message,
            state.sender_id,
            lambda: self._release_from_any_thread(lambda: self._release(slot, view)),
        )

    def _sender_gone(self, state: _SenderState) -> None:
        state.close()
        self._senders.remove(state)
        self._free.extend(state.credits)
        state.credits.clear()
        state.unsent.clear()
        state.outgoing = b""
        self._lend_spare_slots()
        if state.drained:
            self._announce_closed(state)
        else:
            self._closing_after_release[id(state)] = state

    def _announce_closed(self, state: _SenderState) -> None:
        if self._on_sender_closed is not None and state.sender_id is not None:
            self._on_sender_closed(state.sender_id)

    def _after_release(self, state: _SenderState) -> None:
        if (
            state.closed
            and state.drained
            and self._closing_after_release.pop(id(state), None) is not None
        ):
            self._announce_closed(state)

    # -- slots ---------------------------------------------------------------------------

    def _release(self, slot: int, view: memoryview | None = None) -> None:
        if view is not None:
            # Arrays the caller built on the message may still hold the buffer; they keep
            # it alive safely (the mapping outlives them), so a failed early release is fine.
            with contextlib.suppress(BufferError):
                view.release()
        state = self._in_flight.pop(slot)
        state.filled -= 1
        if state.closed or state.broken or len(state.credits) >= state.wanted:
            self._free.append(slot)
            self._lend_spare_slots()
        else:
            self._give(state, slot)
            self._flush(state)
        self._write_statistics()
        self._after_release(state)

    def _release_inline(self, state: _SenderState) -> None:
        state.inline_held -= 1  # it may be read again: the next wait includes it
        self._after_release(state)

    def _lend_credits(self, state: _SenderState) -> None:
        while self._free and not state.broken and len(state.credits) < state.wanted:
            self._give(state, self._free.popleft())

    def _lend_spare_slots(self) -> None:
        for state in self._senders:
            if state.sender_id is not None and self._free:
                self._lend_credits(state)
                self._flush(state)

    def _give(self, state: _SenderState, slot: int) -> None:
        state.credits.add(slot)
        state.unsent.append(slot)

    def _flush(self, state: _SenderState) -> None:
        """Send the sender its unsent credits, as far as its socket takes them; never blocks.

        The rest waits for `_wait` to see the socket writable (new credits join the next frame).
        """
        while state.has_output:
            if not state.outgoing:
                payload = _CREDIT + b"".join(_SLOT.pack(slot) for slot in state.unsent)
                state.outgoing = _LENGTH.pack(len(payload)) + payload
                state.unsent.clear()
            try:
                sent = state.socket.send(state.outgoing, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return  # its socket is full: it is busy sending, and will read later
            except OSError:  # it has gone; lend it nothing more (its EOF is still to be read)
                self._broken(state)
                return
            state.outgoing = state.outgoing[sent:]

    def _broken(self, state: _SenderState) -> None:
        state.broken = True
        for slot in state.unsent:
            state.credits.discard(slot)
            self._free.append(slot)
        state.unsent.clear()
        state.outgoing = b""

    def _count(self, size: int) -> None:
        self._messages += 1
        self._bytes += size
        self._peak = max(self._peak, len(self._in_flight))
        self._write_statistics()

    def _write_statistics(self) -> None:
        if not self._closed:
            _STATS.pack_into(
                self._segment.buf, 0, len(self._in_flight), self._peak, self._messages, self._bytes
            )


def _read_statistics(segment: shared_memory.SharedMemory, spec: ChannelSpec) -> ChannelStatistics:
    in_use, peak, messages, size = _STATS.unpack_from(segment.buf, 0)
    return ChannelStatistics(
        slot_count=spec.slot_count,
        slot_bytes=spec.slot_bytes,
        in_use=in_use,
        peak_in_use=peak,
        messages=messages,
        bytes=size,
    )


def _new_address() -> str:
    """A Unix socket address: abstract (no file to clean up) on Linux, a private file elsewhere."""
    name = f"amdsim-{os.getpid()}-{secrets.token_hex(8)}"
    if sys.platform.startswith("linux"):
        return "\0" + name
    return os.path.join(tempfile.mkdtemp(prefix="amdsim-"), "channel")


def _connect(spec: ChannelSpec, timeout_s: float) -> connection.Connection:
    """Connect, retrying while the receiver is still starting to listen."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return connection.Client(spec.address, family="AF_UNIX", authkey=spec.authkey)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() >= deadline:
                raise ChannelClosedError(
                    f"no channel receiver listening after {timeout_s} s"
                ) from None
            time.sleep(_CONNECT_RETRY_S)


def _attach(name: str) -> shared_memory.SharedMemory:
    """Map an existing segment. The owner unlinks it; attaching never takes that over."""
    try:
        return shared_memory.SharedMemory(name=name)
    except FileNotFoundError as exc:
        raise ChannelClosedError(f"the channel segment {name} no longer exists") from exc
