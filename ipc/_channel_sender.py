"""A channel's sender: fills the slots it is lent, or sends small messages inline.

See `ipc.channel` for the design; the receiver is `ipc._channel_receiver`.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque

import msgspec

from ipc._channel_base import (
    CREDIT,
    FILLED,
    FRAME,
    HEADER_BYTES,
    HELLO,
    INLINE,
    INLINE_BYTES,
    SLOT,
    ChannelClosedError,
    ChannelSpec,
    MessageTooLargeError,
    WouldBlock,
    attach,
    close_segment,
    connect,
)

__all__ = ["ChannelSender"]


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
        self._segment = attach(spec.segment)
        self._encoder = msgspec.msgpack.Encoder()
        self._buffer = bytearray(spec.slot_bytes)
        self._credits: deque[int] = deque()
        self._closed = False
        try:
            self._conn = connect(spec, connect_timeout_s)
            wanted = spec.credits_per_sender if credits is None else credits
            self._conn.send_bytes(HELLO + FRAME.pack(sender_id, wanted))
        except BaseException:
            self._segment.close()
            raise

    def send(self, message: msgspec.Struct, timeout_s: float | None = None) -> None:
        """Send `message`, waiting for a free slot if none is held (backpressure).

        Raises `MessageTooLargeError` if the encoded message exceeds a slot, `TimeoutError`
        if no slot came within `timeout_s`, `ChannelClosedError` if the receiver is gone.
        """
        size = self._encode(message)
        if self._sent_inline(size):
            return
        self._collect_credits(block=False)
        if not self._credits:
            self._collect_credits(block=True, timeout_s=timeout_s)
        self._fill(size)

    def send_nowait(self, message: msgspec.Struct) -> None:
        """Send `message` or raise `WouldBlock` at once if no slot is held."""
        size = self._encode(message)
        if self._sent_inline(size):
            return
        self._collect_credits(block=False)
        if not self._credits:
            raise WouldBlock(f"sender {self.sender_id} holds no free slot")
        self._fill(size)

    def _sent_inline(self, size: int) -> bool:
        """Send the encoded message on the socket itself if it is small enough (no slot)."""
        if size > INLINE_BYTES:
            return False
        self._write(INLINE + bytes(memoryview(self._buffer)[:size]))
        return True

    def close(self) -> None:
        """Close the connection (the receiver sees this sender end); idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._conn.close()
        close_segment(self._segment)

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
        self._write(FILLED + FRAME.pack(slot, size))

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
                if frame[:1] == CREDIT:
                    self._credits.extend(slot for (slot,) in SLOT.iter_unpack(frame[1:]))
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
