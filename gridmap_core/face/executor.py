"""GridMapExecutor: a concurrent.futures.Executor over any gridmap backend."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Executor, Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from gridmap_core.backend import Backend, BackendSession, Batch, JobSpec, SessionOptions
from gridmap_core.map.notifying import EVERY_JOB_HOOKS, FAILURE_HOOKS, Notifiers
from gridmap_core.map.runs import FutureSink, Run, wait_all
from gridmap_core.model.config import Settings, load_settings
from gridmap_core.model.job import Job, JobException, JobState, check_function
from gridmap_core.model.resources import check_names
from gridmap_core.model.serialization import check_picklable
from gridmap_core.plugins.manager import PluginManager, get_plugin_manager
from gridmap_core.plugins.selection import ChosenBackend, choose_backend
from gridmap_core.watching.progress import Progress

if TYPE_CHECKING:
    from gridmap_core.watching.page import StatusPage

__all__ = ["GridMapExecutor"]
logger = logging.getLogger(__name__)

# Job constructor options an executor accepts as defaults for the jobs it creates.
JOB_OPTIONS = frozenset(
    {
        "cleanup",
        "mem_free",
        "name",
        "num_slots",
        "queue",
        "interpreting_shell",
        "copy_env",
        "add_env",
        "project",
        "validation_level",
        "os_distribution",
        "os_minor",
        "par_env",
        "gpu",
        "h_vmem",
        "h_rt",
        "resources",
    }
)
# How long the end of a map waits, at most, for notifiers still sending (mails).
NOTIFIER_GRACE = 30.0


def check_max_processes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_processes={value!r} must be a whole number of at least 1")
    return value


class GridMapExecutor(Executor):
    """Run callables as gridmap jobs on a backend, with futures.

    ``backend`` names the backend (else ``GRIDMAP_BACKEND``, a config file, or the
    best usable one); ``local=True`` forces the local backend. Keyword options of
    :class:`~gridmap_core.model.job.Job` (``mem_free``, ``h_rt``, ``queue``, …) set the
    requests of every job submitted with :meth:`submit` or :meth:`map`.
    ``settings`` overrides settings by name (``{"NUM_RESUBMITS": 1}``);
    ``backend_options`` sets the backend's own options (``{"mode": "runner"}``), over
    its ``[backends.NAME]`` config sections.

    Leaving the ``with`` block on an exception, or Ctrl-C while waiting, cancels
    every job it submitted.
    """

    def __init__(
        self,
        backend: str | None = None,
        *,
        max_processes: int = 1,
        local: bool = False,
        require_cluster: bool = False,
        temp_dir: str | None = None,
        white_list: Sequence[str] | None = None,
        quiet: bool = True,
        status_page: bool | None = None,
        settings: Mapping[str, Any] | None = None,
        backend_options: Mapping[str, Any] | None = None,
        plugin_manager: PluginManager | None = None,
        **job_options: Any,
    ) -> None:
        self.max_processes = check_max_processes(max_processes)
        unknown = set(job_options) - JOB_OPTIONS
        if unknown:
            raise TypeError(
                f"unknown job option(s) {sorted(unknown)}; "
                f"accepted: {', '.join(sorted(JOB_OPTIONS))}"
            )
        if backend is not None and not isinstance(backend, str):
            raise TypeError(f"backend={backend!r} must be a backend name (a string)")
        self.job_options = job_options
        if job_options:
            Job(_placeholder, [], **job_options)  # validate resource strings now
        self.plugins = plugin_manager or get_plugin_manager()
        arguments = dict(settings or {})
        # Explicit arguments win over the same names in ``settings``; None is unset.
        arguments.update(
            {k: v for k, v in (("BACKEND", backend), ("DEFAULT_TEMP_DIR", temp_dir)) if v}
        )
        if status_page is not None:
            arguments["STATUS_PAGE"] = status_page
        settings_ = load_settings(arguments)
        self.chosen: ChosenBackend = choose_backend(
            settings_, self.plugins, local=local, require_cluster=require_cluster
        )
        self.settings: Settings = settings_.for_backend(self.chosen.spec.name)
        self.backend: Backend = self.chosen.backend
        self.backend_options = self._backend_options(backend_options or {})
        self.white_list = check_names(white_list, "white_list")
        self.quiet = quiet
        self.notifiers = Notifiers.load(self.settings, self.plugins)
        self.status: StatusPage | None = None
        if self.settings["STATUS_PAGE"]:
            from gridmap_core.watching.page import (
                StatusPage,  # a web server's imports: only if asked
            )

            self.status = StatusPage.from_settings(self.settings)
        if self.status is not None:
            self.notifiers.add("status page", self.status.board)
        self._session: BackendSession | None = None
        self._lock = threading.Lock()
        self._shutdown = False
        # Only what is still running: finished runs and futures are let go.
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()
        self._futures: dict[Future[Any], Job] = {}
        self._specs: dict[Any, JobSpec] = {}

    @property
    def backend_name(self) -> str:
        """Name of the backend in use."""
        return self.chosen.spec.name

    @property
    def session(self) -> BackendSession | None:
        """The backend's session, once the first job was submitted (for diagnostics:
        a monitored session has the ``address`` runners dial and its ``log_dir``)."""
        return self._session

    # -- plumbing ---------------------------------------------------------------------

    def _open(self) -> BackendSession:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit jobs after the executor was shut down")
            if self._session is None:
                self._session = self.backend.open(
                    SessionOptions(
                        settings=self.settings,
                        max_processes=self.max_processes,
                        temp_dir=self.settings["DEFAULT_TEMP_DIR"],
                        quiet=self.quiet,
                        white_list=self.white_list,
                        options=self.backend_options,
                    )
                )
            return self._session

    def _backend_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The chosen backend's options: ``given`` over its ``[backends.NAME]`` config
        sections, each checked against the keys the backend declares."""
        return self.settings.checked_backend_options(self.backend_name,
                                                     self.chosen.spec.options, given)

    def _defaults(self) -> dict[str, Any]:
        return {
            "queue": self.settings["DEFAULT_QUEUE"],
            "par_env": self.settings["DEFAULT_PAR_ENV"],
            "white_list": list(self.white_list) or None,
        }

    def _spec_for(self, job: Job) -> JobSpec:
        """One JobSpec per distinct function + requests, so batches group into arrays."""
        requirements = job.requirements(self._defaults())
        key = (
            id(job.function),
            requirements,
            job.working_dir,
            job.copy_env,
            tuple(sorted((job.add_env or {}).items())),
            job.interpreting_shell,
            job.cleanup,
            job.project,
            job.validation_level,
            job.os_distribution,
            job.os_minor,
        )
        spec = self._specs.get(key)
        if spec is None or spec.function is not job.function:
            spec = job.spec(self._defaults())
            self.backend.check(spec)
            self._specs[key] = spec
        return spec

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every observer and notifier; one that raises is
        logged, never fatal."""
        self.plugins.broadcast(hook, **kwargs)
        self.notifiers.call(hook, kwargs)

    def waiting(self, job: Job, note: str) -> None:
        """The scheduler says why a queued job waits (JobEvents)."""
        self.notify("gridmap_job_waiting", job=job, note=note)

    def started(self, job: Job) -> None:
        """A job began to run (JobEvents)."""
        self.notify("gridmap_job_started", job=job)

    def ended(self, job: Job) -> None:
        """A job ended (JobEvents): finished, failed or died."""
        hook = {JobState.DEAD: "gridmap_job_died", JobState.FAILED: "gridmap_job_failed"}.get(
            job.state, "gridmap_job_finished"
        )
        self.notify(hook, job=job)

    def heartbeat(self, job: Job, heartbeat: Mapping[str, Any]) -> None:
        """A running job reported its health (JobEvents)."""
        self.notify("gridmap_job_heartbeat", job=job, heartbeat=dict(heartbeat))

    def resubmitted(self, job: Job) -> None:
        """A dead job was submitted again (JobEvents)."""
        self.notify("gridmap_job_resubmitted", job=job)

    def observed(self) -> bool:
        """Whether any plugin or notifier listens to per-job events."""
        return self.observes_every_job() or self._listened(FAILURE_HOOKS)

    def observes_every_job(self) -> bool:
        """Whether anyone listens to events that every job has (started, finished…);
        otherwise Job objects are needed only for jobs that fail, die or resubmit."""
        return self._listened(EVERY_JOB_HOOKS)

    def _listened(self, hooks: tuple[str, ...]) -> bool:
        return self.notifiers.listens_to(hooks) or any(
            getattr(self.plugins.hook, h).get_hookimpls() for h in hooks)

    # -- concurrent.futures API -----------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` as a job; its future holds the result."""
        job = Job(fn, args, kwargs, **self.job_options)
        return self.submit_job(job)

    def submit_job(self, job: Job) -> Future[Any]:
        """Run a prepared :class:`Job`; the future's result is its return value."""
        check_picklable((job.function, job.args, job.kwlist), f"job {job.name}")
        spec = self._spec_for(job)
        future: Future[Any] = Future()
        sink = FutureSink(future, job, self if self.observed() else None)
        job.reset()
        job.state = JobState.SUBMITTED
        job.backend = self.backend_name
        self.show_status(None)
        session = self._open()
        with self._lock:
            self._futures[future] = job
        future.add_done_callback(self._forget)
        self.notify("gridmap_job_submitted", job=job)
        session.submit(Batch(spec, [tuple(job.args)], [job.kwlist] if job.kwlist else None, sink))
        return future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like :meth:`concurrent.futures.Executor.map`, submitted as one batch.

        Results come in input order; the first failed job raises when reached.
        """
        check_function(fn)
        args = list(zip(*iterables, strict=False))
        run = self.start_run(fn, args)
        deadline = None if timeout is None else time.monotonic() + timeout

        def results() -> Iterator[Any]:
            for index in range(len(args)):
                remaining = None if deadline is None else deadline - time.monotonic()
                if not run.wait_for(index, remaining):
                    raise TimeoutError(f"job {index} did not finish within {timeout} s")
                if index in run.failures:
                    raise JobException([self.job_of(run, index, fn, args)],
                                       log_dir=self.kept_log_dir())
                yield run.values[index]

        return results()

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.pop(future, None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting jobs; with ``cancel_futures``, cancel what has not finished.

        With ``wait=False`` (and no cancelling) it returns at once, and the backend is
        released in the background when the jobs already submitted have ended.
        """
        with self._lock:
            self._shutdown = True
            session, runs = self._session, list(self._runs)
            futures = list(self._futures.items())
        if cancel_futures:
            for run in runs:
                run.cancel()
            for future, _ in futures:
                future.cancel()
            if session is not None:
                session.close(cancel=True)
            # Running jobs were stopped too: their futures end now, or they never would.
            for future, job in futures:
                if not future.done():
                    job.state = JobState.CANCELLED
                    with contextlib.suppress(InvalidStateError):  # it ended just now
                        future.set_exception(CancelledError(
                            f"job {job.name} was stopped: the executor shut down with "
                            "cancel_futures=True"))
        elif wait:
            self._drain(session, runs, [future for future, _ in futures])
            self.close_notifiers()
        else:
            threading.Thread(
                target=self._drain,
                args=(session, runs, [future for future, _ in futures]),
                name="gridmap-shutdown",
                daemon=True,
            ).start()

    @staticmethod
    def _drain(session: BackendSession | None, runs: list[Run], futures: list[Future[Any]]) -> None:
        """Wait for submitted jobs to end, then release the backend."""
        for run in runs:
            with contextlib.suppress(CancelledError):
                run.wait()
        for future in futures:
            if not future.cancelled():
                future.exception()
        if session is not None:
            session.close(cancel=False)

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        finally:
            self.close_notifiers()

    def close_notifiers(self) -> None:
        """Let notifiers send what they still hold, for at most NOTIFIER_GRACE seconds
        (a mail server that hangs must not hang the program); stop the status page."""
        if self.status is not None:
            self.status.close()
        self.notifiers.close(NOTIFIER_GRACE)

    def show_status(self, name: str | None) -> None:
        """Start the status page, if asked for, as the first map starts; print its address."""
        if self.status is not None:
            self.status.start(name or self.job_options.get("name") or "gridmap_job")

    # -- maps ---------------------------------------------------------------------------

    def start_run(
        self, fn: Callable[..., Any], args: Sequence[Any], name: str | None = None
    ) -> Run:
        """Submit ``fn(*a)`` for each ``a`` in ``args`` as one batch; return its Run."""
        check_picklable(fn, "the function")
        check_picklable(args, "args_list")
        template = Job(fn, [], **{**self.job_options, **({"name": name} if name else {})})
        spec = self._spec_for(template)
        self.show_status(name)
        if self.observes_every_job():  # a Job per input, and every event told, in one batch
            jobs = [self._job_for(index, fn, args, name) for index in range(len(args))]
            for job in jobs:
                self.notify("gridmap_job_submitted", job=job)
            run = Run(len(args), jobs, self)
        elif self.observed():  # only failures are heard of: Job objects for those alone
            run = Run(len(args), events=self,
                      make_job=lambda index: self._job_for(index, fn, args, name))
        else:
            run = Run(len(args))
        with self._lock:
            self._runs.add(run)
        if args:
            self._open().submit(Batch(spec, args, None, run))
        return run

    def kept_log_dir(self) -> str | None:
        """Where the session keeps the jobs' logs (a monitored session keeps them when
        a job failed), for messages; None if it keeps none."""
        log_dir = getattr(self._session, "log_dir", None)
        return log_dir if isinstance(log_dir, str) and os.path.isdir(log_dir) else None

    def job_of(
        self,
        run: Run,
        index: int,
        fn: Callable[..., Any],
        args: Sequence[Sequence[Any]],
        name: str | None = None,
    ) -> Job:
        """The Job object of a failed job of a run (made only for failures, on the
        fast path)."""
        if run.jobs is not None:
            return run.jobs[index]
        job = run.made.get(index)
        if job is None:
            job = self._job_for(index, fn, args, name)
            job.record_failure(run.failures[index])
        return job

    def _job_for(self, index: int, fn: Callable[..., Any], args: Sequence[Sequence[Any]],
                 name: str | None) -> Job:
        base = name or self.job_options.get("name", "gridmap_job")
        job = Job(fn, list(args[index]), **{**self.job_options, "name": f"{base}{index}"})
        job.backend = self.backend_name
        job.state = JobState.SUBMITTED
        return job

    def run_jobs(
        self,
        jobs: Sequence[Job],
        *,
        name: str | None = None,
        completion_mail: bool = False,
        on_failure: str = "raise",
    ) -> None:
        """Run prepared jobs to the end, filling their outcome fields.

        Jobs that share a function and requests go to the backend as one batch. With
        ``on_failure="raise"`` (the default) raise :class:`JobException` naming every
        job that failed or died; ``"return"`` leaves the exceptions in ``job.ret``;
        ``"cancel"`` cancels the rest at the first failure, then raises.
        """
        check_on_failure(on_failure)
        started = time.monotonic()
        check_picklable([(job.function, job.args, job.kwlist) for job in jobs], "jobs")
        groups: dict[int, list[Job]] = {}
        specs: dict[int, JobSpec] = {}
        for job in jobs:
            spec = self._spec_for(job)
            specs[spec.key] = spec
            groups.setdefault(spec.key, []).append(job)
        events = self if self.observed() else None
        self.show_status(name if name is not None else (jobs[0].name if jobs else None))
        session = self._open()
        condition = threading.Condition()
        runs = []
        for key, members in groups.items():
            for job in members:
                job.reset()
                job.state = JobState.SUBMITTED
                job.backend = self.backend_name
                self.notify("gridmap_job_submitted", job=job)
            run = Run(len(members), members, events, condition)
            with self._lock:
                self._runs.add(run)
            kwargs = [job.kwlist for job in members]
            args = [tuple(job.args) for job in members]
            session.submit(Batch(specs[key], args, kwargs if any(kwargs) else None, run))
            runs.append(run)
        cancelled = 0
        with self.watching(runs, name if name is not None else (jobs[0].name if jobs else "")):
            stopped = wait_all(runs, stop_on_failure=on_failure == "cancel")
        if stopped:
            self.cancel_all()
            for job in jobs:
                if job.state in (JobState.SUBMITTED, JobState.RUNNING):
                    job.state = JobState.CANCELLED
                    cancelled += 1
        failed = [job for job in jobs if job.failed]
        self.finish_map(
            list(jobs),
            failed,
            len(jobs),
            started,
            name=name if name is not None else (jobs[0].name if jobs else ""),
            completion_mail=completion_mail,
            on_failure=on_failure,
            cancelled=cancelled,
        )

    def watching(self, runs: Sequence[Run], name: str) -> contextlib.AbstractContextManager[Any]:
        """What shows the map's progress while it is waited for: nothing when quiet."""
        if self.quiet:
            return contextlib.nullcontext()
        return Progress(runs, name, interval=float(self.settings["PROGRESS_INTERVAL"]))

    def cancel_all(self) -> None:
        """Cancel every job of this executor: queued ones never start, running ones
        are stopped. The executor cannot be used afterwards."""
        self.shutdown(wait=False, cancel_futures=True)

    def finish_map(
        self,
        jobs: list[Job],
        failed: list[Job],
        total: int,
        started: float,
        *,
        name: str,
        completion_mail: bool = False,
        on_failure: str = "raise",
        cancelled: int = 0,
    ) -> None:
        """Tell plugins how a map ended; raise JobException if any job failed, unless
        ``on_failure="return"``.

        Per-job events were sent as each job ended, where anyone observes them.
        """
        self.notify(
            "gridmap_map_finished",
            jobs=jobs,
            summary={
                "name": name,
                "backend": self.backend_name,
                "total": total,
                "succeeded": total - len(failed) - cancelled,
                "failed": len(failed),
                "cancelled": cancelled,
                "wall_time": time.monotonic() - started,
                "completion_mail": completion_mail,
            },
        )
        if failed and on_failure != "return":
            raise JobException(failed, total=total, cancelled=cancelled,
                               log_dir=self.kept_log_dir())


FAILURE_POLICIES = ("raise", "return", "cancel")


def check_on_failure(value: object) -> str:
    """Validate a failure policy: raise, return or cancel."""
    if value not in FAILURE_POLICIES:
        raise ValueError(
            f"on_failure={value!r}: use 'raise' (JobException after all jobs ended), "
            "'return' (exceptions in place of results) or 'cancel' (cancel the rest at "
            "the first failure, then raise)"
        )
    return str(value)


def _placeholder() -> None:
    """Stands in for a function when only job options are validated."""
