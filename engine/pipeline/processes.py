"""Starting and stopping the run's child processes, so that none outlives the run.

Children are spawned (not forked: the supervisor has threads), ignore Ctrl-C and SIGTERM
(both reach the whole process group from a terminal, `timeout`, `kill -- -PGID`, systemd or
a container stop; the supervisor receives them too, cancels the run and tells each child
how to stop, so the files are closed and the run can be resumed) and exit on their own as
soon as the supervisor dies, via a watchdog thread waiting on the parent's sentinel. The
supervisor stops them in escalating steps: wait; then SIGUSR1, which makes a stuck child
print every thread's stack, with SIGTERM (for a child not yet prepared); then SIGKILL,
logging each pid it had to push.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import threading
import time
from collections.abc import Iterable
from multiprocessing import spawn
from multiprocessing.context import SpawnProcess
from pathlib import Path

__all__ = ["CONTEXT", "describe_exit", "prepare_child", "start_process", "stop_processes"]

log = logging.getLogger(__name__)
CONTEXT = multiprocessing.get_context("spawn")
PARENT_GONE_EXIT_CODE = 70
STACK_DUMP_SIGNAL = signal.SIGUSR1


_START_LOCK = threading.Lock()


def start_process(process: SpawnProcess) -> None:
    """Start `process` without making the child re-import the parent's ``__main__``.

    Spawn normally runs the parent's main module in every child so that functions defined
    there can be unpickled. Our children run functions of `engine.pipeline` only, and the
    main module is often heavy (the `amdsim` CLI, a dashboard, pytest): re-importing it cost
    each child 0.3 s before it could do anything.
    """
    with _START_LOCK:
        original = spawn.get_preparation_data

        def without_main(name: str) -> dict[str, object]:
            data = original(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = without_main
        try:
            process.start()
        finally:
            spawn.get_preparation_data = original


def seconds_since_start() -> float:
    """How long this process has existed (spawning, imports), to 10 ms; 0 if unknown.

    From the kernel's start time of the process in clock ticks since boot (/proc/self/stat)
    against the time since boot: psutil's `create_time` adds the boot time rounded to a
    whole second, which could make a start-up up to a second too long.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22: starttime
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        return max(0.0, since_boot - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        return 0.0


def prepare_child(name: str) -> None:
    """Call first in every child: ignore Ctrl-C and SIGTERM, die with the parent, explain
    being stuck.

    A child the supervisor has to push is stuck; SIGUSR1 makes it print every thread's
    stack to stderr, so the log says where, before the SIGKILL.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True, chain=False)
    parent = multiprocessing.process.parent_process()
    if parent is None:  # pragma: no cover - only when called outside a spawned child
        return

    def exit_when_parent_dies() -> None:
        parent.join()
        os._exit(PARENT_GONE_EXIT_CODE)

    threading.Thread(target=exit_when_parent_dies, name=f"{name}-watchdog", daemon=True).start()


def stop_processes(
    processes: Iterable[SpawnProcess], grace_s: float = 2.0, term_s: float = 1.5
) -> None:
    """Wait up to `grace_s` for the processes to exit, then SIGTERM, then SIGKILL."""
    alive = [p for p in processes if p.pid is not None]
    _join_all(alive, grace_s)
    stubborn = [p for p in alive if p.is_alive()]
    for process in stubborn:
        log.warning(
            "%s (pid %s) did not exit in %.1f s: dumping its stacks (SIGUSR1), sending SIGTERM",
            process.name,
            process.pid,
            grace_s,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, STACK_DUMP_SIGNAL)  # type: ignore[arg-type]
        process.terminate()
    _join_all(stubborn, term_s)
    for process in stubborn:
        if process.is_alive():
            log.warning("%s (pid %s) is still running: sending SIGKILL", process.name, process.pid)
            process.kill()
            process.join(1.0)
    for process in alive:
        if not process.is_alive():
            process.close()


def describe_exit(process: SpawnProcess, reap_s: float = 1.0) -> str:
    """How a child that ended did so, for messages: ``was killed by SIGKILL (signal 9)``,
    ``exited with code 1``, or ``vanished without an exit status``.

    Its sentinel can be ready a moment before the kernel lets it be reaped, so this waits
    up to `reap_s` for the exit status.
    """
    process.join(reap_s)
    code = process.exitcode
    if code is None:
        return "vanished without an exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by {name} (signal {-code})"
    return f"exited with code {code}"


def _join_all(processes: list[SpawnProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
