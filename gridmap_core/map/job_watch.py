"""Watching the monitor's jobs: polls of the scheduler, silence, deaths and resubmission."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import JobStatus, Launch, Scheduler, Status
from gridmap_core.map.cancels import Canceller
from gridmap_core.map.failed_nodes import FailedNodes, hosts_of
from gridmap_core.map.liveness import Limits, Verdict, judge_silence, judge_status
from gridmap_core.map.outage import Outage
from gridmap_core.map.polling import PollInFlight
from gridmap_core.map.tasks import ENDED, QUEUED, RUNNING, Task, TaskTable, failure_of, job_name

__all__ = ["STALL", "UNHEARD_AFTER", "JobWatch"]
# One logger for the whole monitor, whichever module speaks: the name users (and
# tests) configure.
logger = logging.getLogger("gridmap_core.map.monitor")

STALL = 1.0  # seconds of work in one go after which heartbeats queued meanwhile get grace
# How long jobs may run, as the scheduler says, before the user hears that none of
# them has reached the monitor: a runner calls within a second or two of its start,
# and a map whose nodes cannot reach this host would otherwise be silent until
# MAX_TIME_BETWEEN_HEARTBEATS counted its jobs dead, one wave after another.
UNHEARD_AFTER = 10.0
# A poll not answered in this many seconds is told to the user as the scheduler not
# answering (its controller restarting, say), while the monitor goes on serving.
SLOW_POLL = 5.0
# How long a dead job's resubmission is tried again while the scheduler refuses it and
# answers no poll either (no other job of the map is out): its controller may be away.
RELAUNCH_FOR = 600.0


class JobWatch:
    """What the monitor's thread does between messages: it asks the scheduler about
    every live job in one call, finds the jobs gone silent, and resubmits the dead up
    to ``max_resubmits`` times, or reports them failed.

    ``launch`` builds the :class:`Launch` of a resubmission: spec, task ids, attempt.

    A job that dies of silence, a kill or a vanishing is asked about its node: when the
    scheduler (its optional ``down_hosts``) says that node failed, the job died of its
    node (:attr:`DeathKind.NODE_FAILED`), and resubmissions avoid the node from then on
    (:attr:`Launch.avoid`), until the scheduler no longer counts it failed
    (:class:`~gridmap_core.map.failed_nodes.FailedNodes`).
    """

    def __init__(self, table: TaskTable, scheduler: Scheduler, limits: Limits, *,
                 address: str, max_resubmits: int,
                 launch: Callable[[JobSpec, Sequence[int], int], Launch],
                 unheard: Callable[[int, float], None] | None = None) -> None:
        self.table = table
        self.scheduler = scheduler
        self.limits = limits
        self.address = address  # named in the cause of a job that never called
        self.max_resubmits = max_resubmits
        self._launch = launch
        # Silence is counted from here at the earliest: after the loop was busy for a
        # while (a slow scheduler poll), the heartbeats that queued up meanwhile have not
        # been read yet, and their jobs are not silent.
        self.grace_from = 0.0
        self.polled_at = 0.0  # when the last poll whose answer was applied began
        self.in_flight: PollInFlight | None = None  # a poll on its own thread
        # Dead jobs whose resubmission the scheduler refused, to launch once it answers.
        self._to_relaunch: list[tuple[Task, Verdict, float]] = []
        self.next_cancel = 0.0  # superseded jobs are cancelled from then on
        self._notes_told: set[str] = set()
        # Told once per map, with (jobs, seconds), while no runner has called at all.
        self._unheard = unheard
        self._heard_any = False
        # Nodes found failed in this session: resubmissions avoid them.
        self.failed_nodes = FailedNodes(scheduler)
        # Whether the scheduler answers; cancels go through a thread of their own, and
        # are retried while it does not.
        self.outage = Outage()
        self.canceller = Canceller(scheduler, self.outage)

    def grant_grace(self) -> float:
        """The loop was busy for a while: count silence from now on; now."""
        self.grace_from = time.monotonic()
        return self.grace_from

    def died(self, task: Task, verdict: Verdict, *, cancel: bool = True) -> None:
        """Resubmit a dead job, or report it failed when it may not be."""
        if task.state == ENDED:
            return
        if cancel and task.job_id:
            self.canceller.cancel([task.job_id])
        self.table.guard.forget(task.id, task.attempt)
        name = f"{job_name(task)} (job {task.job_id or '?'})"
        if verdict.resubmit and task.resubmits < self.max_resubmits and not self.table.closed:
            task.resubmits += 1
            task.attempt += 1
            task.state = QUEUED
            task.job_id = ""
            task.running_since = None
            # The next attempt may run elsewhere: its node is known when it is told.
            task.host_name = ""
            task.scheduler_host = ""
            task.note = ""
            task.idle_since = None
            task.idle_warned = False
            task.suspended_at = None
            logger.warning("%s died: %s; resubmitting (%d of %d)", name, verdict.cause,
                           task.resubmits, self.max_resubmits)
            task.batch.sink.resubmitted(task.index, verdict.cause, verdict.kind)
            self.table.record.resubmitted(task, verdict.cause, _kind(verdict))
            try:
                self._relaunch(task)
            except Exception as error:
                # Maybe the scheduler is away (its controller restarting): tried again
                # once it answers a poll, and only then counted failed.
                self.outage.failed(f"resubmit {name}", error)
                self._to_relaunch.append((task, verdict, time.monotonic()))
            return
        self.table.end(task)
        self.table.failures += 1
        self.table.record.dead(task, verdict.cause, _kind(verdict))
        logger.warning("%s died: %s", name, verdict.cause)
        task.batch.sink.failed(task.index, failure_of(task, None, None, verdict.cause,
                                                      kind=verdict.kind))

    def _relaunch(self, task: Task) -> None:
        """Launch a dead job's next attempt, avoiding the nodes found failed."""
        launch = self._launch(task.batch.spec, [task.id], task.attempt)
        if self.failed_nodes.hosts:
            launch = dataclasses.replace(launch, avoid=self.failed_nodes.avoid)
        job_id = self.scheduler.launch(launch)[0]
        self.table.launched([task], [job_id])

    def _relaunch_waiting(self, answered: bool) -> None:
        """Launch the attempts the scheduler refused. When it ``answered`` a poll just
        now, one it refuses again was not refused for its absence, and the job fails;
        so it does after RELAUNCH_FOR seconds of refusals."""
        waiting, self._to_relaunch = self._to_relaunch, []
        now = time.monotonic()
        for task, verdict, since in waiting:
            if task.state == ENDED or task.job_id:
                continue
            if self.table.closed:
                break
            try:
                self._relaunch(task)
            except Exception as error:
                if not answered and now - since < RELAUNCH_FOR:
                    self._to_relaunch.append((task, verdict, since))
                    continue
                self.table.end(task)
                self.table.failures += 1
                cause = f"{verdict.cause}; then could not be resubmitted: {error}"
                self.table.record.dead(task, cause, _kind(verdict))
                task.batch.sink.failed(task.index, failure_of(task, None, None, cause,
                                                              kind=verdict.kind))

    def poll(self) -> None:
        """Ask the scheduler about every live job, and apply what it says, now."""
        live = self.table.by_job()
        if not live:
            return
        began = time.monotonic()
        read = self.failed_nodes.reader(live, wanted=False)
        try:
            statuses = self.scheduler.poll(list(live))
            if read is not None:
                read(statuses)
        except Exception as error:
            self._apply(began, live, {}, error)
        else:
            self._apply(began, live, statuses)

    def start_poll(self, nodes: bool = False) -> None:
        """Ask the scheduler about every live job on a thread of its own, unless a poll
        is under way; :meth:`collect` applies the answer. With ``nodes``, and when the
        answer holds deaths a failed node may explain, that thread also asks which nodes
        failed."""
        if self.in_flight is None:
            live = self.table.by_job()
            if live:
                # A job silent past the node grace is dead now if its node failed.
                nodes = nodes or bool(self._quiet(live.values(), time.monotonic()))
                self.in_flight = PollInFlight(self.scheduler, live,
                                              self.failed_nodes.reader(live, nodes))
            elif self._to_relaunch:  # no job to ask about: try the launches themselves
                self._relaunch_waiting(answered=False)

    def collect(self) -> None:
        """Apply the answer of the poll under way, if it came; if it is slow to come,
        say so once."""
        poll = self.in_flight
        if poll is None:
            return
        if not poll.done():
            if not poll.told_slow and poll.waited >= SLOW_POLL:
                poll.told_slow = True
                self.outage.failed(f"ask about {len(poll.live)} jobs",
                                   f"no answer in {poll.waited:.0f} s")
            return
        self.in_flight = None
        self._apply(poll.began, poll.live, poll.statuses, poll.error)

    def finish_poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the poll under way (before the scheduler is
        closed under it); its answer is dropped."""
        if self.in_flight is not None:
            self.in_flight.wait(timeout)
            self.in_flight = None

    def _apply(self, began: float, live: dict[str, Task], statuses: Mapping[str, JobStatus],
               error: Exception | None = None) -> None:
        """Apply a poll begun at ``began`` about ``live``: ``statuses``, or ``error``."""
        # A failed poll counts as asked: silence is judged all the same, and jobs that
        # run keep their runners talking while the scheduler is away.
        self.polled_at = began
        if error is not None:
            self.outage.failed(f"ask about {len(live)} jobs", error)
            return
        self.outage.answered()
        if self._to_relaunch:
            self._relaunch_waiting(answered=True)
        now = time.monotonic()
        deaths: list[tuple[Task, Verdict, bool]] = []
        for job_id, status in statuses.items():
            task = live.get(job_id)
            if task is None or task.job_id != job_id:
                continue
            if status.host:
                task.scheduler_host = status.host
            if status.status is Status.SUSPENDED:
                if task.suspended_at is None:
                    task.suspended_at = now
                    logger.info("%s (job %s) is suspended by the scheduler; it is not "
                                "expected to send heartbeats until it is resumed",
                                job_name(task), job_id)
                continue
            if task.suspended_at is not None:
                self.resume(task, now)
            if status.status is Status.RUNNING and task.running_since is None:
                task.running_since = now
            elif status.status is Status.QUEUED:
                if status.note != task.note and task.state == QUEUED:
                    task.note = status.note  # observers (the status page) show it
                    task.batch.sink.waiting(task.index, status.note)
                if status.note and status.note not in self._notes_told:
                    self._notes_told.add(status.note)
                    logger.warning("jobs are waiting in the queue: %s", status.note)
            verdict = judge_status(status, job_id)
            if verdict is not None:
                deaths.append((task, verdict, status.status is not Status.ENDED))
        verdicts = self.failed_nodes.blame([(task, verdict) for task, verdict, _ in deaths],
                                           began)
        for (task, _, cancel), verdict in zip(deaths, verdicts, strict=True):
            self.died(task, verdict, cancel=cancel)
        # Still silent after the scheduler's answer, on a node it counts failed.
        quiet = self._quiet([task for job_id, task in live.items() if task.job_id == job_id],
                            time.monotonic())
        for task, verdict in self.failed_nodes.quiet_deaths(quiet, began, self.address):
            self.died(task, verdict)

    def resume(self, task: Task, now: float) -> None:
        """A suspended task runs again: its liveness clocks go on from where they
        stopped, so the time it spent suspended counts neither as silence nor as idle."""
        suspended_at, task.suspended_at = task.suspended_at, None
        if suspended_at is None:
            return
        logger.info("%s (job %s) was resumed after %.0f s suspended", job_name(task),
                    task.job_id or "?", now - suspended_at)

        def shifted(moment: float) -> float:
            # Silence or idleness before the suspension still counts; a message that
            # came while it was suspended (it was resumed before a poll said so)
            # starts the count afresh.
            return now - max(0.0, suspended_at - moment)

        task.last_seen = shifted(task.last_seen)
        if task.running_since is not None:
            task.running_since = shifted(task.running_since)
        if task.idle_since is not None:
            task.idle_since = shifted(task.idle_since)

    def _silences(self, tasks: Iterable[Task]) -> list[tuple[Task, float, bool]]:
        """The tasks that run, each with when its silence began, and whether it fetched
        its task (its runner called)."""
        found = []
        for task in tasks:
            if task.suspended_at is not None or task.state == ENDED:
                continue  # a suspended job's clocks stand still
            if task.state == RUNNING:
                found.append((task, max(task.last_seen, self.grace_from), True))
            elif task.running_since is not None:
                found.append((task, max(task.running_since, self.grace_from), False))
        return found

    def _silent(self, tasks: Sequence[Task], now: float) -> list[tuple[Task, Verdict, float]]:
        """The tasks silent for too long: each with its verdict, and when it went over."""
        found = []
        for task, since, fetched in self._silences(tasks):
            verdict = judge_silence(now - since, fetched, self.address, self.limits)
            if verdict is not None:
                found.append((task, verdict, since + self.limits.max_silence))
        return found

    def _quiet(self, tasks: Iterable[Task], now: float) -> list[tuple[Task, float, bool]]:
        """The tasks with a known node silent past the node grace: each with its
        seconds of silence, and whether it fetched its task."""
        grace = self.limits.node_grace
        return [(task, now - since, fetched) for task, since, fetched in self._silences(tasks)
                if now - since > grace and hosts_of(task)]

    def _tell_unheard(self, tasks: Sequence[Task], now: float) -> None:
        """While no runner of the map has called, say so once, early, when jobs the
        scheduler runs have stayed silent for UNHEARD_AFTER seconds."""
        if self._heard_any or self._unheard is None:
            return
        if any(task.state == RUNNING for task in tasks):
            self._heard_any = True
            return
        waiting = [now - task.running_since for task in tasks
                   if task.state == QUEUED and task.running_since is not None
                   and task.suspended_at is None]
        if waiting and max(waiting) >= UNHEARD_AFTER:
            self._heard_any = True  # once
            self._unheard(len(waiting), max(waiting))

    def sweep(self, now: float) -> None:
        """Find jobs gone silent."""
        tasks = self.table.snapshot()
        self._tell_unheard(tasks, now)
        silent = self._silent(tasks, now)
        if not silent:
            return
        over = max(over for _, _, over in silent)
        # While the scheduler is away, silence is judged without it (as after a failed
        # poll), its view of the nodes too.
        nodes = not self.outage.away and self.failed_nodes.awaits(
            [task for task, _, _ in silent], over)
        if self.polled_at < over or nodes:
            # Ask the scheduler before counting a silent job dead: it may have been
            # suspended (or have ended, with a better cause) since the last poll, or
            # its node may have failed. They are judged at a sweep after its answer, if
            # silent still.
            self.start_poll(nodes)
            return
        verdicts = self.failed_nodes.blame([(task, verdict) for task, verdict, _ in silent],
                                           over)
        for (task, _, _), verdict in zip(silent, verdicts, strict=True):
            self.died(task, verdict)

    def cancel_superseded(self) -> None:
        """Have the scheduler jobs whose tasks runners took cancelled, in one call."""
        ids = self.table.pop_superseded()
        self.next_cancel = time.monotonic() + 0.5  # so a burst of takes is one call
        self.canceller.cancel(ids)


def _kind(verdict: Verdict) -> str:
    """A death's kind as the journal names it."""
    return str(verdict.kind.value)
