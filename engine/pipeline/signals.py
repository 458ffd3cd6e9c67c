"""Signals that stop a run: Ctrl-C (SIGINT) and SIGTERM cancel it instead of killing it.

The handler only asks the supervisor to cancel (`Supervisor.cancel` is signal-safe: it sets
a reason and writes a byte to a socket its loop waits on); the loop then stops the run
like any other cancel, so the files are closed and the run can be resumed. The signal is
kept, so the CLI exits as a shell expects (130 for SIGINT, 143 for SIGTERM). Both signals
often reach the whole process group; the children ignore them (`engine.pipeline.processes`)
and wait for the supervisor to tell them how to stop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

__all__ = ["CANCELLING_SIGNALS", "cancel_on_signals"]

CANCELLING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def cancel_on_signals(cancel: Callable[[signal.Signals], None]) -> Callable[[], None]:
    """Make SIGINT and SIGTERM call `cancel(signal)`; returns what restores the old handlers.

    Outside the main thread (a dashboard's run) signals cannot be handled: nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in CANCELLING_SIGNALS}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: cancel(signal.Signals(signum)))

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
