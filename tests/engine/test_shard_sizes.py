"""Streaming runs of any shard size end, with the in-process rows, through a bounded channel.

Issue 10, case 1: small shards used to give workers hundreds of channel credits, one frame
each, and writer and worker deadlocked sending to each other; shard size 1 mapped an 8 GiB
segment. See `ipc.channel` for the flow control.
"""

from __future__ import annotations

import os
import threading

import pytest

from engine.model.parameters import RunParameters
from engine.model.protocol_loader import load_protocol
from engine.pipeline import PipelineOptions, Supervisor, run_pipeline
from ipc.channel import HEADER_BYTES, SENDER_SLOT_BYTES
from tests.engine.test_pipeline import assert_same, in_process_rows, read_run
from tests.helpers import V1_PROTOCOL

YEARS = 2
SEED = 5
DEADLINE_S = 90  # a run still going by then is cancelled: a deadlock fails, never hangs

# Enough shards that the old channel's credits (shards per block + 1) overflowed a socket.
SHARD_SIZES = {1: 400, 7: 2_800, 100: 40_000, 256: 25_600, 4096: 20_000}


def run_with_watchdog(params: RunParameters, run_dir, options: PipelineOptions):
    timers: list[threading.Timer] = []

    def watch(supervisor: Supervisor) -> None:
        timer = threading.Timer(DEADLINE_S, supervisor.cancel, args=("deadlock watchdog",))
        timer.start()
        timers.append(timer)

    try:
        return run_pipeline(load_protocol(V1_PROTOCOL), params, run_dir, options, on_started=watch)
    finally:
        for timer in timers:
            timer.cancel()


@pytest.mark.parametrize(("shard_size", "n_patients"), SHARD_SIZES.items(), ids=str)
def test_streaming_runs_of_any_shard_size_finish_with_the_in_process_rows(
    tmp_path, shard_size, n_patients
):
    params = RunParameters(n_patients=n_patients, years=YEARS, seed=SEED, shard_size=shard_size)
    workers = 2 if shard_size == 7 else 1
    manifest = run_with_watchdog(params, tmp_path / "run", PipelineOptions(workers=workers))
    assert manifest.status == "completed", f"{manifest.status}: {manifest.error}"
    patients, visits, totals = in_process_rows(n_patients, YEARS, SEED, shard_size)
    on_disk = read_run(tmp_path / "run")
    assert_same(on_disk[0], patients)
    assert_same(on_disk[1], visits)
    assert manifest.totals == totals


def test_the_channel_segment_stays_bounded_for_shard_size_1(tmp_path):
    """2,000 one-patient shards used to ask for 2,001 slots of 4 MiB per worker: 8 GiB."""
    params = RunParameters(n_patients=2_000, years=YEARS, seed=SEED, shard_size=1)
    options = PipelineOptions(workers=2)
    supervisor = Supervisor(load_protocol(V1_PROTOCOL), params, tmp_path / "run", options)
    supervisor.start()
    try:
        spec = supervisor.channel.spec
        segment_bytes = os.stat(f"/dev/shm/{spec.segment.lstrip('/')}").st_size
    finally:
        supervisor.cancel("measured")
        manifest = supervisor.run()
    bound = HEADER_BYTES + (2 * SENDER_SLOT_BYTES + options.slot_bytes)
    assert segment_bytes <= bound
    assert spec.credits_per_sender * spec.slot_bytes <= SENDER_SLOT_BYTES
    assert manifest.status == "cancelled"
