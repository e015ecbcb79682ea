"""A job whose node failed: the monitor asks the scheduler which nodes failed (its
optional ``down_hosts``) only when a job dies without a clear cause, gives such a job
the kind NODE_FAILED and a cause naming the node in the scheduler's words, and
resubmits it avoiding the node. Driven here through JobWatch with a fake scheduler."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from gridmap_core.backend import Batch, DeathKind, Failure, JobSpec
from gridmap_core.backend.scheduler import JobStatus, Launch, Status, hosts_to_avoid, short_host
from gridmap_core.map.job_watch import JobWatch
from gridmap_core.map.liveness import Limits, Verdict, failed_node, judge_node
from gridmap_core.map.tasks import RUNNING, Task, TaskTable
from gridmap_core.wire.protocol import ReplayGuard

pytestmark = pytest.mark.timeout(30)

LIMITS = Limits(max_silence=20, idle_threshold=1.0, max_idle_time=0)
DOWN = {"mn-slurm2": "Slurm says mn-slurm2 is DOWN+NOT_RESPONDING: Not responding"}


class Sink:
    """What the watch tells a batch."""

    def __init__(self) -> None:
        self.resubmissions: list[tuple[int, str, DeathKind | None]] = []
        self.failures: list[tuple[int, Failure]] = []
        self.notes: list[tuple[int, str]] = []

    def claim(self, start: int, stop: int) -> Sequence[int]:
        return range(start, stop)

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        pass

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        pass

    def failed(self, index: int, failure: Failure) -> None:
        self.failures.append((index, failure))

    def heartbeat(self, index: int, heartbeat: Mapping[str, Any]) -> None:
        pass

    def resubmitted(self, index: int, cause_of_death: str,
                    kind: DeathKind | None = None) -> None:
        self.resubmissions.append((index, cause_of_death, kind))

    def job_name(self, index: int) -> str | None:
        return f"job{index}"

    def waiting(self, index: int, note: str) -> None:
        self.notes.append((index, note))


class Scheduler:
    """Launches jobs 1, 2, ...; answers polls from ``statuses``; ``down`` is what
    down_hosts answers (an exception is raised)."""

    def __init__(self, down: Mapping[str, str] | Exception | None = None) -> None:
        self.down = down
        self.asked = 0
        self.launches: list[Launch] = []
        self.statuses: dict[str, JobStatus] = {}
        self.cancelled: list[str] = []
        self.threads: list[str] = []  # where down_hosts was called

    def launch(self, launch: Launch) -> list[str]:
        self.launches.append(launch)
        return [f"{len(self.launches)}"]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {i: self.statuses[i] for i in ids if i in self.statuses}

    def cancel(self, ids: Sequence[str]) -> None:
        self.cancelled += ids

    def close(self) -> None:
        pass

    def down_hosts(self) -> Mapping[str, str]:
        self.asked += 1
        self.threads.append(threading.current_thread().name)
        if isinstance(self.down, Exception):
            raise self.down
        return self.down or {}


class WithoutDownHosts:
    """A scheduler of before down_hosts: launch, poll, cancel, close only."""

    def __init__(self) -> None:
        self.inner = Scheduler()

    def launch(self, launch: Launch) -> list[str]:
        return self.inner.launch(launch)

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return self.inner.poll(ids)

    def cancel(self, ids: Sequence[str]) -> None:
        self.inner.cancel(ids)

    def close(self) -> None:
        pass


def watch_of(scheduler: Any, count: int = 1) -> tuple[JobWatch, list[Task], Sink]:
    sink = Sink()
    table = TaskTable(ReplayGuard(), reuse_runners=False)
    batch = Batch(JobSpec(function=print), [(n,) for n in range(count)], None, sink)
    tasks = table.add(batch, list(range(count)))

    def launch(spec: JobSpec, ids: Sequence[int], attempt: int) -> Launch:
        return Launch(spec=spec, tasks=ids, attempt=attempt, log_dir="/logs",
                      runner=["runner"])

    watch = JobWatch(table, scheduler, LIMITS, address="tcp://head:1", max_resubmits=3,
                     launch=launch)
    for number, task in enumerate(tasks):
        table.launched([task], [f"old{number}"])
    return watch, tasks, sink


def judge(watch: JobWatch, now: float) -> None:
    """Sweep until the silent jobs are judged: a poll a sweep asks for (with the failed
    nodes) is awaited and applied, as the monitor's loop does."""
    for _ in range(4):
        watch.sweep(now)
        poll = watch.in_flight
        if poll is None:
            return
        assert poll.wait(10)
        watch.collect()


def silent_for(task: Task, seconds: float, now: float, host: str = "") -> None:
    """``task`` runs (its runner on ``host``) and was last heard ``seconds`` ago."""
    task.state = RUNNING
    task.host_name = host
    task.last_seen = now - seconds
    task.running_since = now - seconds - 1


def test_a_silent_job_on_a_failed_node_died_of_its_node() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    now = time.monotonic()
    silent_for(task, 31, now, host="mn-slurm2.cluster.example")  # its FQDN
    watch.polled_at = now  # polled since it went silent: only the nodes are asked
    judge(watch, now)
    [(_, cause, kind)] = sink.resubmissions
    assert kind is DeathKind.NODE_FAILED
    assert cause.startswith("its node mn-slurm2 failed (Slurm says mn-slurm2 is "
                            "DOWN+NOT_RESPONDING: Not responding); no heartbeat for 31 s"), cause
    assert scheduler.asked == 1
    # The resubmission avoids the node, by the scheduler's name for it.
    assert scheduler.launches[-1].avoid == ("mn-slurm2",)
    assert task.host_name == "" and task.attempt == 1


def test_the_scheduler_is_asked_on_the_poll_s_thread() -> None:
    # A slow scheduler must not hold up the monitor's thread, which answers runners.
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    now = time.monotonic()
    silent_for(task, 31, now, host="mn-slurm2")
    watch.sweep(now)
    assert not sink.resubmissions  # judged once the poll's answer is in
    judge(watch, now)
    assert scheduler.threads == ["gridmap-poll"]
    assert sink.resubmissions[0][2] is DeathKind.NODE_FAILED


def test_while_the_scheduler_is_away_silence_is_judged_without_it() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    watch.outage.failed("ask about 1 jobs", "Unable to contact slurm controller")
    now = time.monotonic()
    silent_for(task, 31, now, host="mn-slurm2")
    watch.polled_at = now  # the failed poll counts as asked
    watch.sweep(now)
    assert sink.resubmissions[0][2] is DeathKind.NO_HEARTBEAT and scheduler.asked == 0


def test_a_silent_job_on_a_node_that_answers_died_of_silence() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    now = time.monotonic()
    silent_for(task, 31, now, host="mn-slurm1")
    watch.polled_at = now
    judge(watch, now)
    [(_, cause, kind)] = sink.resubmissions
    assert kind is DeathKind.NO_HEARTBEAT and cause.startswith("no heartbeat"), cause
    assert scheduler.launches[-1].avoid == ()


def test_running_jobs_cost_no_question() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    now = time.monotonic()
    silent_for(task, 5, now, host="mn-slurm2")
    scheduler.statuses["old0"] = JobStatus(Status.RUNNING, host="mn-slurm2")
    watch.poll()
    judge(watch, now)
    assert scheduler.asked == 0 and not sink.resubmissions


def test_a_job_that_never_called_is_known_by_the_scheduler_s_node() -> None:
    # Slurm put it back in the queue when its node died, before its runner called.
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    scheduler.statuses["old0"] = JobStatus(Status.RUNNING, host="mn-slurm2")
    watch.poll()
    scheduler.statuses["old0"] = JobStatus(Status.QUEUED)  # no node while it waits
    watch.poll()
    assert task.scheduler_host == "mn-slurm2"
    now = time.monotonic()
    task.running_since = now - 25
    judge(watch, now)
    [(_, cause, kind)] = sink.resubmissions
    assert kind is DeathKind.NODE_FAILED and "its node mn-slurm2 failed" in cause, cause
    assert "without contacting the monitor" in cause
    assert watch.canceller.close(5.0) == []  # cancels go on a thread of their own
    assert scheduler.cancelled == ["old0"]  # Slurm would start it again later
    assert task.scheduler_host == ""  # the next attempt's node is not known yet


@pytest.mark.parametrize("kind", [DeathKind.KILLED, DeathKind.VANISHED])
def test_a_job_killed_or_vanished_on_a_failed_node_died_of_its_node(kind: DeathKind) -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    task.host_name = "mn-slurm2"
    status = Status.ENDED if kind is DeathKind.KILLED else Status.UNKNOWN
    scheduler.statuses["old0"] = JobStatus(status, "killed by signal 9", kind=kind)
    watch.poll()
    [(_, cause, told)] = sink.resubmissions
    assert told is DeathKind.NODE_FAILED and cause.endswith("; killed by signal 9"), cause


@pytest.mark.parametrize("kind", [DeathKind.OUT_OF_MEMORY, DeathKind.TIME_LIMIT,
                                  DeathKind.CANCELLED])
def test_deaths_of_the_job_s_own_doing_ask_nothing(kind: DeathKind) -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    task.host_name = "mn-slurm2"
    scheduler.statuses["old0"] = JobStatus(Status.ENDED, "its limit", resubmit=False,
                                           kind=kind)
    watch.poll()
    [(_, failure)] = sink.failures
    assert failure.death_kind is kind and scheduler.asked == 0


def test_a_node_failure_the_scheduler_reported_is_avoided_without_asking() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    task.host_name = "mn-slurm3"
    scheduler.statuses["old0"] = JobStatus(Status.ENDED, "its node failed (NODE_FAIL)",
                                           kind=DeathKind.NODE_FAILED, host="mn-slurm3")
    watch.poll()
    assert scheduler.asked == 0 and sink.resubmissions[0][2] is DeathKind.NODE_FAILED
    assert scheduler.launches[-1].avoid == ("mn-slurm3",)


def test_every_later_resubmission_avoids_the_failed_nodes_until_they_are_back() -> None:
    scheduler = Scheduler(DOWN)
    watch, [first, second], sink = watch_of(scheduler, count=2)
    now = time.monotonic()
    silent_for(first, 30, now, host="mn-slurm2")
    judge(watch, now)
    # Another job dies elsewhere, of something else: its resubmission avoids the node.
    second.host_name = "mn-slurm1"
    scheduler.statuses["old1"] = JobStatus(Status.ENDED, "exited", 1, kind=DeathKind.EXITED)
    watch.poll()
    # The node is back: asked again, the scheduler no longer lists it.
    # The node is back: asked again (the second job is killed), the scheduler no longer
    # lists it.
    scheduler.down = {}
    second.host_name = "mn-slurm1"
    scheduler.statuses[second.job_id] = JobStatus(Status.ENDED, "killed by SIGKILL",
                                                  kind=DeathKind.KILLED)
    watch.poll()
    assert scheduler.asked == 3
    assert [launch.avoid for launch in scheduler.launches] == [
        ("mn-slurm2",), ("mn-slurm2",), ()]
    assert [kind for _, _, kind in sink.resubmissions] == [
        DeathKind.NODE_FAILED, DeathKind.EXITED, DeathKind.KILLED]


def test_a_failing_question_leaves_the_cause_as_it_was(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    scheduler = Scheduler(RuntimeError("sinfo: error: Unable to contact slurm controller"))
    watch, [task], sink = watch_of(scheduler)
    now = time.monotonic()
    silent_for(task, 31, now, host="mn-slurm2")
    with caplog.at_level(logging.DEBUG, logger="gridmap_core.map.monitor"):
        judge(watch, now)
    assert sink.resubmissions[0][2] is DeathKind.NO_HEARTBEAT
    assert "Unable to contact slurm controller" in caplog.text


def test_a_scheduler_without_down_hosts_works_as_before() -> None:
    scheduler = WithoutDownHosts()
    watch, [task], sink = watch_of(scheduler)
    now = time.monotonic()
    silent_for(task, 31, now, host="mn-slurm2")
    judge(watch, now)
    assert sink.resubmissions[0][2] is DeathKind.NO_HEARTBEAT
    assert scheduler.inner.launches[-1].avoid == ()


def test_the_failed_node_is_told_once(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(DOWN)
    watch, tasks, _ = watch_of(scheduler, count=3)
    now = time.monotonic()
    for task in tasks:
        silent_for(task, 31, now, host="mn-slurm2")
    with caplog.at_level(logging.WARNING, logger="gridmap_core.map.monitor"):
        judge(watch, now)
    told = [r.getMessage() for r in caplog.records if "the jobs resubmitted from now on "
            "avoid it" in r.getMessage()]
    assert told == [f"node mn-slurm2 failed ({DOWN['mn-slurm2']}): the jobs resubmitted "
                    "from now on avoid it"]
    assert scheduler.asked == 1  # once for the three


# -- the pure parts ----------------------------------------------------------------------

def test_hosts_compare_by_their_short_names() -> None:
    assert short_host("Node1.Cluster.Example") == "node1"
    assert short_host("10.251.1.2") == "10.251.1.2"
    assert failed_node("mn-slurm2.example", DOWN) == ("mn-slurm2", DOWN["mn-slurm2"])
    assert failed_node("mn-slurm20", DOWN) is None
    assert failed_node("", DOWN) is None


def test_a_node_verdict_names_the_node_and_keeps_the_first_cause() -> None:
    verdict = judge_node(Verdict("no heartbeat for 31 s", False, DeathKind.NO_HEARTBEAT),
                         "mn-sge2", "Grid Engine says all.q@mn-sge2 is in state au")
    assert verdict == Verdict("its node mn-sge2 failed (Grid Engine says all.q@mn-sge2 is "
                              "in state au); no heartbeat for 31 s", True,
                              DeathKind.NODE_FAILED)


@pytest.mark.parametrize(("candidates", "avoid", "excluded"), [
    (["n1", "n2", "n3"], ["n2"], ["n2"]),
    (["n1", "n2", "n3"], ["N2.cluster"], ["n2"]),  # any spelling of the host
    (["n1", "n2", "n3"], ["n4"], []),  # not one of the candidates
    (["n2"], ["n2"], []),  # never every node the job may run on
    (["n1", "n2"], ["n1", "n2"], []),
    (["n1", "n2", "n3"], [], []),
])
def test_hosts_to_avoid_never_leave_a_job_no_node(candidates: list[str], avoid: list[str],
                                                  excluded: list[str]) -> None:
    assert hosts_to_avoid(candidates, avoid) == excluded


# -- a failed node's jobs are dead once the scheduler says so ----------------------------

PATIENT = Limits(max_silence=90, idle_threshold=1.0, max_idle_time=0, heartbeat_every=1.0)


def poll_once(watch: JobWatch) -> None:
    """One poll of the monitor's loop (every CHECK_FREQUENCY), awaited and applied."""
    watch.start_poll()
    poll = watch.in_flight
    assert poll is not None and poll.wait(10)
    watch.collect()


def test_the_node_grace_is_a_few_missed_beats_and_at_least_ten_seconds() -> None:
    assert PATIENT.node_grace == 10.0
    assert Limits(90, 1.0, 0, heartbeat_every=5.0).node_grace == 15.0


def test_a_silent_job_on_a_failed_node_is_dead_at_the_poll_after_the_grace() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    watch.limits = PATIENT
    now = time.monotonic()
    silent_for(task, 14, now, host="mn-slurm2.cluster.example")
    poll_once(watch)  # long before MAX_TIME_BETWEEN_HEARTBEATS=90
    [(_, cause, kind)] = sink.resubmissions
    assert kind is DeathKind.NODE_FAILED
    assert cause.startswith(f"its node mn-slurm2 failed ({DOWN['mn-slurm2']}); no heartbeat "
                            "for 1"), cause
    assert "MAX_TIME_BETWEEN_HEARTBEATS" not in cause
    assert scheduler.threads == ["gridmap-poll"]  # never on the monitor's thread
    assert scheduler.launches[-1].avoid == ("mn-slurm2",)
    assert watch.canceller.close(5.0) == [] and scheduler.cancelled == ["old0"]


def test_a_job_that_never_called_on_a_failed_node_is_dead_after_the_grace() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    watch.limits = PATIENT
    task.scheduler_host = "mn-slurm2"
    task.running_since = time.monotonic() - 14
    poll_once(watch)
    [(_, cause, kind)] = sink.resubmissions
    assert kind is DeathKind.NODE_FAILED and "without contacting the monitor" in cause, cause


class BeatingMeanwhile(Scheduler):
    """Its ``beating`` tasks beat while down_hosts is asked."""

    beating: Sequence[Task] = ()

    def down_hosts(self) -> Mapping[str, str]:
        for task in self.beating:
            task.last_seen = time.monotonic()
        return super().down_hosts()


def test_a_job_on_a_failed_node_that_still_beats_is_left_alone() -> None:
    scheduler = BeatingMeanwhile(DOWN)
    watch, [task], sink = watch_of(scheduler)
    watch.limits = PATIENT
    now = time.monotonic()
    silent_for(task, 2, now, host="mn-slurm2")
    poll_once(watch)
    assert scheduler.asked == 0  # no job could be affected: nothing asked
    # Silent past the grace when the poll began, it beats while the scheduler is asked.
    silent_for(task, 14, time.monotonic(), host="mn-slurm2")
    scheduler.beating = [task]
    poll_once(watch)
    assert scheduler.asked == 1 and not sink.resubmissions and task.state == RUNNING


def test_a_silent_job_on_a_healthy_node_waits_for_the_heartbeat_limit() -> None:
    scheduler = Scheduler(DOWN)
    watch, [task], sink = watch_of(scheduler)
    watch.limits = PATIENT
    now = time.monotonic()
    silent_for(task, 14, now, host="mn-slurm1")
    poll_once(watch)
    assert scheduler.asked == 1 and not sink.resubmissions  # asked, and not failed
    silent_for(task, 60, time.monotonic(), host="mn-slurm1")
    poll_once(watch)
    judge(watch, time.monotonic())
    assert not sink.resubmissions
    now = time.monotonic()
    silent_for(task, 91, now, host="mn-slurm1")
    judge(watch, now)
    [(_, cause, kind)] = sink.resubmissions
    assert kind is DeathKind.NO_HEARTBEAT and "MAX_TIME_BETWEEN_HEARTBEATS=90" in cause


def test_a_failing_question_about_quiet_jobs_breaks_nothing() -> None:
    scheduler = Scheduler(RuntimeError("sinfo: error: Unable to contact slurm controller"))
    watch, [task], sink = watch_of(scheduler)
    watch.limits = PATIENT
    silent_for(task, 14, time.monotonic(), host="mn-slurm2")
    poll_once(watch)
    assert scheduler.asked == 1 and not sink.resubmissions and not watch.outage.away
