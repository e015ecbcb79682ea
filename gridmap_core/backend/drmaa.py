"""The DRMAA layer that DRMAA backends share (Grid Engine, slurm-drmaa).

DRMAA 1.0 allows one session per process, so every scheduler in a process shares one
:class:`DrmaaConnection`, opened by the first and closed by the last. Ended jobs are
reaped with ``drmaa_wait(ANY, NO_WAIT)``: one library call per ended job, answered
from what the library already heard, with no round trip per live job. What is reaped
is kept for whichever scheduler owns the job.

The ``drmaa`` package is imported only here and only when a session opens, because
importing it loads the C library (which needs ``DRMAA_LIBRARY_PATH``, and on Debian 12
``GLIBC_TUNABLES``; see :func:`library_problem`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gridmap_core.errors import GridMapError

if TYPE_CHECKING:
    from gridmap_core.backend.scheduler import Launch

__all__ = [
    "INCREMENT_PLACEHOLDER",
    "DrmaaConnection",
    "DrmaaError",
    "Ending",
    "library_problem",
    "submission",
]

#: Replaced by each array element's index in output paths (DRMAA 1.0, section 3.2.3).
INCREMENT_PLACEHOLDER = "$drmaa_incr_ph$"
_NO_RUSAGE = 24  # DRMAA_ERRNO_NO_RUSAGE: the job ended without running (deleted while queued)
_TLS_HINT = (
    "On Debian 12, set GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384 in the "
    "environment before Python starts (libdrmaa pulls in libjemalloc, whose TLS block "
    "does not fit otherwise)."
)


class DrmaaError(GridMapError, RuntimeError):
    """The DRMAA library refused a request or could not be used."""


@dataclass(frozen=True)
class Ending:
    """What DRMAA reports about a job that ended."""

    job_id: str
    exited: bool = False
    exit_status: int | None = None
    signal: str | None = None  # e.g. "SIGKILL"
    aborted: bool = False  # ended without running normally (deleted, failed to start)
    usage: Mapping[str, str] = field(default_factory=dict)  # empty: no usage reported

    def number(self, key: str) -> float | None:
        """A resource-usage value as a number (``maxvmem``, ``ru_wallclock``, …)."""
        try:
            return float(self.usage[key])
        except (KeyError, ValueError):
            return None


def submission(launch: Launch, index_var: str) -> tuple[list[str], str, str]:
    """The command and the stdout and stderr paths of ``launch`` for DRMAA: one job,
    or an array whose element numbers (from 1) the runner reads from ``index_var``
    and whose paths hold :data:`INCREMENT_PLACEHOLDER`."""
    if len(launch.tasks) == 1:
        task = launch.tasks[0]
        return (launch.command(task), launch.log_path(task, "out"),
                launch.log_path(task, "err"))
    # Element i of the array runs task tasks[0] + i - 1.
    span = f"{launch.tasks[0]}-{launch.tasks[-1]}"
    base = os.path.join(launch.log_dir, f"{launch.name}.{span}.{INCREMENT_PLACEHOLDER}"
                        f".{launch.attempt}")
    return launch.array_command(index_var, 1), f"{base}.out", f"{base}.err"


def library_problem(variables: Sequence[str] = ()) -> str | None:
    """Why libdrmaa cannot be used from this process, in words a user can act on;
    None when it loads. ``variables`` are environment variables the scheduler's
    library needs besides ``DRMAA_LIBRARY_PATH`` (``SGE_ROOT`` for Grid Engine)."""
    missing = [name for name in variables if not os.environ.get(name)]
    if missing:
        return (
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
            "source your cluster's settings file (Grid Engine: $SGE_ROOT/$SGE_CELL/common/"
            "settings.sh) before starting Python"
        )
    path = os.environ.get("DRMAA_LIBRARY_PATH")
    if not path:
        return (
            "DRMAA_LIBRARY_PATH is not set: point it at your scheduler's libdrmaa.so "
            "(e.g. /usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0)"
        )
    if not os.path.exists(path):
        return f"DRMAA_LIBRARY_PATH={path} does not exist: point it at libdrmaa.so"
    try:
        import drmaa  # noqa: F401  (importing loads the library)
    except ModuleNotFoundError:
        return "the Python package 'drmaa' is not installed: pip install drmaa"
    except (OSError, RuntimeError) as error:
        text = str(error)
        hint = f" {_TLS_HINT}" if "static TLS" in text else ""
        return f"libdrmaa at {path} could not be loaded: {text}.{hint}"
    return None


class DrmaaConnection:
    """The process's DRMAA session, shared: :meth:`acquire` and :meth:`release`.

    Every library call holds one lock: the ``drmaa`` package reports errors through
    one global buffer.
    """

    _lock = threading.Lock()
    _shared: DrmaaConnection | None = None
    _users = 0

    def __init__(self, session: Any) -> None:
        self._session = session
        self._reaped: dict[str, Ending] = {}
        self.contact = str(session.contact)

    @classmethod
    def acquire(cls) -> DrmaaConnection:
        with cls._lock:
            if cls._shared is None:
                problem = library_problem()
                if problem:
                    raise DrmaaError(problem)
                import drmaa

                session = drmaa.Session()
                try:
                    session.initialize()
                except drmaa.errors.DrmaaException as error:
                    raise DrmaaError(f"could not open a DRMAA session: {error}") from None
                cls._shared = cls(session)
            cls._users += 1
            return cls._shared

    def release(self) -> None:
        with self._lock:
            type(self)._users -= 1
            if type(self)._users == 0 and type(self)._shared is self:
                type(self)._shared = None
                # Closing must not fail a map that already has its results.
                with contextlib.suppress(Exception):
                    self._session.exit()

    def submit(self, *, command: Sequence[str], environment: Mapping[str, str],
               working_dir: str, output: str, error: str, native: str, name: str,
               count: int) -> list[str]:
        """Submit ``command`` once (``count`` 1) or as an array of ``count`` elements
        numbered from 1; paths may hold :data:`INCREMENT_PLACEHOLDER`."""
        import drmaa

        with self._lock:
            template = self._session.createJobTemplate()
            try:
                template.remoteCommand = command[0]
                template.args = list(command[1:])
                template.jobEnvironment = dict(environment)
                template.workingDirectory = working_dir
                template.outputPath = ":" + output
                template.errorPath = ":" + error
                template.nativeSpecification = native
                template.jobName = name
                if count == 1:
                    return [str(self._session.runJob(template))]
                return [str(i) for i in self._session.runBulkJobs(template, 1, count, 1)]
            except drmaa.errors.DrmaaException as failure:
                raise DrmaaError(_strip_code(failure)) from None
            finally:
                self._session.deleteJobTemplate(template)

    def reap(self) -> None:
        """Collect every job of this session that ended since the last call."""
        with self._lock:
            while (ending := self._wait_any()) is not None:
                self._reaped[ending.job_id] = ending

    def take(self, ids: Sequence[str]) -> dict[str, Ending]:
        """Endings reaped for ``ids`` (each is handed out once)."""
        with self._lock:
            return {i: self._reaped.pop(i) for i in ids if i in self._reaped}

    def terminate(self, job_id: str) -> None:
        """Stop a job (or a whole array, given its number), queued or running."""
        import drmaa

        with self._lock:
            try:
                self._session.control(job_id, drmaa.JobControlAction.TERMINATE)
            except drmaa.errors.InvalidJobException:
                pass  # already ended
            except drmaa.errors.DrmaaException as failure:
                raise DrmaaError(_strip_code(failure)) from None

    def status(self, job_id: str) -> str:
        """The job's DRMAA status name (``running``, ``queued_active``, ``failed``, …)."""
        with self._lock:
            return str(self._session.jobStatus(job_id))

    def _wait_any(self) -> Ending | None:
        from drmaa import const, errors, helpers, wrappers

        status = ctypes.c_int()
        job_out = ctypes.create_string_buffer(1024)
        usage = ctypes.pointer(ctypes.POINTER(wrappers.drmaa_attr_values_t)())
        try:
            helpers.c(wrappers.drmaa_wait, const.JOB_IDS_SESSION_ANY, job_out,
                      ctypes.sizeof(job_out), ctypes.byref(status), const.TIMEOUT_NO_WAIT,
                      usage)
        except (errors.ExitTimeoutException, errors.InvalidJobException):
            return None  # nothing ended yet / no jobs left in the session
        except Exception as failure:
            if str(failure).startswith(f"code {_NO_RUSAGE}:") and job_out.value:
                return Ending(job_out.value.decode(), aborted=True)
            raise DrmaaError(_strip_code(failure)) from None
        return _ending(job_out.value.decode(), status, helpers.adapt_rusage(usage))


def _ending(job_id: str, status: ctypes.c_int, usage: dict[str, str]) -> Ending:
    from drmaa import helpers, wrappers

    def flag(function: Any) -> bool:
        value = ctypes.c_int()
        helpers.c(function, ctypes.byref(value), status)
        return bool(value.value)

    exited, aborted, signaled = (flag(wrappers.drmaa_wifexited),
                                 flag(wrappers.drmaa_wifaborted),
                                 flag(wrappers.drmaa_wifsignaled))
    exit_status: int | None = None
    if exited:
        code = ctypes.c_int()
        helpers.c(wrappers.drmaa_wexitstatus, ctypes.byref(code), status)
        exit_status = code.value
    signal: str | None = None
    if signaled:
        name = ctypes.create_string_buffer(64)
        helpers.c(wrappers.drmaa_wtermsig, name, ctypes.sizeof(name), status)
        signal = name.value.decode() or None
    return Ending(job_id, exited, exit_status, signal, aborted, usage)


def _strip_code(error: BaseException) -> str:
    """The library's message without the package's ``code N:`` prefix."""
    text = str(error)
    head, sep, rest = text.partition(": ")
    return rest if sep and head.startswith("code ") else text
