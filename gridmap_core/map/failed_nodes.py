"""The nodes that failed during a session: which deaths they explain, and which hosts
resubmissions avoid.

A job that falls silent, is killed or vanishes may have died of its node. Only the
scheduler can say (its optional ``down_hosts``: Slurm's DOWN or NOT_RESPONDING nodes,
Grid Engine's queue instances in state ``u``), so it is asked then, once for all the
deaths found together, and never while jobs merely run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gridmap_core.backend import DeathKind
from gridmap_core.backend.scheduler import Scheduler, same_host
from gridmap_core.map.liveness import NODE_SUSPECTS, Verdict, failed_node, judge_node
from gridmap_core.map.tasks import Task

__all__ = ["FailedNodes"]
logger = logging.getLogger("gridmap_core.map.monitor")


class FailedNodes:
    """The nodes of ``scheduler`` found failed in one session, each by the scheduler's
    name for it (or the runner's) with the scheduler's words. A node stays avoided until
    the scheduler, asked again, no longer counts it failed."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.hosts: dict[str, str] = {}

    @property
    def avoid(self) -> tuple[str, ...]:
        """The hosts a resubmission should not run on (:attr:`Launch.avoid`)."""
        return tuple(self.hosts)

    def blame(self, deaths: Sequence[tuple[Task, Verdict]]) -> list[Verdict]:
        """The verdicts of ``deaths``, those the scheduler explains by a failed node
        made deaths of that node. The scheduler is asked (one ``down_hosts`` call) only
        when a death of a kind a node's failure explains has a known node."""
        verdicts = [verdict for _, verdict in deaths]
        suspects = []
        for number, (task, verdict) in enumerate(deaths):
            hosts = hosts_of(task)
            if verdict.kind is DeathKind.NODE_FAILED and hosts:
                self.add(hosts[0], verdict.cause)  # the scheduler said so already
            elif verdict.kind in NODE_SUSPECTS and hosts:
                suspects.append(number)
        if not suspects:
            return verdicts
        down = self.down()
        if not down:
            return verdicts
        for number in suspects:
            task, verdict = deaths[number]
            for host in hosts_of(task):
                found = failed_node(host, down)
                if found is not None:
                    self.add(*found)
                    verdicts[number] = judge_node(verdict, *found)
                    break
        return verdicts

    def down(self) -> Mapping[str, str]:
        """The scheduler's failed nodes, with its words for each; none when it cannot
        say. Nodes it no longer counts failed are no longer avoided."""
        ask = getattr(self.scheduler, "down_hosts", None)
        if ask is None:
            return {}
        try:
            down = {str(host): str(words) for host, words in ask().items()}
        except Exception as error:  # a courtesy: the deaths keep their own causes
            logger.debug("could not ask the scheduler which nodes failed: %s", error)
            return {}
        for host in [h for h in self.hosts if not any(same_host(h, d) for d in down)]:
            logger.info("node %s no longer counts as failed; resubmitted jobs may run "
                        "there again", host)
            del self.hosts[host]
        return down

    def add(self, host: str, words: str) -> None:
        """``host``'s node failed: say so once, and avoid it from now on."""
        if not any(same_host(host, known) for known in self.hosts):
            logger.warning("node %s failed (%s): the jobs resubmitted from now on avoid it",
                           host, words)
        self.hosts[host] = words


def hosts_of(task: Task) -> list[str]:
    """The names the node of a task's attempt is known by: its runner's, and the
    scheduler's."""
    return [host for host in dict.fromkeys((task.host_name, task.scheduler_host)) if host]
