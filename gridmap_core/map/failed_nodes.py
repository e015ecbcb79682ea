"""The nodes that failed during a session: which deaths they explain, and which hosts
resubmissions avoid.

A job that falls silent, is killed or vanishes may have died of its node. Only the
scheduler can say (its optional ``down_hosts``: Slurm's DOWN or NOT_RESPONDING nodes,
Grid Engine's queue instances in state ``u``), so it is asked then, once for all the
deaths found together, and never while jobs merely run. It is also asked while a
running job has been silent past :attr:`Limits.node_grace`: if its node is failed, the
job is dead then, rather than at MAX_TIME_BETWEEN_HEARTBEATS. It is asked on the thread
of a poll, at most once per poll, so that a slow scheduler never holds up the
monitor's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from gridmap_core.backend import DeathKind
from gridmap_core.backend.scheduler import JobStatus, Scheduler, same_host
from gridmap_core.map.liveness import (
    NODE_SUSPECTS,
    Verdict,
    failed_node,
    judge_node,
    judge_quiet,
    judge_status,
)
from gridmap_core.map.tasks import Task

__all__ = ["FailedNodes"]
logger = logging.getLogger("gridmap_core.map.monitor")


class FailedNodes:
    """The nodes of ``scheduler`` found failed in one session, each by the scheduler's
    name for it (or the runner's) with the scheduler's words. A node stays avoided until
    the scheduler, asked again, no longer counts it failed."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.hosts: dict[str, str] = {}
        self._ask: Callable[[], Mapping[str, str]] | None = getattr(scheduler, "down_hosts",
                                                                    None)
        # The scheduler's last answer: when it was asked, and the failed nodes. Written
        # on a poll's thread, read on the monitor's once that poll is done.
        self._answer: tuple[float, dict[str, str]] = (-float("inf"), {})

    @property
    def avoid(self) -> tuple[str, ...]:
        """The hosts a resubmission should not run on (:attr:`Launch.avoid`)."""
        return tuple(self.hosts)

    def awaits(self, tasks: Sequence[Task], since: float) -> bool:
        """Whether the scheduler must be asked again before ``tasks``, gone silent at
        ``since``, are judged: it can say, one of them has a known node, and it was last
        asked before then."""
        return (self._ask is not None and self._answer[0] < since
                and any(hosts_of(task) for task in tasks))

    def reader(self, live: Mapping[str, Task], wanted: bool
               ) -> Callable[[Mapping[str, JobStatus]], None] | None:
        """What a poll about ``live`` does with its answer, on its own thread: ask which
        nodes failed when ``wanted`` (silent jobs wait for it), or when the answer holds
        a death that a failed node may explain. None when the scheduler cannot say."""
        if self._ask is None:
            return None

        def read(statuses: Mapping[str, JobStatus]) -> None:
            if wanted or any(_suspect(job_id, status, live.get(job_id))
                             for job_id, status in statuses.items()):
                self.read()

        return read

    def read(self) -> None:
        """Ask the scheduler which nodes failed now; an error counts as none."""
        if self._ask is None:
            return
        asked_at = time.monotonic()
        try:
            down = {str(host): str(words) for host, words in self._ask().items()}
        except Exception as error:  # a courtesy: the deaths keep their own causes
            logger.debug("could not ask the scheduler which nodes failed: %s", error)
            down = {}
        self._answer = (asked_at, down)

    def blame(self, deaths: Sequence[tuple[Task, Verdict]], since: float) -> list[Verdict]:
        """The verdicts of ``deaths``, found at ``since``: those the scheduler's answer
        (if asked since then) explains by a failed node made deaths of that node."""
        verdicts = [verdict for _, verdict in deaths]
        suspects = []
        for number, (task, verdict) in enumerate(deaths):
            hosts = hosts_of(task)
            if verdict.kind is DeathKind.NODE_FAILED and hosts:
                self.add(hosts[0], verdict.cause)  # the scheduler said so already
            elif verdict.kind in NODE_SUSPECTS and hosts:
                suspects.append(number)
        asked_at, down = self._answer
        if not suspects or asked_at < since:
            return verdicts
        self._forget_recovered(down)
        for number in suspects:
            task, verdict = deaths[number]
            for host in hosts_of(task):
                found = failed_node(host, down)
                if found is not None:
                    self.add(*found)
                    verdicts[number] = judge_node(verdict, *found)
                    break
        return verdicts

    def quiet_deaths(self, quiet: Sequence[tuple[Task, float, bool]], since: float,
                     address: str) -> list[tuple[Task, Verdict]]:
        """Of ``quiet`` jobs (each silent for some seconds past the grace, and whether
        it fetched its task), those whose node the scheduler's answer, asked since
        ``since``, counts failed: dead of their node now. A job that spoke since is not
        among ``quiet``: a node the scheduler is wrong about keeps its jobs."""
        asked_at, down = self._answer
        if asked_at < since or not down:
            return []
        deaths = []
        for task, silent_for, fetched in quiet:
            for host in hosts_of(task):
                found = failed_node(host, down)
                if found is not None:
                    self.add(*found)
                    deaths.append((task, judge_node(judge_quiet(silent_for, fetched,
                                                                address), *found)))
                    break
        return deaths

    def _forget_recovered(self, down: Mapping[str, str]) -> None:
        """Nodes the scheduler no longer counts failed are no longer avoided."""
        for host in [h for h in self.hosts if not any(same_host(h, d) for d in down)]:
            logger.info("node %s no longer counts as failed; resubmitted jobs may run "
                        "there again", host)
            del self.hosts[host]

    def add(self, host: str, words: str) -> None:
        """``host``'s node failed: say so once, and avoid it from now on."""
        if not any(same_host(host, known) for known in self.hosts):
            logger.warning("node %s failed (%s): the jobs resubmitted from now on avoid it",
                           host, words)
        self.hosts[host] = words


def _suspect(job_id: str, status: JobStatus, task: Task | None) -> bool:
    """Whether a poll's news of a job is a death a failed node may explain, of a job
    whose node is known."""
    if task is None or not (status.host or hosts_of(task)):
        return False
    verdict = judge_status(status, job_id)
    return verdict is not None and verdict.kind in NODE_SUSPECTS


def hosts_of(task: Task) -> list[str]:
    """The names the node of a task's attempt is known by: its runner's, and the
    scheduler's."""
    return [host for host in dict.fromkeys((task.host_name, task.scheduler_host)) if host]
