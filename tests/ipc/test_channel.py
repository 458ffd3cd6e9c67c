"""The shared-memory channel: delivery, backpressure, ending, oversize, killed ends, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import msgspec
import numpy as np
import pytest

from engine.pipeline.processes import CONTEXT
from ipc.channel import (
    Channel,
    ChannelClosedError,
    ChannelReceiver,
    ChannelSender,
    EndOfChannel,
    MessageTooLargeError,
    WouldBlock,
)
from ipc.messages import ChannelMessage, ColumnBuffers, FinishRun, PatientBatch, TableBuffers

SLOT = 256 * 1024
DECODER = msgspec.msgpack.Decoder(ChannelMessage)


def batch(shard: int, size: int = 100_000) -> PatientBatch:
    """A batch carrying `size` bytes all equal to `shard % 256`."""
    data = np.full(size, shard % 256, dtype=np.uint8)
    column = ColumnBuffers(0, memoryview(data), memoryview(b""))
    return PatientBatch(
        shard=shard,
        part=0,
        part_count=1,
        attempt=0,
        first_patient=0,
        patients=TableBuffers(length=0, columns=[]),
        visits=TableBuffers(length=size, columns=[column]),
        stats=b"",
    )


def kill_all(processes) -> None:
    """Make sure no child outlives its test, whatever the test's outcome."""
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join(5)


def payload_ok(message: PatientBatch) -> bool:
    data = np.frombuffer(message.visits.columns[0].data, dtype=np.uint8)
    return len(data) == message.visits.length and bool((data == message.shard % 256).all())


def send_many(spec, sender_id: int, first: int, count: int, then_sleep_s: float = 0.0) -> None:
    """Child process: send `count` batches numbered from `first`, then optionally linger."""
    with ChannelSender(spec, sender_id) as sender:
        for shard in range(first, first + count):
            sender.send(batch(shard))
        time.sleep(then_sleep_s)


def receive_all(receiver: ChannelReceiver, timeout_s: float = 30.0) -> list[tuple[int, int, bool]]:
    got = []
    try:
        while True:
            with receiver.receive(timeout_s=timeout_s) as message:
                if isinstance(message, PatientBatch):
                    got.append((message.shard, len(got), payload_ok(message)))
    except EndOfChannel:
        return got


@pytest.fixture
def channel():
    """A 4-slot channel whose owner (sender 0) the test opens and closes, as the supervisor does."""
    with Channel(slot_count=4, slot_bytes=SLOT, credits_per_sender=2, owner_sender=0) as owned:
        yield owned


def join_then_close_owner(owner: ChannelSender, processes) -> threading.Thread:
    """Close the owner's sender once `processes` have exited, as the supervisor does."""

    def wait_and_close() -> None:
        for process in processes:
            process.join(30)
        owner.close()

    thread = threading.Thread(target=wait_and_close)
    thread.start()
    return thread


def test_batches_from_several_processes_arrive_intact_and_in_order_per_sender(channel):
    receiver = ChannelReceiver(channel.spec, DECODER)
    senders = [
        CONTEXT.Process(target=send_many, args=(channel.spec, k, k * 1000, 40)) for k in (1, 2)
    ]
    for process in senders:
        process.start()
    closer = join_then_close_owner(ChannelSender(channel.spec, 0, credits=0), senders)
    try:
        got = receive_all(receiver)
    finally:
        closer.join(30)
        receiver.close()
        kill_all(senders)
    assert len(got) == 80 and all(ok for _, _, ok in got)
    for k in (1, 2):
        shards = [shard for shard, _, _ in got if shard // 1000 == k]
        assert shards == list(range(k * 1000, k * 1000 + 40))
    assert channel.statistics().messages == 80


def test_a_full_channel_blocks_the_sender_until_a_slot_is_released(channel):
    receiver = ChannelReceiver(channel.spec, DECODER)
    held = []
    release_now = threading.Event()

    def receive_and_hold() -> None:
        """Hold the first two messages until told; after that release each at once."""
        with pytest.raises(EndOfChannel):
            while True:
                received = receiver.receive(timeout_s=10)
                if release_now.is_set():
                    received.release()
                    while held:
                        held.pop().release()
                    continue
                held.append(received)
                if len(held) == 2:
                    release_now.wait(10)
                    held.pop(0).release()

    thread = threading.Thread(target=receive_and_hold)
    thread.start()
    owner = ChannelSender(channel.spec, 0, credits=0)
    with ChannelSender(channel.spec, 1) as sender:
        sender.send(batch(1))
        sender.send(batch(2))  # both credits used, nothing released yet
        with pytest.raises(WouldBlock):
            sender.send_nowait(batch(3))
        with pytest.raises(TimeoutError, match=r"no channel slot became free within 0\.2 s"):
            sender.send(batch(3), timeout_s=0.2)
        release_now.set()
        sender.send(batch(3), timeout_s=5)  # the released slot comes back as a credit
        assert receiver.statistics().peak_in_use == 2
    owner.close()
    thread.join(10)
    for received in held:
        received.release()
    receiver.close()


def send_inline_then_slots(spec, inline: int, slotted: int) -> None:
    """Child process: `inline` small messages (which never read credits), then `slotted` big."""
    with ChannelSender(spec, 1) as sender:
        for shard in range(inline):
            sender.send(batch(shard, size=8_000))
        for shard in range(inline, inline + slotted):
            sender.send(batch(shard, size=70_000))  # over INLINE_BYTES: through a slot


def test_many_more_credits_than_a_socket_buffer_holds_do_not_deadlock():
    """Issue 10, case 1: 1,000 credits (one frame each used to overflow the socket) while the
    sender, sending inline, reads none: the receiver must keep reading, never block lending."""
    credits = 1_000
    slot_bytes = 72 * 1024  # just above INLINE_BYTES: a sparse 70 MiB segment
    with Channel(slot_count=credits, slot_bytes=slot_bytes, credits_per_sender=credits) as owned:
        receiver = ChannelReceiver(owned.spec, DECODER)
        sender = CONTEXT.Process(target=send_inline_then_slots, args=(owned.spec, 600, 40))
        sender.start()
        got: list[tuple[int, int, bool]] = []
        receiving = threading.Thread(target=lambda: got.extend(receive_all(receiver)), daemon=True)
        receiving.start()
        try:
            receiving.join(60)
            assert not receiving.is_alive(), "the receiver and sender deadlocked"
            sender.join(30)
        finally:
            kill_all([sender])  # unblocks a receiver stuck in a send, so the test can end
            receiving.join(10)
            receiver.close()
        statistics = owned.statistics()
    assert sender.exitcode == 0
    assert [shard for shard, _, _ in got] == list(range(640)) and all(ok for _, _, ok in got)
    assert statistics.messages == 640 and statistics.peak_in_use >= 1  # big ones used slots


def test_unreleased_inline_messages_stop_the_receiver_reading_their_sender(channel):
    """Small messages have backpressure too: at most `credits` unreleased per sender."""
    receiver = ChannelReceiver(channel.spec, DECODER)
    sent = []

    def send_small() -> None:
        with ChannelSender(channel.spec, 1) as sender:
            for shard in range(20):
                sender.send(batch(shard, size=60_000))  # inline: no slot involved
                sent.append(shard)

    sending = threading.Thread(target=send_small)
    sending.start()
    owner = ChannelSender(channel.spec, 0, credits=0)
    held = [receiver.receive(timeout_s=10), receiver.receive(timeout_s=10)]  # its 2 credits
    with pytest.raises(TimeoutError):
        receiver.receive(timeout_s=0.5)  # not read while two are held...
    assert sending.is_alive() and len(sent) < 20  # ...so its socket filled and it waits
    for received in held:
        received.release()
    owner.close()
    got = [shard for shard, _, _ in receive_all(receiver)]
    sending.join(10)
    receiver.close()
    assert [m.message for m in held] == [None, None]
    assert got == list(range(2, 20)) and sent == list(range(20))


def test_closing_the_last_sender_ends_the_receiver():
    channel = Channel(slot_count=4, slot_bytes=SLOT)
    receiver = ChannelReceiver(channel.spec, DECODER)
    first = ChannelSender(channel.spec, 1)
    second = ChannelSender(channel.spec, 2)
    first.send(FinishRun(status="completed"))  # small: travels inline
    second.send(FinishRun(status="cancelled"))
    statuses = set()
    for _ in range(2):  # once each has been heard from, both count as open
        with receiver.receive(timeout_s=5) as message:
            statuses.add(message.status)
    assert statuses == {"completed", "cancelled"}
    first.close()
    with pytest.raises(TimeoutError):
        receiver.receive(timeout_s=0.3)  # the second sender is still open
    second.close()
    with pytest.raises(EndOfChannel):
        receiver.receive(timeout_s=5)
    with pytest.raises(EndOfChannel):  # and it stays ended
        receiver.receive(timeout_s=5)
    receiver.close()
    channel.close()


def test_the_owner_keeps_the_channel_open_until_it_has_connected_and_closed():
    with Channel(slot_count=2, slot_bytes=SLOT, owner_sender=0) as owned:
        receiver = ChannelReceiver(owned.spec, DECODER)
        with ChannelSender(owned.spec, 5) as early:
            early.send(FinishRun(status="completed"))  # inline: needs no slot
        with receiver.receive(timeout_s=5) as message:
            assert message.status == "completed"
        with pytest.raises(TimeoutError):
            receiver.receive(timeout_s=0.3)  # the only sender closed, but the owner never came
        ChannelSender(owned.spec, 0, credits=0).close()
        with pytest.raises(EndOfChannel):
            receiver.receive(timeout_s=5)
        receiver.close()


def test_a_message_larger_than_a_slot_is_refused_and_the_channel_still_works(channel):
    receiver = ChannelReceiver(channel.spec, DECODER)

    def let_receiver_lend_slots() -> None:
        with pytest.raises(TimeoutError):
            receiver.receive(timeout_s=0.3)

    receiver_ready = threading.Thread(target=let_receiver_lend_slots)
    with ChannelSender(channel.spec, 1) as sender:
        receiver_ready.start()  # lets the receiver lend the sender its slots
        receiver_ready.join()
        with pytest.raises(
            MessageTooLargeError,
            match=r"a PatientBatch of 0\.29 MiB does not fit a 0\.25 MiB channel slot",
        ):
            sender.send(batch(1, size=300_000))
        sender.send(batch(2))
        with receiver.receive(timeout_s=5) as message:
            assert message.shard == 2 and payload_ok(message)
    receiver.close()


def test_a_killed_sender_ends_cleanly_and_its_slots_go_to_others(channel):
    closed = []
    receiver = ChannelReceiver(channel.spec, DECODER, on_sender_closed=closed.append)
    victim = CONTEXT.Process(target=send_many, args=(channel.spec, 1, 0, 3, 60.0))
    victim.start()
    owner = ChannelSender(channel.spec, 0, credits=0)
    got = []
    for _ in range(3):  # everything it sent is delivered, whatever happens to it later
        with receiver.receive(timeout_s=20) as message:
            got.append(message.shard)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    with pytest.raises(TimeoutError):
        receiver.receive(timeout_s=0.5)  # sees the EOF, announces it, keeps waiting
    assert closed == [1] and got == [0, 1, 2]
    # With 4 slots and 2 credits each, a new sender only gets slots if the dead one's came back.
    late = CONTEXT.Process(target=send_many, args=(channel.spec, 2, 100, 6))
    other = CONTEXT.Process(target=send_many, args=(channel.spec, 3, 200, 6))
    late.start()
    other.start()
    closer = join_then_close_owner(owner, [late, other])
    try:
        got = receive_all(receiver)
    finally:
        closer.join(30)
        receiver.close()
        kill_all([victim, late, other])
    assert sorted(shard for shard, _, _ in got) == [*range(100, 106), *range(200, 206)]


def block_in_send(spec, sender_id: int) -> None:
    """Child process: fill every credit, then wait forever for one more."""
    with ChannelSender(spec, sender_id) as sender:
        for shard in range(10):
            sender.send(batch(shard))


def test_a_sender_killed_while_waiting_for_a_slot_does_not_wedge_the_others(channel):
    receiver = ChannelReceiver(channel.spec, DECODER)
    stuck = CONTEXT.Process(target=block_in_send, args=(channel.spec, 1))
    stuck.start()
    owner = ChannelSender(channel.spec, 0, credits=0)
    held = [receiver.receive(timeout_s=20), receiver.receive(timeout_s=20)]  # not released
    time.sleep(0.3)  # it now waits for a credit
    os.kill(stuck.pid, signal.SIGKILL)
    stuck.join(10)
    for received in held:
        received.release()
    healthy = CONTEXT.Process(target=send_many, args=(channel.spec, 2, 50, 8))
    healthy.start()
    closer = join_then_close_owner(owner, [healthy])
    try:
        got = receive_all(receiver)
    finally:
        closer.join(30)
        receiver.close()
        kill_all([stuck, healthy])
    assert [shard for shard, _, _ in got] == list(range(50, 58))


def test_a_sender_whose_receiver_is_gone_gets_a_clear_error(channel):
    receiver = ChannelReceiver(channel.spec, DECODER)
    sender = ChannelSender(channel.spec, 1)
    receiver.close()
    with pytest.raises(ChannelClosedError, match="the channel receiver is gone"):
        for shard in range(5):
            sender.send(batch(shard), timeout_s=5)
    sender.close()


def _segments() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}


def test_no_segment_remains_after_close():
    before = _segments()
    owned = Channel(slot_count=2, slot_bytes=SLOT)
    assert owned.spec.segment.lstrip("/") in _segments() - before
    owned.close()
    owned.close()
    assert _segments() == before


OWNER_SCRIPT = """
import sys, time
from ipc.channel import Channel
channel = Channel(slot_count=2, slot_bytes=1 << 20)
print(channel.spec.segment, flush=True)
time.sleep(120)
"""


def test_no_segment_remains_after_the_owner_is_killed():
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    name = owner.stdout.readline().strip().lstrip("/")
    assert name in _segments()
    owner.kill()
    owner.wait(10)
    owner.stdout.close()
    deadline = time.monotonic() + 15
    while name in _segments() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert name not in _segments(), "the killed owner's segment was not cleaned up"
