"""grid_map and process_jobs: the original GridMap's entry points, over GridMapExecutor."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gridmap_core.face.executor import GridMapExecutor
from gridmap_core.face.maprun import MapRun, check_on_failure
from gridmap_core.model.job import Job, check_function
from gridmap_core.model.options import JobOptions

__all__ = ["grid_map", "process_jobs"]

#: Each map says on this logger, at info level, which backend runs it and why.
logger = logging.getLogger("gridmap.backend")
# The lines already printed by this process (see say_backend).
_printed: set[str] = set()


def backend_line(executor: GridMapExecutor) -> str:
    """Which backend runs the executor's jobs, and why, in a few words."""
    chosen = executor.chosen
    name = chosen.spec.name
    if not chosen.reason.startswith("automatic choice"):
        return f"jobs run on backend {name} ({chosen.reason})"
    unnamed = "as no backend is named (backend=, GRIDMAP_BACKEND or a config file)"
    if chosen.spec.is_cluster:
        return f"jobs run on backend {name}, the usable one of highest priority, {unnamed}"
    return (f"jobs run on backend {name}, on this machine, {unnamed} and no cluster "
            "backend is usable here (`gridmap backends` says why)")


def say_backend(executor: GridMapExecutor, name: str) -> None:
    """Say, as a map starts, which backend runs it and why.

    Always as an info record of the logger ``gridmap.backend``. Where the program has
    not set up logging, and its code did not name the backend itself (the choice came
    from the environment, a config file or the automatic choice), the line is printed
    on stderr instead, once per process: a first run says where its jobs went,
    without a line per map.
    """
    line = backend_line(executor)
    logger.info("%s: %s", name, line)
    reason = executor.chosen.reason
    named_in_code = reason == "local=True" or reason.startswith("argument ")
    if named_in_code or logger.hasHandlers() or line in _printed:
        return
    _printed.add(line)
    print(f"gridmap: {line}", file=sys.stderr, flush=True)


def process_jobs(
    jobs: Sequence[Job],
    temp_dir: str | None = None,
    white_list: Sequence[str] | None = None,
    quiet: bool = True,
    max_processes: int = 1,
    local: bool = False,
    require_cluster: bool = False,
    *,
    backend: str | None = None,
    on_failure: str = "raise",
    status_page: bool | None = None,
) -> list[Any]:
    """Run ``jobs`` and return their results in order.

    Each job's outcome fields (``ret``, ``traceback``, ``cause_of_death``,
    ``host_name``, …) are filled in. Raises :class:`JobException` naming every job
    that failed or died. ``local=True`` runs on this machine with ``max_processes``
    worker processes; ``backend`` names any installed backend. ``on_failure``:
    ``"raise"`` (the default) raises after every job ended; ``"return"`` returns the
    exceptions in place of results (a :class:`JobException` for a job that died);
    ``"cancel"`` cancels the rest at the first failure, then raises.
    """
    check_on_failure(on_failure)
    jobs = list(jobs)
    for index, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise TypeError(f"jobs[{index}] is a {type(job).__name__}, not a gridmap Job")
    with GridMapExecutor(backend, **_executor_arguments(locals())) as executor:
        say_backend(executor, jobs[0].name if jobs else "process_jobs")
        return MapRun.of_jobs(executor.runtime, jobs, on_failure=on_failure).run()


# The parameters that grid_map and process_jobs pass on to GridMapExecutor as they are.
_EXECUTOR_ARGUMENTS = ("max_processes", "local", "require_cluster", "temp_dir", "white_list",
                       "quiet", "status_page")


def _executor_arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in _EXECUTOR_ARGUMENTS}


def _as_args(item: Any) -> Any:
    # The original GridMap spreads a list into positional arguments and passes
    # anything else (a tuple too) as the single argument.
    return item if type(item) is list else (item,)


def grid_map(
    f: Callable[..., Any],
    args_list: Iterable[Any],
    cleanup: bool = True,
    mem_free: str | None = "1G",
    name: str = "gridmap_job",
    num_slots: int = 1,
    temp_dir: str | None = None,
    white_list: Sequence[str] | None = None,
    queue: str | None = None,
    quiet: bool = True,
    local: bool = False,
    max_processes: int = 1,
    interpreting_shell: str | None = None,
    copy_env: bool = True,
    add_env: Mapping[str, str] | None = None,
    project: str | None = None,
    validation_level: str | None = None,
    os_distribution: str | None = None,
    os_minor: str | None = None,
    gpu: int = 0,
    h_vmem: str | None = None,
    h_rt: str | int | None = None,
    resources: Sequence[str] | None = None,
    completion_mail: bool = False,
    require_cluster: bool = False,
    par_env: str | None = None,
    *,
    backend: str | None = None,
    on_failure: str = "raise",
    status_page: bool | None = None,
) -> list[Any]:
    """Apply ``f`` to every element of ``args_list`` as jobs; return results in order.

    The parameters up to ``par_env`` are the original GridMap's, in its order.

    An element that is a list is spread into positional arguments
    (``f(*element)``); anything else is passed as the one argument, as in the
    original GridMap. ``queue``, ``par_env`` and ``temp_dir`` default to the
    DEFAULT_QUEUE, DEFAULT_PAR_ENV and DEFAULT_TEMP_DIR settings. Raises
    :class:`JobException` naming every job that failed or died, with its remote
    traceback; ``on_failure`` chooses otherwise, as for :func:`process_jobs`.
    ``quiet=False`` shows the map's progress; ``status_page=True`` (or the STATUS_PAGE
    setting) serves a live web page of its jobs, whose address is printed as it starts.
    """
    check_function(f)
    check_on_failure(on_failure)
    if isinstance(args_list, (str, bytes)) or not isinstance(args_list, Iterable):
        raise TypeError(
            f"args_list must be an iterable of inputs (a list, a range, …), "
            f"got {type(args_list).__name__}"
        )
    args = [_as_args(item) for item in args_list]
    # The signature above is the original GridMap's; its job options go on by name.
    options = JobOptions.of(locals(), strict=False)
    with GridMapExecutor(backend, **_executor_arguments(locals()), **options.as_dict()) as executor:
        say_backend(executor, name)
        return MapRun.of_calls(executor.runtime, f, args, name, on_failure=on_failure,
                               completion_mail=completion_mail).run()
