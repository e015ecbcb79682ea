"""What a Slurm job state means: records into job statuses, causes and notes."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_slurm.states import (
    Record,
    describe,
    parse_jobcomp,
    parse_sacct,
    parse_squeue,
    pending_note,
)

from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.map.liveness import judge_status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from gridmap_core.wire.exits import (
    EXIT_JOB_DIED,
    EXIT_LOST,
    EXIT_SETUP,
    EXIT_STOPPED,
    EXIT_UNREACHABLE,
)
from tests.backends.slurm.fakes import jobcomp_line

pytestmark = pytest.mark.timeout(30)


def record(state: str, reason: str = "None", exit_code: int | None = 0,
           signal: int | None = 0, job_id: str = "878_1") -> Record:
    return Record(job_id, state, reason, exit_code, signal)


@pytest.mark.parametrize("reason", ["Priority", "Resources", "None", "", "BeginTime"])
def test_an_ordinary_wait_has_no_note(reason: str) -> None:
    assert describe(record("PENDING", reason), Resources()) == JobStatus(Status.QUEUED)


@pytest.mark.parametrize("reason", ["JobHeldUser", "JobHeldAdmin"])
def test_a_held_job_is_queued_with_a_note(reason: str) -> None:
    status = describe(record("PENDING", reason), Resources())
    assert status.status is Status.QUEUED and status.resubmit
    assert status.note == (f"job 878_1 is held ({reason}); release it with scontrol release "
                           "878_1")


def test_any_other_wait_is_explained() -> None:
    status = describe(record("PENDING", "PartitionConfig"), Resources())
    assert status.status is Status.QUEUED
    assert status.note == ("Slurm holds job 878_1 back: PartitionConfig (see scontrol show "
                           "job 878_1)")
    assert pending_note(record("PENDING", "QOSMaxJobsPerUserLimit")).startswith(
        "Slurm holds job 878_1 back: QOSMaxJobsPerUserLimit")


@pytest.mark.parametrize(("reason", "words"), [
    ("BadConstraints", "its constraints cannot be satisfied by any node"),
    ("DependencyNeverSatisfied", "a job it depends on failed"),
])
def test_a_wait_that_never_ends_is_an_error(reason: str, words: str) -> None:
    status = describe(record("PENDING", reason), Resources())
    assert status.status is Status.ERROR
    assert status.resubmit is False
    assert status.cause == f"Slurm will never start job 878_1: {words} ({reason})"
    assert status.kind is DeathKind.SCHEDULER_ERROR


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETING", "CONFIGURING"])
def test_running_and_starting_states(state: str) -> None:
    expected = Status.QUEUED if state == "CONFIGURING" else Status.RUNNING
    assert describe(record(state), Resources()).status is expected


@pytest.mark.parametrize("state", ["SUSPENDED", "STOPPED"])
def test_suspended_and_stopped_jobs_are_suspended(state: str) -> None:
    # scontrol suspend, or SIGSTOP through Slurm: the job goes on when resumed.
    assert describe(record(state), Resources()).status is Status.SUSPENDED


def test_out_of_memory_names_the_limit() -> None:
    status = describe(record("OUT_OF_MEMORY", "OutOfMemory", 0, 125),
                      Resources.parse(h_vmem="1G"))
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.exit_status is None
    assert status.cause == ("out of memory: Slurm killed it over its memory limit of 1024 MB "
                            "(--mem-per-cpu=1024)")


def test_out_of_memory_of_several_cpus() -> None:
    status = describe(record("OUT_OF_MEMORY"),
                      Resources.parse(mem_free="100M", h_vmem="300M", num_slots=2))
    assert status.cause.startswith("out of memory")
    assert "limit of 600 MB (--mem-per-cpu=300 x 2 CPUs)" in status.cause


def test_out_of_memory_without_a_request() -> None:
    status = describe(record("OUT_OF_MEMORY"), Resources())
    assert status == JobStatus(Status.ENDED, "out of memory: Slurm killed it over its memory "
                               "limit", None, resubmit=False, kind=DeathKind.OUT_OF_MEMORY)


def test_timeout_is_not_resubmitted() -> None:
    status = describe(record("TIMEOUT", "TimeLimit", 0, 15), Resources.parse(h_rt=90))
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.cause == "runtime limit exceeded: Slurm ended it at its time limit (h_rt=90 s)"
    assert "h_rt" not in describe(record("TIMEOUT"), Resources()).cause


def test_cancelled_is_not_resubmitted() -> None:
    # scancel of a running job: squeue shows the signal, which must not count.
    for signal in (0, 15):
        status = describe(record("CANCELLED", exit_code=0, signal=signal), Resources())
        assert status == JobStatus(Status.ENDED, "cancelled in Slurm (scancel)", None,
                                   resubmit=False, kind=DeathKind.CANCELLED)


@pytest.mark.parametrize(("state", "words", "kind"), [
    ("NODE_FAIL", "its node failed (NODE_FAIL)", DeathKind.NODE_FAILED),
    ("BOOT_FAIL", "its node failed to boot (BOOT_FAIL)", DeathKind.NODE_FAILED),
    ("PREEMPTED", "preempted by Slurm for another job", DeathKind.PREEMPTED),
])
def test_ends_that_were_not_the_jobs_fault_are_resubmitted(state: str, words: str,
                                                           kind: DeathKind) -> None:
    status = describe(record(state, signal=9), Resources())
    assert status == JobStatus(Status.ENDED, words, None, resubmit=True, kind=kind)


def test_a_failed_exit_reads_the_err_log(tmp_path: Path) -> None:
    err_log = tmp_path / "batch.0-2.1.0.err"
    err_log.write_text("starting\nERROR cannot reach the monitor at tcp://head:5555\n\n")
    status = describe(record("FAILED", "NonZeroExitCode", 3), Resources(), str(err_log))
    assert status.status is Status.ENDED and status.exit_status == 3 and status.resubmit
    assert status.cause == ("the runner could not reach the monitor (exit status 3); its log "
                            "ends: ERROR cannot reach the monitor at tcp://head:5555")


def test_a_failed_exit_without_a_log() -> None:
    status = describe(record("FAILED", "NonZeroExitCode", 1), Resources(),
                      "/nonexistent/job.err")
    assert status == JobStatus(Status.ENDED, "the runner ended without a result (exit status 1)",
                               1, kind=DeathKind.EXITED)


def test_a_job_killed_by_a_signal() -> None:
    killed = parse_sacct("30|FAILED|0:9|JobLaunchFailure")["30"]
    assert describe(killed, Resources()) == JobStatus(Status.ENDED, "killed by SIGKILL", None,
                                                      kind=DeathKind.KILLED)
    from_squeue = parse_squeue("878_4|FAILED|JobLaunchFailure|9|")["878_4"]
    assert describe(from_squeue, Resources()).cause == "killed by SIGKILL"
    assert describe(from_squeue, Resources()).kind is DeathKind.KILLED
    from_log = parse_jobcomp([jobcomp_line(52, "FAILED", "0:9")])["52"]
    assert describe(from_log, Resources()).cause == "killed by SIGKILL"
    assert describe(from_log, Resources()).kind is DeathKind.KILLED


def test_completed_with_exit_status_0() -> None:
    status = describe(record("COMPLETED", exit_code=0), Resources())
    assert status == JobStatus(Status.ENDED, "the runner ended without a result (exit status 0)",
                               0, kind=DeathKind.EXITED)


def test_an_unusual_end_state_is_named() -> None:
    status = describe(record("SOMETHING_NEW", exit_code=None, signal=None), Resources())
    assert status == JobStatus(Status.ENDED, "ended in Slurm state SOMETHING_NEW", None,
                               kind=DeathKind.OTHER)


@pytest.mark.parametrize(("state", "kind"), [
    ("OUT_OF_MEMORY", DeathKind.OUT_OF_MEMORY),
    ("TIMEOUT", DeathKind.TIME_LIMIT),
    ("DEADLINE", DeathKind.TIME_LIMIT),
    ("CANCELLED", DeathKind.CANCELLED),
    ("NODE_FAIL", DeathKind.NODE_FAILED),
    ("BOOT_FAIL", DeathKind.NODE_FAILED),
    ("PREEMPTED", DeathKind.PREEMPTED),
    ("REVOKED", DeathKind.CANCELLED),
])
def test_each_end_state_is_its_kind_of_death(state: str, kind: DeathKind) -> None:
    # Also with the signal squeue shows for a job Slurm killed: the state decides.
    for signal in (0, 9):
        assert describe(record(state, signal=signal), Resources()).kind is kind


@pytest.mark.parametrize(("code", "kind"), [
    (EXIT_SETUP, DeathKind.RUNNER_FAILED),
    (EXIT_UNREACHABLE, DeathKind.UNREACHABLE),
    (EXIT_STOPPED, DeathKind.CANCELLED),
    (EXIT_LOST, DeathKind.MONITOR_LOST),
    (EXIT_JOB_DIED, DeathKind.EXITED),
    (1, DeathKind.EXITED),
    (0, DeathKind.EXITED),
])
def test_an_exit_is_the_kind_of_death_the_runners_exit_status_says(code: int,
                                                                   kind: DeathKind) -> None:
    for state in ("FAILED", "COMPLETED"):
        status = describe(record(state, "NonZeroExitCode", code), Resources())
        assert status.kind is kind
        # The kind the monitor would read from the exit status alone: the same.
        verdict = judge_status(status._replace(kind=None), "878_1")
        assert verdict is not None and verdict.kind is kind


def test_a_failed_job_without_an_exit_code_exited() -> None:
    status = describe(record("FAILED", exit_code=None, signal=None), Resources())
    assert status.kind is DeathKind.EXITED
