"""Functions for tests to run as jobs (importable, so every start method finds them)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def double(x: int) -> int:
    return 2 * x


def add(a: int, b: int, c: int = 0) -> int:
    return a + b + c


def fail_on(x: int, bad: tuple[int, ...] = (3,)) -> int:
    if x in bad:
        raise ValueError(f"bad input {x}")
    return x


def env_var(name: str) -> str | None:
    return os.environ.get(name)


def cwd() -> str:
    return os.getcwd()


def pid(_: Any = None) -> int:
    return os.getpid()


def kill_self_on(x: int, victim: int = 2) -> int:
    """Dies by SIGKILL on ``victim``: the kernel ends the worker mid-job."""
    if x == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def segfault_on(x: int, victim: int = 1) -> int:
    if x == victim:
        import ctypes
        import faulthandler

        faulthandler.disable()  # inherited from pytest; its stack dump is only noise here
        ctypes.string_at(0)
    return x


def exit_on(x: int, victim: int = 0) -> int:
    if x == victim:
        os._exit(3)
    return x


def sleep_then(x: float) -> float:
    time.sleep(x)
    return x


def big_array(i: int) -> Any:
    import numpy as np

    return np.full(2_500_000, float(i))  # 20 MB


def return_lock(_: int) -> Any:
    import threading

    return threading.Lock()


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # two required args: unpickling breaks
        super().__init__(f"{a}/{b}")


def raise_odd_exception(_: int) -> None:
    raise Unpicklable(1, 2)


def sleep_pid(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def die_once(marker: str, x: int) -> int:
    """The first call of job 0 dies by SIGKILL; every other call returns ``x``."""
    if x == 0 and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return x
