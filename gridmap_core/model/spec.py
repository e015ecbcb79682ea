"""What a batch of jobs shares (:class:`JobSpec`) and how a job ended without a result
(:class:`Failure`).

They are the model's, since a :class:`~gridmap_core.model.job.Job` holds both; the
backend contract (:mod:`gridmap_core.backend`) hands them to backends and re-exports
them, so ``from gridmap_core.backend import JobSpec`` keeps working.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources

__all__ = ["Failure", "JobSpec"]

_spec_keys = itertools.count(1)


@dataclass(frozen=True, eq=False)
class JobSpec:
    """What all jobs of a batch share: the function and how and where it runs."""

    function: Callable[..., Any]
    resources: Resources = field(default_factory=Resources)
    name: str = "gridmap_job"
    working_dir: str = "."
    copy_env: bool = True
    add_env: Mapping[str, str] | None = None
    interpreting_shell: str | None = None
    cleanup: bool = True
    # Grid Engine-only requests of the original GridMap (project, validation_level,
    # os_distribution, os_minor): kept so backends that understand them can honour them.
    extra: Mapping[str, str] = field(default_factory=dict)
    # Identifies the spec across processes, so a worker unpickles a function once.
    key: int = field(default_factory=lambda: next(_spec_keys))


class Failure(NamedTuple):
    """How one job ended without a result.

    ``exception`` is what the function raised (None when the job died); ``cause_of_death``
    says why a job was lost (None when it raised), and ``death_kind`` what kind of death
    that was (None when it raised, or when the backend gave no kind).
    """

    exception: BaseException | None
    traceback: str | None
    host_name: str = ""
    cause_of_death: str | None = None
    # From the monitor's heartbeats, where a backend has them: resubmissions, CPU
    # percent and memory (MB) over time, and the last heartbeat.
    num_resubmits: int = 0
    track_cpu: Sequence[float] = ()
    track_mem: Sequence[float] = ()
    heart_beat: Mapping[str, Any] | None = None
    job_id: str = ""  # the scheduler's id of the job's last attempt, where known
    death_kind: DeathKind | None = None
