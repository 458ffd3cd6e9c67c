"""Plan deterministic shards and their random streams.

Shard ``k`` holds patient ids ``[k*S, min((k+1)*S, N))`` and draws all its randomness from
``Generator(PCG64(SeedSequence(seed, spawn_key=(k,))))``, so a shard's output depends only on
the protocol, the parameters and ``k`` (DESIGN section 3), never on which worker runs it or when.
"""

from __future__ import annotations

import numpy as np

from engine.model.parameters import RunParameters

__all__ = [
    "BLOCK_PATIENTS",
    "RECRUITMENT_STREAM_KEY",
    "plan_blocks",
    "shard_bounds",
    "shard_generator",
    "stream_generator",
]

# Patients simulated together by one kernel call: enough to amortise numpy's per-call cost
# (one 4096-patient shard alone runs at less than half the speed), small enough that the
# live arrays stay in cache. Measured with perf/bench_kernel.py.
BLOCK_PATIENTS = 32_768

# Streams that are not a shard's own use a two-word spawn key; shards use one word, so no
# shard's stream can coincide with one of these.
RECRUITMENT_STREAM_KEY = (0xFFFF_FFFF, 1)


def shard_bounds(params: RunParameters, shard_index: int) -> tuple[int, int]:
    """First patient id and number of patients of shard `shard_index`."""
    if not 0 <= shard_index < params.shard_count:
        raise IndexError(f"shard {shard_index} is outside 0..{params.shard_count - 1}")
    first = shard_index * params.shard_size
    return first, min(params.shard_size, params.n_patients - first)


def shard_generator(seed: int, shard_index: int) -> np.random.Generator:
    """The random stream that is shard `shard_index`'s alone."""
    return stream_generator(seed, (shard_index,))


def stream_generator(seed: int, spawn_key: tuple[int, ...]) -> np.random.Generator:
    """A PCG64 generator for `seed` and `spawn_key`, independent of every other key."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=spawn_key)))


def plan_blocks(
    params: RunParameters, shards: range | None = None, block_patients: int = BLOCK_PATIENTS
) -> list[range]:
    """Split `shards` (default: all) into runs of consecutive shards of about `block_patients`."""
    shards = range(params.shard_count) if shards is None else shards
    per_block = max(1, block_patients // params.shard_size)
    return [shards[i : i + per_block] for i in range(0, len(shards), per_block)]
