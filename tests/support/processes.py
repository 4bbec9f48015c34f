"""Stopping the servers the tests start, each with every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable


def stop_groups(procs: Iterable[subprocess.Popen], timeout: float = 20.0) -> None:
    """Stop processes started with ``start_new_session=True``, each with its whole group.

    All get SIGTERM at once; whatever is left of a group after ``timeout`` seconds, or after its
    leader exited (workers, task processes and work-horses may outlive it), gets SIGKILL.
    """
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(timeout=10)


def stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """:func:`stop_groups` for one process."""
    stop_groups([proc], timeout)
