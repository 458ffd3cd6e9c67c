"""Where comparison blocks run: this machine's worker processes, or a Dask cluster.

A comparison (engine.compare.runner) and its PSA draws (engine.compare.psa_run) hand out
the same kind of work: one call of a pure function per block, returning the block's
summary as bytes that the client saves and merges in block order. So the place the calls
run cannot change a result, and both loops see one small interface, `BlockExecutor`:
``submit`` returns a `concurrent.futures.Future` (what `concurrent.futures.wait` takes),
``result`` reads one, ``cancel`` drops everything still to do and ``close`` ends a
finished run. `open_blocks` picks the implementation and guarantees one of the two ends.

- `LocalBlocks` (the default): a `ProcessPoolExecutor` of spawned workers that ignore
  Ctrl-C and die with their parent; ``cancel`` terminates and joins them, so none outlives
  the client.
- `DaskBlocks`: the tasks of a `distributed.Client` the caller owns, through
  ``client.get_executor()`` (its futures are `concurrent.futures` futures; cancelling one
  cancels the Dask task). Every task has its own key (``amdsim-compare-...-<token>``) and
  ``pure=False``, so a resubmitted block never meets an old result. ``cancel`` cancels this
  executor's tasks only: the client and its cluster belong to the caller and stay up. A
  task already running on a worker thread finishes there and its result is dropped; blocks
  write nothing on workers, so the comparison directory needs no shared storage.

Does not cover: opening or closing a cluster (engine.cluster.connect) or what a block
computes (engine.compare.runner.run_block_task). Dask is never imported here: the client
object arrives from the caller, so local comparisons do not load it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from engine.errors import AmdsimError, ClusterError
from engine.pipeline.processes import CONTEXT, prepare_child

__all__ = ["DASK_RETRIES", "BlockExecutor", "DaskBlocks", "LocalBlocks", "open_blocks"]

BlockTask = Callable[..., bytes]
DASK_RETRIES = 1  # a block that raised runs once more (a lost worker is rescheduled anyway)


class BlockExecutor(Protocol):
    """Runs block tasks somewhere; see the module docstring."""

    slots: int  # how many tasks run at once (the PSA keeps about twice that in flight)

    def submit(self, label: str, task: BlockTask, *args: Any) -> concurrent.futures.Future[bytes]:
        """Start ``task(*args)``; `label` names it where names show (Dask's dashboard)."""
        ...

    def result(self, future: concurrent.futures.Future[bytes]) -> bytes:
        """The finished `future`'s bytes, or its error as the project's own exception."""
        ...

    def cancel(self) -> None:
        """Drop every task not finished yet and release the workers (idempotent)."""
        ...

    def close(self) -> None:
        """End a run whose tasks all finished (idempotent)."""
        ...


def _start_worker() -> None:
    prepare_child("compare-worker")


class LocalBlocks:
    """`workers` spawned processes on this machine."""

    def __init__(self, workers: int) -> None:
        self.slots = max(1, workers)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.slots, mp_context=CONTEXT, initializer=_start_worker
        )

    def submit(self, label: str, task: BlockTask, *args: Any) -> concurrent.futures.Future[bytes]:
        """Queue ``task(*args)`` in the pool (`label` is not used locally)."""
        return self._pool.submit(task, *args)

    def result(self, future: concurrent.futures.Future[bytes]) -> bytes:
        """The bytes; a worker's exception is raised as it was."""
        return future.result()

    def cancel(self) -> None:
        """Cancel queued tasks, terminate the workers and wait for them: none outlives us."""
        stop_pool(self._pool)

    def close(self) -> None:
        """Let the workers exit and wait for them."""
        self._pool.shutdown(wait=True)


def stop_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel queued tasks of `pool`, terminate its workers and join them (kill if need be)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


class DaskBlocks:
    """Tasks on the cluster of `client` (a `distributed.Client` the caller keeps open)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._executor = client.get_executor(pure=False, retries=DASK_RETRIES)
        self._token = secrets.token_hex(4)  # keys of this executor, unlike any earlier one
        self._closed = False
        try:
            threads = sum(client.nthreads().values())
        except Exception:  # only sizes the PSA's queue: 1 is always safe
            threads = 1
        self.slots = max(1, threads)

    def submit(self, label: str, task: BlockTask, *args: Any) -> concurrent.futures.Future[bytes]:
        """Submit ``task(*args)`` as the Dask task ``amdsim-<label>-<token>``."""
        return self._executor.submit(task, *args, key=f"amdsim-{label}-{self._token}")

    def result(self, future: concurrent.futures.Future[bytes]) -> bytes:
        """The bytes; a lost task or worker is a `ClusterError` (finished blocks are kept)."""
        try:
            return future.result()
        except AmdsimError:
            raise
        except concurrent.futures.CancelledError:
            raise ClusterError(
                "the Dask cluster dropped a comparison block (scheduler restarted or "
                "connection lost); finished blocks are kept: resume with "
                "`amdsim compare --resume DIR`"
            ) from None
        except Exception as exc:
            raise ClusterError(
                f"a comparison block failed on the Dask cluster: {type(exc).__name__}: {exc}; "
                "finished blocks are kept: resume with `amdsim compare --resume DIR`"
            ) from exc

    def cancel(self) -> None:
        """Cancel this executor's tasks; the client and its cluster stay up."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # a lost scheduler has nothing left to cancel
                self._executor.shutdown(wait=False)

    def close(self) -> None:
        """Nothing is left to run; forget the executor (the client stays open)."""
        if not self._closed:
            self._closed = True
            self._executor.shutdown(wait=True)


@contextlib.contextmanager
def open_blocks(workers: int, client: Any | None = None) -> Iterator[BlockExecutor]:
    """`workers` local processes, or the cluster of `client`; cancelled on any exception.

    An exception (a failed block, Ctrl-C, a cancel request) cancels what is still to do
    before it propagates; a normal exit closes the executor.
    """
    executor: BlockExecutor = LocalBlocks(workers) if client is None else DaskBlocks(client)
    try:
        yield executor
    except BaseException:
        executor.cancel()
        raise
    executor.close()
