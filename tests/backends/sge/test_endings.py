"""DRMAA endings into causes of death (gridmap_sge.endings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_sge.endings import describe_ending

from gridmap_core.backend.drmaa import Ending
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

pytestmark = pytest.mark.timeout(30)

MB = 2**20


def test_aborted_without_usage_was_deleted_before_it_started() -> None:
    status = describe_ending(Ending("5", aborted=True), Resources())
    assert status.status is Status.ENDED
    assert status.cause.startswith("deleted before it started (qdel)")
    assert status.resubmit is False and status.exit_status is None
    assert status.kind is DeathKind.CANCELLED


@pytest.mark.parametrize("failed", [(100, "assumedly after job"), (0, ""), None])
def test_aborted_with_usage_was_deleted_while_running(failed: tuple[int, str] | None) -> None:
    ending = Ending("5", aborted=True, usage={"ru_wallclock": "12.0000", "maxvmem": "0.0000"})
    status = describe_ending(ending, Resources(), None, failed)
    assert status == JobStatus(Status.ENDED, "deleted while running (qdel)", None,
                               resubmit=False, kind=DeathKind.CANCELLED)


def test_aborted_with_a_failure_code_could_not_start() -> None:
    status = describe_ending(Ending("5", aborted=True), Resources(), None,
                             (27, "searching requested shell"))
    assert status.status is Status.ENDED and status.exit_status is None
    assert status.cause == ("Grid Engine could not start it (failed 27: searching "
                            "requested shell)")
    assert status.kind is DeathKind.SCHEDULER_ERROR


def test_killed_at_its_runtime_limit() -> None:
    resources = Resources.parse(h_rt=60)
    ending = Ending("5", signal="SIGKILL", usage={"ru_wallclock": "59.0000"})
    status = describe_ending(ending, resources)
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.cause == "runtime limit exceeded: killed after 59 s (h_rt=60 s)"
    assert status.kind is DeathKind.TIME_LIMIT


def test_killed_well_before_its_runtime_limit_is_not_a_runtime_limit() -> None:
    resources = Resources.parse(h_rt=600)
    ending = Ending("5", signal="SIGKILL", usage={"ru_wallclock": "30.0000"})
    status = describe_ending(ending, resources)
    assert status.cause == "killed by SIGKILL" and status.resubmit is True
    assert status.kind is DeathKind.KILLED


def test_killed_at_its_memory_limit_of_all_slots() -> None:
    resources = Resources.parse(h_vmem="300M", num_slots=2, par_env="smp")
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{590 * MB}.0000",
                                                  "ru_wallclock": "3.0000"})
    status = describe_ending(ending, resources)
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.cause == ("out of memory: it used 590 MB, over its h_vmem=300M per slot, "
                            "600 MB for 2 slots")
    assert status.kind is DeathKind.OUT_OF_MEMORY


def test_memory_of_one_slot_is_not_the_limit_of_two() -> None:
    # h_vmem is per slot: 300M used of 2 x 300M is not an out-of-memory death.
    resources = Resources.parse(h_vmem="300M", num_slots=2, par_env="smp")
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{300 * MB}"})
    status = describe_ending(ending, resources)
    assert status.cause == "killed by SIGKILL" and status.resubmit is True
    assert status.kind is DeathKind.KILLED


def test_a_failure_at_its_memory_limit_is_out_of_memory() -> None:
    resources = Resources.parse(h_vmem="1G")
    ending = Ending("5", exited=True, exit_status=1, usage={"maxvmem": f"{1020 * MB}"})
    status = describe_ending(ending, resources)
    assert status.cause.startswith("out of memory: it used 1020 MB")
    assert status.exit_status == 1 and status.resubmit is False
    assert status.kind is DeathKind.OUT_OF_MEMORY


def test_killed_by_someone_else_can_be_resubmitted() -> None:
    resources = Resources.parse(h_vmem="1G", h_rt=3600)
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{10 * MB}",
                                                  "ru_wallclock": "100"})
    status = describe_ending(ending, resources)
    assert status == JobStatus(Status.ENDED, "killed by SIGKILL", None, kind=DeathKind.KILLED)
    assert status.resubmit is True


def test_exit_status_3_is_the_runner_that_could_not_reach_the_monitor(tmp_path: Path) -> None:
    err_log = tmp_path / "job.0.0.err"
    err_log.write_text("starting\nERROR cannot reach the monitor at tcp://head:5555\n\n")
    status = describe_ending(Ending("5", exited=True, exit_status=3), Resources(),
                             str(err_log))
    assert status.status is Status.ENDED and status.exit_status == 3
    assert status.cause == ("the runner could not reach the monitor (exit status 3); its log "
                            "ends: ERROR cannot reach the monitor at tcp://head:5555")
    assert status.kind is DeathKind.UNREACHABLE


def test_exit_status_1_ended_without_a_result() -> None:
    status = describe_ending(Ending("5", exited=True, exit_status=1), Resources(),
                             "/nonexistent/job.err")
    assert status == JobStatus(Status.ENDED, "the runner ended without a result (exit status 1)",
                               1, kind=DeathKind.EXITED)


def test_a_kill_at_both_limits_is_the_runtime_limit() -> None:
    # Grid Engine kills a job over h_rt and one over h_vmem with the same SIGKILL: a job
    # killed at its h_rt that also used nearly all its memory ran out of time.
    resources = Resources.parse(h_vmem="1G", h_rt=60)
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{1000 * MB}",
                                                  "ru_wallclock": "60.0000"})
    status = describe_ending(ending, resources)
    assert status.kind is DeathKind.TIME_LIMIT
    assert status.cause.startswith("runtime limit exceeded")


def test_a_kill_for_memory_well_before_the_runtime_limit_is_out_of_memory() -> None:
    resources = Resources.parse(h_vmem="1G", h_rt=3600)
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{1000 * MB}",
                                                  "ru_wallclock": "60.0000"})
    status = describe_ending(ending, resources)
    assert status.kind is DeathKind.OUT_OF_MEMORY
    assert status.cause.startswith("out of memory: it used 1000 MB")
    assert status.resubmit is False


def test_an_exit_at_the_runtime_limit_is_not_the_runtime_limit() -> None:
    # Grid Engine ends a job at h_rt with a signal: a runner that exited by itself at
    # that time was not ended by the limit.
    resources = Resources.parse(h_rt=60)
    ending = Ending("5", exited=True, exit_status=1, usage={"ru_wallclock": "60.0000"})
    status = describe_ending(ending, resources)
    assert status.kind is DeathKind.EXITED and status.resubmit is True


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
    status = describe_ending(Ending("5", exited=True, exit_status=code), Resources(),
                             "/nonexistent/job.err")
    assert status.kind is kind
    # The kind the monitor would read from the exit status alone: the same.
    verdict = judge_status(status._replace(kind=None), "5")
    assert verdict is not None and verdict.kind is kind


def test_an_ending_neither_exited_nor_killed_is_another_death() -> None:
    status = describe_ending(Ending("5"), Resources())
    assert status.cause == "the runner ended without a result"
    assert status.kind is DeathKind.OTHER
