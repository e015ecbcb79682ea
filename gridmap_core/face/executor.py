"""GridMapExecutor: a concurrent.futures.Executor over any gridmap backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

from gridmap_core.backend import Backend, BackendSession, Batch
from gridmap_core.face.maprun import MapRun, check_on_failure
from gridmap_core.face.runtime import Runtime
from gridmap_core.map.runs import FutureSink
from gridmap_core.model.config import Settings
from gridmap_core.model.events import JobSubmitted
from gridmap_core.model.job import Job, JobState, check_function
from gridmap_core.model.options import JobOptions
from gridmap_core.model.serialization import check_picklable
from gridmap_core.plugins.manager import PluginManager
from gridmap_core.plugins.selection import ChosenBackend

if TYPE_CHECKING:
    from gridmap_core.map.notifying import Notifiers
    from gridmap_core.watching.page import StatusPage

__all__ = ["GridMapExecutor"]


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
        options = JobOptions.of(job_options)
        if job_options:
            Job(_placeholder, [], **options.as_dict())  # validate resource strings now
        self.runtime = Runtime(
            backend,
            max_processes=max_processes,
            local=local,
            require_cluster=require_cluster,
            temp_dir=temp_dir,
            white_list=white_list,
            quiet=quiet,
            status_page=status_page,
            settings=settings,
            backend_options=backend_options,
            plugin_manager=plugin_manager,
            job_options=options,
        )

    # What the runtime holds, for diagnostics and tests.

    @property
    def backend_name(self) -> str:
        """Name of the backend in use."""
        return self.runtime.backend_name

    @property
    def chosen(self) -> ChosenBackend:
        """The backend in use, and why it was chosen."""
        return self.runtime.chosen

    @property
    def backend(self) -> Backend:
        return self.runtime.backend

    @property
    def settings(self) -> Settings:
        """The effective settings, with their provenance."""
        return self.runtime.settings

    @property
    def notifiers(self) -> Notifiers:
        return self.runtime.notifiers

    @property
    def status(self) -> StatusPage | None:
        """The status page, when one was asked for."""
        return self.runtime.status

    @property
    def session(self) -> BackendSession | None:
        """The backend's session, once the first job was submitted (for diagnostics:
        a monitored session has the ``address`` runners dial and its ``log_dir``)."""
        return self.runtime.session

    # -- concurrent.futures API -----------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` as a job; its future holds the result."""
        job = Job(fn, args, kwargs, **self.runtime.job_options.as_dict())
        return self.submit_job(job)

    def submit_job(self, job: Job) -> Future[Any]:
        """Run a prepared :class:`Job`; the future's result is its return value."""
        runtime = self.runtime
        check_picklable((job.function, job.args, job.kwlist), f"job {job.name}")
        spec = runtime.spec_for(job)
        future: Future[Any] = Future()
        sink = FutureSink(future, job, runtime if runtime.observed() else None)
        job.reset()
        job.state = JobState.SUBMITTED
        job.backend = runtime.backend_name
        runtime.show_status(None)
        session = runtime.open()
        runtime.track_future(future, job)
        runtime.emit(JobSubmitted(job))
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
        run = MapRun.of_calls(self.runtime, fn, args)
        deadline = None if timeout is None else time.monotonic() + timeout

        def results() -> Iterator[Any]:
            for index in range(len(args)):
                remaining = None if deadline is None else deadline - time.monotonic()
                yield run.result_at(index, remaining)

        return results()

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
        MapRun.of_jobs(self.runtime, jobs, name, on_failure=on_failure,
                       completion_mail=completion_mail).run()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting jobs; with ``cancel_futures``, cancel what has not finished.

        With ``wait=False`` (and no cancelling) it returns at once, and the backend is
        released in the background when the jobs already submitted have ended.
        """
        self.runtime.shutdown(wait, cancel_futures=cancel_futures)

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        finally:
            self.runtime.close_notifiers()


def _placeholder() -> None:
    """Stands in for a function when only job options are validated."""
