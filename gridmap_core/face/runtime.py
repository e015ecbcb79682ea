"""Runtime: what the maps and futures of one executor share.

The settings and the chosen backend, the backend's session (opened at the first
submit), one JobSpec per distinct function and requests, the observers of job events
(plugins, notifiers, the status page), and every run and future still in flight, so
that a shutdown can wait for them or cancel them. :class:`~gridmap_core.face.maprun.MapRun`
and :class:`~gridmap_core.face.executor.GridMapExecutor` are built on it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError, Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from gridmap_core.backend import Backend, BackendSession, JobSpec, SessionOptions
from gridmap_core.map.notifying import Notifiers
from gridmap_core.map.runs import Run
from gridmap_core.model.config import Settings, load_settings
from gridmap_core.model.events import (
    EVERY_JOB_HOOKS,
    FAILURE_HOOKS,
    Event,
)
from gridmap_core.model.job import Job, JobState
from gridmap_core.model.options import JobOptions
from gridmap_core.model.resources import check_names
from gridmap_core.plugins.manager import (
    PluginManager,
    deliver,
    get_plugin_manager,
    hooks_of,
    plugin_failed,
)
from gridmap_core.plugins.selection import ChosenBackend, choose_backend
from gridmap_core.watching.progress import Progress

if TYPE_CHECKING:
    from gridmap_core.watching.page import StatusPage

__all__ = ["NOTIFIER_GRACE", "Runtime", "check_max_processes"]

# How long the end of a map waits, at most, for notifiers still sending (mails).
NOTIFIER_GRACE = 30.0


def check_max_processes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_processes={value!r} must be a whole number of at least 1")
    return value


class Runtime:
    """The settings, backend, session and observers of one executor's jobs.

    It is also the :class:`~gridmap_core.map.runs.JobEvents` of its runs: each event
    goes to the hooks of the process's plugins, then to its own notifiers (and status
    board), which are plugins of its own manager, so that they hear this executor's
    events only.
    """

    def __init__(
        self,
        backend: str | None,
        *,
        max_processes: int,
        local: bool,
        require_cluster: bool,
        temp_dir: str | None,
        white_list: Sequence[str] | None,
        quiet: bool,
        status_page: bool | None,
        settings: Mapping[str, Any] | None,
        backend_options: Mapping[str, Any] | None,
        plugin_manager: PluginManager | None,
        job_options: JobOptions,
    ) -> None:
        self.max_processes = check_max_processes(max_processes)
        if backend is not None and not isinstance(backend, str):
            raise TypeError(f"backend={backend!r} must be a backend name (a string)")
        self.job_options = job_options
        self.plugins = plugin_manager or get_plugin_manager()
        arguments = dict(settings or {})
        # Explicit arguments win over the same names in ``settings``; None is unset.
        arguments.update(
            {k: v for k, v in (("BACKEND", backend), ("DEFAULT_TEMP_DIR", temp_dir)) if v}
        )
        if status_page is not None:
            arguments["STATUS_PAGE"] = status_page
        loaded = load_settings(arguments)
        self.chosen: ChosenBackend = choose_backend(
            loaded, self.plugins, local=local, require_cluster=require_cluster
        )
        self.settings: Settings = loaded.for_backend(self.chosen.spec.name)
        self.backend: Backend = self.chosen.backend
        # The chosen backend's options: ``backend_options`` over its ``[backends.NAME]``
        # config sections, each checked against the keys the backend declares.
        self.backend_options = self.settings.checked_backend_options(
            self.backend_name, self.chosen.spec.options, backend_options or {})
        self.white_list = check_names(white_list, "white_list")
        self.quiet = quiet
        # Registered as plugins of this executor's own manager until close_notifiers().
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
        self.lock = threading.Lock()
        self.shut_down = False
        # Only what is still running: finished runs and futures are let go.
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()
        self._futures: dict[Future[Any], Job] = {}
        self._specs: dict[Any, JobSpec] = {}

    @property
    def backend_name(self) -> str:
        return self.chosen.spec.name

    @property
    def session(self) -> BackendSession | None:
        return self._session

    def open(self) -> BackendSession:
        """The backend's session, opened on first use."""
        with self.lock:
            if self.shut_down:
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

    def _defaults(self) -> dict[str, Any]:
        return {
            "queue": self.settings["DEFAULT_QUEUE"],
            "par_env": self.settings["DEFAULT_PAR_ENV"],
            "white_list": list(self.white_list) or None,
        }

    def spec_for(self, job: Job) -> JobSpec:
        """One JobSpec per distinct function + requests, so batches group into arrays."""
        key = (id(job.function), job.requirements(self._defaults()), job.working_dir,
               job.options.grouping_key())
        spec = self._specs.get(key)
        if spec is None or spec.function is not job.function:
            spec = job.spec(self._defaults())
            self.backend.check(spec)
            self._specs[key] = spec
        return spec

    def new_job(self, function: Any, args: Sequence[Any], name: str) -> Job:
        """A Job of this executor's options, as submitted."""
        job = Job(function, list(args), **self.job_options.replace(name=name).as_dict())
        job.backend = self.backend_name
        job.state = JobState.SUBMITTED
        return job

    def track(self, run: Run) -> None:
        with self.lock:
            self._runs.add(run)

    def track_future(self, future: Future[Any], job: Job) -> None:
        with self.lock:
            self._futures[future] = job
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[Any]) -> None:
        with self.lock:
            self._futures.pop(future, None)

    # -- events -------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Tell an event to every plugin and notifier; one that raises is logged, never
        fatal."""
        deliver(self.plugins, event, plugin_failed)
        self.notifiers.tell(event)

    def observed(self) -> bool:
        """Whether any plugin or notifier listens to per-job events."""
        return self.observes_every_job() or self._listened(FAILURE_HOOKS)

    def observes_every_job(self) -> bool:
        """Whether anyone listens to events that every job has (started, finished…);
        otherwise Job objects are needed only for jobs that fail, die or resubmit."""
        return self._listened(EVERY_JOB_HOOKS)

    def _listened(self, hooks: tuple[str, ...]) -> bool:
        # A few list lookups: asked once per map, before any Job object is made.
        return self.notifiers.listens_to(hooks) or hooks_of(self.plugins, hooks)

    # -- showing ------------------------------------------------------------------------

    def show_status(self, name: str | None) -> None:
        """Start the status page, if asked for, as the first map starts; print its address."""
        if self.status is not None:
            self.status.start(name or self.job_options.name)

    def progress(self, runs: Sequence[Run], name: str) -> contextlib.AbstractContextManager[Any]:
        """What shows a map's progress while it is waited for: nothing when quiet."""
        if self.quiet:
            return contextlib.nullcontext()
        return Progress(runs, name, interval=float(self.settings["PROGRESS_INTERVAL"]))

    def kept_log_dir(self) -> str | None:
        """Where the session keeps the jobs' logs (a monitored session keeps them when
        a job failed), for messages; None if it keeps none."""
        log_dir = getattr(self._session, "log_dir", None)
        return log_dir if isinstance(log_dir, str) and os.path.isdir(log_dir) else None

    # -- the end ------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting jobs; with ``cancel_futures``, cancel what has not finished
        (queued jobs never start, running ones are stopped).

        With ``wait=False`` (and no cancelling) it returns at once, and the backend is
        released in the background when the jobs already submitted have ended.
        """
        with self.lock:
            self.shut_down = True
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
            _drain(session, runs, [future for future, _ in futures])
            self.close_notifiers()
        else:
            threading.Thread(
                target=_drain,
                args=(session, runs, [future for future, _ in futures]),
                name="gridmap-shutdown",
                daemon=True,
            ).start()

    def close_notifiers(self) -> None:
        """Let notifiers send what they still hold, for at most NOTIFIER_GRACE seconds
        (a mail server that hangs must not hang the program); stop the status page."""
        if self.status is not None:
            self.status.close()
        self.notifiers.close(NOTIFIER_GRACE)


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
