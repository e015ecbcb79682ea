"""The jobs of the conformance suite: at module level, so that every node can import them
by name; each returns (or records) what the suite checks.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["add", "raise_value_error", "record_pid_then", "sleep_then", "wait_for_file",
           "where", "where_after"]


def where(x: int) -> dict[str, Any]:
    """The square of ``x``, and where and how it ran."""
    return {
        "value": x * x,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "argv": list(sys.argv),
        # The address-space limit the job runs under (Grid Engine's h_vmem), or -1.
        "memory_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
    }


def where_after(seconds: float, x: int) -> dict[str, Any]:
    time.sleep(seconds)
    return where(x)


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def raise_value_error(x: int) -> None:
    raise ValueError(f"conformance job refused {x}")


def record_pid_then(marker: str, seconds: float, value: int) -> int:
    """Write ``pid host`` to ``marker`` (if it does not exist yet), then sleep."""
    path = Path(marker)
    if not path.exists():
        path.write_text(f"{os.getpid()} {socket.gethostname()}")
        time.sleep(seconds)
    return value


def sleep_then(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def wait_for_file(path: str, seconds: float, value: int) -> int:
    """Wait until ``path`` exists (at most ``seconds``), then return ``value``: a long
    job that a test can end, should the backend have left it running.

    It ends too when ``path``'s folder is gone: a test that made the file and then
    removed its folder at once (before the job looked again) has ended it as well, and
    a job left running in the test's own process (a backend of threads) would
    otherwise hold the process at its exit until ``seconds`` passed.
    """
    deadline = time.monotonic() + seconds
    folder = os.path.dirname(path) or "."
    while (not os.path.exists(path) and os.path.isdir(folder)
           and time.monotonic() < deadline):
        time.sleep(0.2)
    return value
