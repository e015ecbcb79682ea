"""The process a job's function runs in: a child forked from the runner.

The runner sends heartbeats from a thread. If the function ran in the runner's own
process, a C call that holds the GIL for longer than MAX_TIME_BETWEEN_HEARTBEATS (a
huge allocation, a long loop in an extension) would silence the heartbeats and the
monitor would count a healthy job dead. So the runner decodes the task itself
(imports are paid once per runner, however many jobs it takes on), then forks; the
child calls the function and writes the encoded RESULT payload to a pipe, which the
runner reads while it goes on beating.

The child never touches the transport (zmq sockets do not survive a fork) and ends
with ``os._exit``, so nothing of the runner's (atexit handlers, zmq contexts) runs
twice. It is killed when the runner dies, so a job never outlives its runner.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import struct
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from gridmap_core.errors import GridMapError
from gridmap_core.wire.exits import JOB_DIED, name_of_signal

__all__ = ["JOB_DIED", "JobProcessDied", "run_forked"]

# Every cause this module gives starts with JOB_DIED; describe_exit finds it in the
# runner's log.
_LENGTH = struct.Struct("!Q")  # the payload's length, before the payload
_CHUNK = 1 << 20  # bytes read from the pipe at a time
_POLL = 0.5  # seconds between checks that the child still lives, while it is silent
_EXIT_GRACE = 10.0  # seconds the child gets to exit once its payload has arrived
_PR_SET_PDEATHSIG = 1


class JobProcessDied(GridMapError):
    """The job's process ended without handing over its payload; the message says how."""


def _prctl() -> Any:
    """libc's prctl, looked up before any fork (the child only calls it). From the
    symbols this process already has: ctypes.util.find_library would run ldconfig,
    milliseconds every runner would pay."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _child(write_fd: int, parent: int, work: Callable[[], bytes]) -> None:
    """In the forked child: run ``work`` and write its payload; never returns."""
    code = 0
    try:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the runner died before the line above took hold
            os._exit(1)
        payload = work()
        _write_all(write_fd, _LENGTH.pack(len(payload)))
        _write_all(write_fd, payload)
    except BaseException:  # whatever happens, the child must not return
        code = 1
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        _flush_stdio()
        os._exit(code)


def _cause(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"{JOB_DIED} was killed by {name_of_signal(os.WTERMSIG(status))}"
    code = os.waitstatus_to_exitcode(status)
    return f"{JOB_DIED} exited with status {code} before handing over its result"


class _Reader:
    """Reads one length-prefixed payload from the pipe into a buffer made to measure."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.body: bytearray | None = None
        self.filled = 0

    @property
    def done(self) -> bool:
        return self.body is not None and self.filled == len(self.body)

    def read(self, fd: int) -> bool:
        """Read what is there; False at end of file."""
        if self.body is None:
            chunk = os.read(fd, _LENGTH.size - len(self.head))
            if not chunk:
                return False
            self.head += chunk
            if len(self.head) == _LENGTH.size:
                self.body = bytearray(_LENGTH.unpack(self.head)[0])
            return True
        if self.done:
            return False
        count = os.readv(fd, [memoryview(self.body)[self.filled:self.filled + _CHUNK]])
        self.filled += count
        return count > 0


def _reap(pid: int, timeout: float | None) -> int | None:
    """The child's wait status, waiting at most ``timeout`` seconds (None: for ever)."""
    if timeout:
        _wait_exit(pid, timeout)
    try:
        done, status = os.waitpid(pid, 0 if timeout is None else os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None


def _wait_exit(pid: int, timeout: float) -> None:
    """Return once the child has exited, or after ``timeout`` seconds: on a pidfd where
    Linux has them (woken at the exit itself), else by polling."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and os.waitid(
                os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            time.sleep(0.001)
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


def _receive(read_fd: int, pid: int) -> tuple[bytearray | None, int | None]:
    """Read the child's payload; also (None, status) if it ended without one."""
    reader = _Reader()
    poller = select.poll()
    poller.register(read_fd, select.POLLIN | select.POLLHUP)
    while not reader.done:
        if poller.poll(_POLL * 1000):
            if reader.read(read_fd):
                continue
            # End of file: the child closed the pipe, most likely by dying.
            return None, _reap(pid, None)
        # Silent: a process the job started may hold the pipe open after the child
        # ended, so the end of file may never come.
        status = _reap(pid, 0)
        if status is not None:
            while poller.poll(0) and reader.read(read_fd):
                pass
            return (reader.body if reader.done else None), status
    return reader.body, None


def run_forked(work: list[Callable[[], bytes]],
               started: Callable[[int | None], None] | None = None,
               fork_lock: AbstractContextManager[Any] | None = None) -> bytearray:
    """Call ``work``'s only item in a forked child and return the bytes it returned.

    The item is taken out of the list and dropped in the runner once the child has
    it, so the runner does not keep the job's arguments alive. ``started`` is told
    the child's pid, then None when it has ended; ``fork_lock`` is held while
    forking. Raises :class:`JobProcessDied` naming how the child ended if it handed
    over nothing.
    """
    call = work.pop()
    read_fd, write_fd = os.pipe()
    _flush_stdio()  # or the child would write the runner's buffered lines again
    parent = os.getpid()
    with fork_lock or contextlib.nullcontext(), warnings.catch_warnings():
        # Python 3.12 warns of forking a process with threads: the child uses none of
        # the other threads' state (transport, heartbeats) and leaves with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, parent, call)
    os.close(write_fd)
    del call
    status: int | None = None
    payload: bytearray | None = None
    try:
        if started is not None:
            started(pid)
        payload, status = _receive(read_fd, pid)
    finally:
        os.close(read_fd)
        if status is None:
            status = _reap(pid, _EXIT_GRACE if payload is not None else 0)
            if status is None:  # still running: it has what it needs from us, or we failed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                status = _reap(pid, None)
        if started is not None:
            started(None)
    if payload is None:
        raise JobProcessDied(_cause(status if status is not None else 0))
    return payload
