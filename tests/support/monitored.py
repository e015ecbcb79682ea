"""Jobs and helpers for tests of the runner and monitor path (local backend, mode runner).

This module travels to the runners by value, so runners need not import ``tests``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle

from gridmap_core.face.executor import GridMapExecutor

FAST = {
    "CHECK_FREQUENCY": 0.5,
    "HEARTBEAT_FREQUENCY": 0.5,
    "MAX_TIME_BETWEEN_HEARTBEATS": 20,
    "MAX_IDLE_HEARTBEATS": 0,
    "NUM_RESUBMITS": 1,
}


def runner_executor(settings: Mapping[str, Any] | None = None, max_processes: int = 2,
                    **options: Any) -> GridMapExecutor:
    """An executor whose jobs each run in a runner process, through the monitor."""
    return GridMapExecutor(
        backend="local",
        max_processes=max_processes,
        settings={**FAST, **(settings or {})},
        backend_options={"mode": "runner", **options},
    )


def where(x: int) -> tuple[int, int, list[str], int]:
    """The value, and where it ran: pid, command line of the process, parent's pid
    (the runner's: the job's process is forked from it)."""
    return x * x, os.getpid(), list(sys.argv), os.getppid()


def raise_value_error(x: int) -> None:
    raise ValueError(f"refused {x}")


def die_first_time(marker: str, x: int) -> int:
    """The first attempt records its pid and waits to be killed; later ones return."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        time.sleep(60)
    return 2 * x


def hog_memory(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):  # touch every page, so it is resident
        block[i] = 1
    time.sleep(60)
    return len(block)


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def sleep_then_square(x: int) -> int:
    time.sleep(0.5)
    return x * x


def blind_to_suspension(monkeypatch: Any) -> None:
    """Have the local scheduler report a stopped runner as running, as a cluster does
    for a job frozen by anything but the scheduler: :func:`stop_self` (or SIGSTOP)
    then makes a job silent, not suspended."""
    import gridmap_local.processes

    monkeypatch.setattr(gridmap_local.processes, "stopped", lambda pid: False)


def stop_self(_: int) -> None:
    """Freeze the job, runner and all (its process group): it neither works nor sends
    heartbeats."""
    os.killpg(os.getpgid(0), signal.SIGSTOP)


def big_result(megabytes: int) -> bytes:
    return bytes(range(256)) * (megabytes * 2**20 // 256)


def digest(data: bytes) -> tuple[int, str]:
    import hashlib

    return len(data), hashlib.sha256(data).hexdigest()


def spin(seconds: float) -> float:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


cloudpickle.register_pickle_by_value(sys.modules[__name__])
