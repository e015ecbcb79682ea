"""Ending the runner from any thread: kill the job's processes, then exit at once."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

__all__ = ["end_runner"]

# The runner's one logger, "gridmap.runner", whichever of its modules speaks.
logger = logging.getLogger("gridmap.runner")


def _kill_children() -> None:
    """Kill the job's child processes, so none outlives the runner."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


_ENDING = threading.Lock()  # taken by the first thread to end the runner, never released


def end_runner(code: int, message: str) -> NoReturn:
    """Stop the job from any thread: kill its children and exit at once. A second
    caller (the runner seeing the job's process die of the first one's kill) waits
    for the first, which must finish killing the job's whole tree."""
    _ENDING.acquire()
    logger.error("%s", message)
    _kill_children()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
