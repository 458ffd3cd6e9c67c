"""A channel's receiver: lends slots as credits, reads every sender, never blocks on a send.

Covers: admitting senders, lending and taking back slots, the inline allowance, ending the
channel. Does not cover: the segment's lifetime (`ipc._channel_base.Channel`) or sending
(`ipc._channel_sender`). See `ipc.channel` for the design and why it cannot deadlock.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing import connection
from typing import Any

import msgspec

from ipc._channel_base import (
    CREDIT,
    FRAME,
    HEADER_BYTES,
    HELLO,
    INLINE,
    LENGTH,
    SLOT,
    STATS,
    ChannelClosedError,
    ChannelSpec,
    ChannelStatistics,
    EndOfChannel,
    attach,
    close_segment,
    read_statistics,
)

__all__ = ["ChannelReceiver", "Received"]


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
        self._segment = attach(spec.segment)
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
        return read_statistics(self._segment, self.spec)

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
        close_segment(self._segment)  # views still held elsewhere keep the mapping

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
        if kind == HELLO:
            state.sender_id, wanted = FRAME.unpack_from(frame, 1)
            state.wanted = min(wanted, self.spec.credits_per_sender)
            self._owner_seen |= state.sender_id == self.spec.owner_sender
            self._lend_credits(state)
            self._flush(state)
            return None
        if kind == INLINE:
            message = self._decoder.decode(memoryview(frame)[1:])
            state.inline_held += 1
            self._count(len(frame) - 1)
            return Received(
                message,
                state.sender_id,
                lambda: self._release_from_any_thread(lambda: self._release_inline(state)),
            )
        slot, size = FRAME.unpack_from(frame, 1)
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
                payload = CREDIT + b"".join(SLOT.pack(slot) for slot in state.unsent)
                state.outgoing = LENGTH.pack(len(payload)) + payload
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
            STATS.pack_into(
                self._segment.buf, 0, len(self._in_flight), self._peak, self._messages, self._bytes
            )
