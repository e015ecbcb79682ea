"""A scheduler of local processes, so the runner and monitor path runs on any machine.

Each task's runner is a process of its own (``python -m gridmap_core.node.runner``), in
its own session, with stdout and stderr in log files as on a cluster. At most
``max_processes`` run at once; the rest wait in a queue, as jobs wait for slots.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import itertools
import logging
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from gridmap_core.backend.scheduler import JobStatus, Launch, PollSoon, Status
from gridmap_core.model.death import DeathKind
from gridmap_core.wire.exits import describe_exit

__all__ = ["ProcessScheduler"]
logger = logging.getLogger(__name__)

_TERMINATE_GRACE = 2.0  # seconds between SIGTERM and SIGKILL when cancelling
_REAP_EVERY = 0.02
_PR_SET_PDEATHSIG = 1


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP): locally, what a suspended job is.
    Read from /proc (Linux); where there is none, no job counts as suspended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # The state follows the command name, which is in parentheses.
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"T"
    except (OSError, IndexError):
        return False


def _die_with_parent() -> Any:
    """A preexec function: the child gets SIGKILL when the thread that started it
    ends (the reaper, which lives as long as the session), so a submitting process
    killed with -9 leaves no runner behind. Resolved here, so the child calls only
    a C function between fork and exec."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    prctl = ctypes.CDLL(name, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def _private_log(path: str) -> IO[bytes]:
    """``path`` opened for appending, made with mode 0600 (closed when its job ends)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


@dataclass
class _Process:
    job_id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    out: str
    err: str
    popen: subprocess.Popen[bytes] | None = None
    files: tuple[IO[bytes], ...] = ()
    terminated_at: float | None = None
    cancelled: bool = False


class ProcessScheduler:
    """Runs runners as local processes, ``max_processes`` at a time."""

    def __init__(self, max_processes: int) -> None:
        self.max_processes = max(1, max_processes)
        self.poll_soon: PollSoon | None = None
        self._ids = itertools.count(1)
        # Ids of one scheduler differ from another's (one that took the map on after
        # its submitter died), so a job of the old one is never taken for a new one.
        self._id_prefix = f"local.{secrets.token_hex(2)}."
        self._lock = threading.Lock()
        self._queued: collections.deque[_Process] = collections.deque()
        self._running: dict[str, _Process] = {}
        self._ended: dict[str, JobStatus] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._preexec = _die_with_parent()
        self._thread = threading.Thread(target=self._reap, name="gridmap-local-reaper",
                                        daemon=True)
        self._thread.start()

    def launch(self, launch: Launch) -> list[str]:
        ids = []
        processes = []
        for task in launch.tasks:
            job_id = f"{self._id_prefix}{next(self._ids)}"
            ids.append(job_id)
            processes.append(_Process(
                job_id, launch.command(task), launch.environment, launch.spec.working_dir,
                launch.log_path(task, "out"), launch.log_path(task, "err"),
            ))
        with self._lock:
            if self._stopping:
                raise RuntimeError("the local process scheduler is closed")
            self._queued.extend(processes)
        self._wake.set()
        return ids

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        with self._lock:
            running = {job_id: p.popen.pid for job_id, p in self._running.items() if p.popen}
            ended = dict(self._ended)
        report = {}
        for job_id in ids:
            if job_id in ended:
                report[job_id] = ended[job_id]
            elif job_id in running:
                # A runner stopped with SIGSTOP is suspended, as a job the scheduler
                # suspends on a cluster, until SIGCONT.
                suspended = stopped(running[job_id])
                report[job_id] = JobStatus(Status.SUSPENDED if suspended else Status.RUNNING)
            else:
                report[job_id] = JobStatus(Status.QUEUED)
        return report

    def adopt(self, ids: Sequence[str]) -> None:
        """Jobs another process launched: its runners were its children, killed when it
        ended (PR_SET_PDEATHSIG), so each is reported ended at the next poll."""
        with self._lock:
            known = {*self._ended, *self._running, *(p.job_id for p in self._queued)}
            for job_id in ids:
                if job_id in known:
                    continue
                self._ended[job_id] = JobStatus(
                    Status.ENDED, "its runner was a process of the submitting process, "
                    "and ended with it: local jobs do not outlive their submitter",
                    kind=DeathKind.VANISHED)
        if self.poll_soon is not None:
            self.poll_soon()

    def cancel_command(self) -> list[str]:
        """None: the runners end with the process that started them."""
        return []

    def cancel(self, ids: Sequence[str]) -> None:
        wanted = set(ids)
        with self._lock:
            for process in [p for p in self._queued if p.job_id in wanted]:
                self._queued.remove(process)
                self._ended[process.job_id] = JobStatus(Status.ENDED, "cancelled", resubmit=False,
                                                           kind=DeathKind.CANCELLED)
            for job_id in wanted & set(self._running):
                process = self._running[job_id]
                process.cancelled = True
                self._signal(process, signal.SIGTERM)
                process.terminated_at = time.monotonic()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._queued.clear()
            for process in self._running.values():
                process.cancelled = True
                self._signal(process, signal.SIGKILL)
        self._wake.set()
        self._thread.join()

    # -- the reaper thread ---------------------------------------------------------

    @staticmethod
    def _signal(process: _Process, sig: int) -> None:
        if process.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, sig)  # the runner and everything it started

    def _start(self, process: _Process) -> bool:
        """Start a queued runner; False (and the job ended) if it cannot start."""
        files: list[IO[bytes]] = []
        try:
            # Readable by this user alone, whatever the umask: the job's output.
            files.append(_private_log(process.out))
            files.append(_private_log(process.err))
            out, err = files
            process.files = (out, err)
            process.popen = subprocess.Popen(
                process.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                cwd=process.cwd if os.path.isdir(process.cwd) else None, env=process.env,
                start_new_session=True, preexec_fn=self._preexec,
            )
        except OSError as error:
            for handle in files:
                handle.close()
            what = (f"the runner {process.argv[0]!r}" if len(files) == 2
                    else f"its log file {error.filename!r}")
            self._ended[process.job_id] = JobStatus(
                Status.ENDED, f"could not start the runner: {what}: {error.strerror}",
                kind=DeathKind.RUNNER_FAILED)
            return False
        self._running[process.job_id] = process
        return True

    def _reap(self) -> None:
        while True:
            self._wake.wait(_REAP_EVERY)
            self._wake.clear()
            try:
                changed, done = self._reap_once()
            except Exception:  # the thread must live on, or every job would hang
                logger.exception("local process scheduler error (it keeps running)")
                continue
            if changed and self.poll_soon is not None:
                self.poll_soon()
            if done:
                return

    def _reap_once(self) -> tuple[bool, bool]:
        """Collect ended processes and start queued ones: (anything ended, all done)."""
        changed = False
        with self._lock:
            for job_id, process in list(self._running.items()):
                assert process.popen is not None
                code = process.popen.poll()
                if code is None:
                    if (process.terminated_at is not None
                            and time.monotonic() - process.terminated_at > _TERMINATE_GRACE):
                        self._signal(process, signal.SIGKILL)
                    continue
                self._signal(process, signal.SIGKILL)  # whatever the job left running
                for handle in process.files:
                    handle.close()
                del self._running[job_id]
                self._ended[job_id] = (
                    JobStatus(Status.ENDED, "cancelled", code, resubmit=False,
                              kind=DeathKind.CANCELLED)
                    if process.cancelled else
                    JobStatus(Status.ENDED, describe_exit(code, err_log=process.err), code)
                )
                changed = True
            while self._queued and len(self._running) < self.max_processes:
                started = self._start(self._queued.popleft())
                changed = changed or not started
            return changed, self._stopping and not self._running
