"""The cluster's queue as a benchmark sees it: its own jobs, other users' jobs, cleaning up.

Every job a benchmark submits has a name starting with a per-invocation prefix, so its
jobs can be waited for and deleted without touching anyone else's. A scheduler adapter
says how to list the queue, how to delete jobs and how to describe the cluster.
"""

from __future__ import annotations

import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["CLEAR_TIMEOUT", "Cluster", "QueuedJob"]

# How long leftover jobs may take to leave the queue before they are deleted.
CLEAR_TIMEOUT = 120.0


@dataclass(frozen=True)
class QueuedJob:
    group: str  # what the delete command takes: the job's, or its array's, id
    name: str
    pending: bool
    host: str = ""  # the node a running job runs on, when the scheduler says


class Cluster(ABC):
    """The scheduler's tools for this benchmark's jobs, whose names start with ``prefix``."""

    delete_tool: ClassVar[str]  # the command that deletes jobs by id: qdel, scancel
    delete_verb: ClassVar[str]  # what the log says it does: deleting, cancelling

    def __init__(self, env: dict[str, str], prefix: str, log: Callable[[str], None]) -> None:
        self.env, self.prefix, self.log = env, prefix, log

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    @abstractmethod
    def jobs(self) -> list[QueuedJob]:
        """Every job not yet ended; RuntimeError when the queue cannot be read."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The cluster's version, settings and capacity, for the report; best effort."""

    def ours(self, jobs: Sequence[QueuedJob] | None = None) -> list[QueuedJob]:
        return [j for j in (self.jobs() if jobs is None else jobs)
                if j.name.startswith(self.prefix)]

    def delete_ours(self) -> int:
        """Delete every job of this benchmark still queued; never anyone else's."""
        groups = sorted({j.group for j in self.ours()},
                        key=lambda g: int(g) if g.isdigit() else 0)
        if groups:
            self.log(f"{self.delete_verb} this benchmark's leftover jobs: {' '.join(groups)}")
            self.run(self.delete_tool, *groups)
        return len(groups)

    def wait_until_clear(self, idle_wait: float = 0.0) -> dict[str, int]:
        """Wait until none of our jobs is queued or running, and up to ``idle_wait``
        seconds more for other users' jobs to go; return what others have left then."""
        start = time.monotonic()
        deadline = start + CLEAR_TIMEOUT
        deleted = told = False
        while True:
            jobs = self.jobs()
            if not self.ours(jobs):
                if jobs and time.monotonic() < start + idle_wait:
                    if not told:
                        self.log(f"  waiting up to {idle_wait:.0f} s for {len(jobs)} job(s) "
                                 "of others to leave the cluster")
                        told = True
                    time.sleep(0.5)
                    continue
                return {"running": sum(1 for j in jobs if not j.pending),
                        "pending": sum(1 for j in jobs if j.pending)}
            if time.monotonic() > deadline:
                if deleted:
                    raise RuntimeError(f"jobs named {self.prefix}* are still on the cluster "
                                       f"{CLEAR_TIMEOUT:.0f} s after {self.delete_tool}")
                self.delete_ours()
                deleted, deadline = True, time.monotonic() + CLEAR_TIMEOUT
            time.sleep(0.25)
