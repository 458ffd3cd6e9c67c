"""The channel's shared pieces: wire frames, errors, the spec and statistics, and the owner.

`Channel` (the owner's handle) creates and removes the segment; `ChannelSender` and
`ChannelReceiver` live in their own modules and meet here. Public names are re-exported by
`ipc.channel`, whose docstring describes the design.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import sys
import tempfile
import time
from multiprocessing import connection, shared_memory

import msgspec

from ipc.segments import segment_name

INLINE_BYTES = 64 * 1024
SENDER_SLOT_BYTES = 64 << 20  # `bounded_credits`: the most slot bytes one sender is lent
HEADER_BYTES = 64  # statistics kept by the receiver at the start of the segment
STATS = struct.Struct("<qqqq")  # in_use, peak, messages, bytes
CONNECT_RETRY_S = 0.01

# Wire frames on a sender's connection (tag byte + fields).
HELLO = b"H"  # sender -> receiver: sender id
FILLED = b"F"  # sender -> receiver: slot, bytes
INLINE = b"I"  # sender -> receiver: the encoded message itself
CREDIT = b"C"  # receiver -> sender: slots the sender may fill, any number in one frame
FRAME = struct.Struct("<qq")
SLOT = struct.Struct("<q")
LENGTH = struct.Struct("!i")  # the length prefix `multiprocessing.connection` frames carry


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
            address=new_address(),
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
        return read_statistics(self._segment, self.spec)

    def close(self) -> None:
        """Unlink the segment (idempotent); processes still attached keep their mapping."""
        if self._closed:
            return
        self._closed = True
        close_segment(self._segment)
        with contextlib.suppress(FileNotFoundError):
            self._segment.unlink()
        if not self.spec.address.startswith("\0"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.spec.address)

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_statistics(segment: shared_memory.SharedMemory, spec: ChannelSpec) -> ChannelStatistics:
    in_use, peak, messages, size = STATS.unpack_from(segment.buf, 0)
    return ChannelStatistics(
        slot_count=spec.slot_count,
        slot_bytes=spec.slot_bytes,
        in_use=in_use,
        peak_in_use=peak,
        messages=messages,
        bytes=size,
    )


def new_address() -> str:
    """A Unix socket address: abstract (no file to clean up) on Linux, a private file elsewhere."""
    name = f"amdsim-{os.getpid()}-{secrets.token_hex(8)}"
    if sys.platform.startswith("linux"):
        return "\0" + name
    return os.path.join(tempfile.mkdtemp(prefix="amdsim-"), "channel")


def connect(spec: ChannelSpec, timeout_s: float) -> connection.Connection:
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
            time.sleep(CONNECT_RETRY_S)


def attach(name: str) -> shared_memory.SharedMemory:
    """Map an existing segment. The owner unlinks it; attaching never takes that over."""
    try:
        return shared_memory.SharedMemory(name=name)
    except FileNotFoundError as exc:
        raise ChannelClosedError(f"the channel segment {name} no longer exists") from exc


def close_segment(segment: shared_memory.SharedMemory) -> None:
    """Close this process's mapping of `segment`, even while views of it are alive.

    A message decoded from a slot may still hold numpy arrays over the mapping (a writer
    that failed mid-batch, say). `SharedMemory.close` then raises `BufferError`, and would
    raise it again from `SharedMemory.__del__` at exit as an "Exception ignored" traceback on
    stderr. Instead the file descriptor is closed now and the mapping is left to the views:
    the mmap object is unmapped when the last of them is freed.
    """
    try:
        segment.close()
    except BufferError:
        segment._mmap = None  # the views hold the mmap object: no second close from __del__
        if segment._fd >= 0:
            os.close(segment._fd)
            segment._fd = -1
