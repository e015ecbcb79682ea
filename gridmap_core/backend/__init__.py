"""The contract between the core and a scheduler backend.

The executor hands a backend *batches*: many calls of one function that share one
:class:`JobSpec` (resources, environment, working directory). A batch maps naturally
onto a scheduler's job array, and lets the local backend ship ten thousand calls
without ten thousand objects. Results flow back through the batch's :class:`Sink`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

# Defined with the model, since a Job holds them; part of the contract all the same.
from gridmap_core.model.death import DeathKind
from gridmap_core.model.spec import Failure, JobSpec

if TYPE_CHECKING:
    from gridmap_core.model.config import Settings

__all__ = [
    "Availability",
    "Backend",
    "BackendSession",
    "Batch",
    "DeathKind",
    "Failure",
    "JobSpec",
    "SessionOptions",
    "Sink",
]


class Sink(Protocol):
    """Where a backend reports on the jobs of one batch (implemented by the core)."""

    def claim(self, start: int, stop: int) -> Sequence[int]:
        """Indices in ``range(start, stop)`` still wanted; the rest were cancelled.

        A backend calls this just before it starts (or submits) the jobs; a job it
        does not get back must not be run.
        """
        ...

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        """The job at ``index`` began to run as the scheduler's job ``job_id``
        (``host_name`` and ``job_id`` may be empty: not known).

        Called again for each resubmission that starts.
        """
        ...

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        """Jobs at ``indices`` returned ``values``."""
        ...

    def failed(self, index: int, failure: Failure) -> None:
        """The job at ``index`` raised or died."""
        ...

    def heartbeat(self, index: int, heartbeat: Mapping[str, Any]) -> None:
        """The job at ``index`` is alive: ``heartbeat`` holds ``cpu`` (percent),
        ``memory`` (bytes), ``host_name``, ``status`` and ``log_tail``."""
        ...

    def resubmitted(self, index: int, cause_of_death: str,
                    kind: DeathKind | None = None) -> None:
        """The job at ``index`` died of ``cause_of_death`` (a death of ``kind``, None
        when the backend cannot tell) and was submitted again."""
        ...

    def job_name(self, index: int) -> str | None:
        """The name of the job at ``index``, for log lines; None when the sink does not
        know it (the job is then named after the batch's spec and its index)."""
        ...

    def waiting(self, index: int, note: str) -> None:
        """The job at ``index`` is still queued, and ``note`` says why in the
        scheduler's words ("" once it gives no reason); told when the note changes."""
        ...


@dataclass(eq=False)
class Batch:
    """Calls of ``spec.function``: ``args[i]`` (a tuple) and ``kwargs[i]`` (or no kwargs)."""

    spec: JobSpec
    args: Sequence[tuple[Any, ...]]
    kwargs: Sequence[Mapping[str, Any]] | None
    sink: Sink

    def __len__(self) -> int:
        return len(self.args)


class Availability(NamedTuple):
    """Whether a backend can be used on this machine, and if not, what to do about it."""

    usable: bool
    reason: str = ""


@dataclass(frozen=True)
class SessionOptions:
    """What a backend session is opened with."""

    settings: Settings
    max_processes: int = 1
    temp_dir: str = "/scratch/"
    quiet: bool = True
    white_list: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The session directory of a map to take on again (``gridmap attach``): the
    #: session serves that map, from its journal, instead of starting a new one.
    resume: str | None = None


@runtime_checkable
class BackendSession(Protocol):
    """A backend's open connection to its scheduler (or its worker processes)."""

    def submit(self, batch: Batch) -> None:
        """Queue every job of ``batch``; return without waiting for them to run."""
        ...

    def close(self, cancel: bool = False) -> None:
        """Release everything; with ``cancel``, stop every job still queued or running.

        Must be safe to call twice and from a ``finally`` after Ctrl-C.
        """
        ...


@runtime_checkable
class Backend(Protocol):
    """A scheduler backend, created by the factory of its :class:`~.plugins.BackendSpec`."""

    def availability(self) -> Availability:
        """Whether it can run jobs here; cheap, and never raises."""
        ...

    def check(self, spec: JobSpec) -> None:
        """Raise :class:`~.resources.ResourceError` for requests it cannot honour."""
        ...

    def open(self, options: SessionOptions) -> BackendSession:
        """Start a session (worker processes, a DRMAA session, …)."""
        ...
