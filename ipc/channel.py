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
See also: the implementation, re-exported here: `ipc._channel_base` (frames, errors, spec,
statistics, the owner's `Channel`), `ipc._channel_sender`, `ipc._channel_receiver`.
"""

from __future__ import annotations

from ipc._channel_base import (
    HEADER_BYTES,
    INLINE_BYTES,
    SENDER_SLOT_BYTES,
    Channel,
    ChannelClosedError,
    ChannelSpec,
    ChannelStatistics,
    EndOfChannel,
    MessageTooLargeError,
    WouldBlock,
    bounded_credits,
)
from ipc._channel_receiver import ChannelReceiver, Received
from ipc._channel_sender import ChannelSender

__all__ = [
    "HEADER_BYTES",
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
