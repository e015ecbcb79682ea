"""Polling with fake Slurm commands: squeue, then sacct or the job completion log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import SlurmError

from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.model.death import DeathKind
from tests.backends.slurm.fakes import CONTROLLER_DOWN, Clock, Harness, jobcomp_line, squeue_call

pytestmark = pytest.mark.timeout(30)


def test_poll_is_one_squeue_for_every_array(harness: Harness, tmp_path: Path) -> None:
    first = harness.launch([0, 1, 2, 3])
    second = harness.launch([4, 5])
    (tmp_path / "batch.0-3.3.0.err").write_text("ERROR cannot import module 'analysis'\n")
    harness.slurm.squeue_lines = [
        "878_1|RUNNING|None|0|", "878_2|PENDING|Priority|0|", "878_3|FAILED|NonZeroExitCode|512|",
        "878_4|PENDING|JobHeldAdmin|0|", "879_1|COMPLETED|None|0|",
        "879_2|FAILED|JobLaunchFailure|9|", "999_1|RUNNING|None|0|",
    ]
    answer = harness.poll(first + second)
    assert harness.slurm.of("squeue") == [squeue_call("878,879")]
    assert set(answer) == {*first, *second}
    assert answer["878_1"] == JobStatus(Status.RUNNING)
    assert answer["878_2"] == JobStatus(Status.QUEUED)
    assert answer["878_3"] == JobStatus(
        Status.ENDED, "the runner could not start (exit status 2); its log ends: ERROR cannot "
        "import module 'analysis'", 2, kind=DeathKind.RUNNER_FAILED)
    assert answer["878_4"].status is Status.QUEUED
    assert "scontrol release 878_4" in answer["878_4"].note
    assert answer["879_1"] == JobStatus(Status.ENDED, "the runner ended without a result "
                                        "(exit status 0)", 0, kind=DeathKind.EXITED)
    assert answer["879_2"] == JobStatus(Status.ENDED, "killed by SIGKILL", None,
                                        kind=DeathKind.KILLED)
    # Ended jobs are no longer asked about; 879 has none left.
    harness.poll(first + second)
    assert harness.slurm.of("squeue")[-1] == squeue_call("878")


def test_poll_names_arrays_in_numeric_order(harness: Harness) -> None:
    harness.slurm.next_array = 99
    ids = harness.launch([0]) + harness.launch([1]) + harness.launch([2])
    harness.poll(ids)
    assert harness.slurm.of("squeue") == [squeue_call("99,100,101")]


def test_poll_of_unknown_ids_asks_nothing(harness: Harness) -> None:
    assert harness.poll(["5_1", "6"]) == {}
    assert harness.slurm.calls == []


def test_a_job_squeue_forgot_is_looked_up_in_accounting(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(accounting=True))
    ids = harness.launch([0, 1, 2])
    harness.slurm.sacct_lines = ["878_1|COMPLETED|0:0|None", "878_1.batch|COMPLETED|0:0|",
                                 "878_2|OUT_OF_MEMORY|0:125|OutOfMemory"]
    assert harness.poll(ids) == {}  # just gone: slurmctld may still be writing its end
    clock.now += 1.9
    assert harness.poll(ids) == {}
    assert harness.slurm.of("sacct") == []
    clock.now += 0.1
    answer = harness.poll(ids)
    assert harness.slurm.of("sacct") == [["sacct", "-X", "-n", "-P", "-j", "878_1,878_2,878_3",
                                          "-o", "JobID,State,ExitCode,Reason,NodeList"]]
    assert answer["878_1"] == JobStatus(Status.ENDED, "the runner ended without a result "
                                        "(exit status 0)", 0, kind=DeathKind.EXITED)
    assert answer["878_2"].cause.startswith("out of memory")
    assert answer["878_2"].kind is DeathKind.OUT_OF_MEMORY
    assert "878_3" not in answer
    assert len(harness.slurm.of("squeue")) == 3
    # Only the job nobody knows is asked about again, until it is given up.
    clock.now += 27.9
    assert harness.poll(ids) == {}
    assert harness.slurm.of("sacct")[-1][5] == "878_3"
    clock.now += 0.1
    answer = harness.poll(ids)
    assert set(answer) == {"878_3"}
    assert answer["878_3"] == JobStatus(Status.UNKNOWN, "Slurm no longer knows job 878_3 and "
                                        "has no record of its end", kind=DeathKind.VANISHED)
    calls = len(harness.slurm.calls)
    assert harness.poll(ids) == {}
    assert len(harness.slurm.calls) == calls


def test_a_job_listed_again_starts_its_absence_over(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(accounting=True))
    [job_id] = harness.launch([0])
    harness.poll([job_id])
    clock.now += 20
    harness.slurm.squeue_lines = ["878_1|RUNNING|None|0|"]
    assert harness.poll([job_id]) == {job_id: JobStatus(Status.RUNNING)}
    harness.slurm.squeue_lines = []
    clock.now += 1
    assert harness.poll([job_id]) == {}
    clock.now += 29.9
    assert harness.poll([job_id]) == {}
    clock.now += 0.1
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN


def test_without_accounting_the_completion_log_is_read(
        tmp_path: Path, make_harness: Callable[..., Harness], clock: Clock) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text("\n".join([
        jobcomp_line(880, "COMPLETED", "0:0", array=(878, 1)),
        jobcomp_line(881, "FAILED", "0:9", name="a b=c JobId=5", array=(878, 2)),
        jobcomp_line(882, "NODE_FAIL", "0:0", array=(878, 3)),
        jobcomp_line(883, "COMPLETED", "0:0", array=(999, 1)),
        jobcomp_line(882, "TIMEOUT", "0:0", array=(878, 3)),
    ]) + "\n")
    harness = make_harness(cluster=Cluster(jobcomp_log=str(log)))
    ids = harness.launch([0, 1, 2, 3], h_rt=60)
    harness.poll(ids)
    clock.now += 2
    answer = harness.poll(ids)
    assert harness.slurm.of("sacct") == []
    assert set(answer) == {"878_1", "878_2", "878_3"}
    assert answer["878_1"].exit_status == 0
    # The node it ran on, from the log's NodeList.
    assert answer["878_2"] == JobStatus(Status.ENDED, "killed by SIGKILL", None,
                                        kind=DeathKind.KILLED, host="vm")
    assert answer["878_3"].cause.startswith("runtime limit exceeded")  # the later line
    assert answer["878_3"].resubmit is False
    assert answer["878_3"].kind is DeathKind.TIME_LIMIT


def test_a_failed_sacct_falls_back_to_the_completion_log(
        tmp_path: Path, make_harness: Callable[..., Harness], clock: Clock) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text(jobcomp_line(880, "FAILED", "3:0", array=(878, 1)) + "\n")
    harness = make_harness(cluster=Cluster(accounting=True, jobcomp_log=str(log)))
    [job_id] = harness.launch([0])
    harness.slurm.replies["sacct"] = [(1, "", "sacct: error: Problem talking to the database: "
                                              "Connection refused")]
    harness.poll([job_id])
    clock.now += 2
    status = harness.poll([job_id])[job_id]
    assert len(harness.slurm.of("sacct")) == 1
    assert status.status is Status.ENDED and status.exit_status == 3


def test_an_unreadable_completion_log_knows_nothing(
        tmp_path: Path, make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(jobcomp_log=str(tmp_path / "gone.log")))
    [job_id] = harness.launch([0])
    harness.poll([job_id])
    clock.now += 2
    assert harness.poll([job_id]) == {}
    clock.now += 28
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN


def test_nobody_to_ask_means_unknown_after_30_seconds(harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0])
    assert harness.poll([job_id]) == {}
    clock.now += 29.9
    assert harness.poll([job_id]) == {}
    clock.now += 0.1
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN
    assert harness.slurm.of("sacct") == []


def test_invalid_job_id_means_slurm_knows_none_of_them(harness: Harness, clock: Clock) -> None:
    ids = harness.launch([0, 1])
    harness.slurm.replies["squeue"] = [
        (1, "", "slurm_load_jobs error: Invalid job id specified")] * 3
    assert harness.poll(ids) == {}
    clock.now += 30
    answer = harness.poll(ids)
    assert {status.status for status in answer.values()} == {Status.UNKNOWN}
    assert set(answer) == set(ids)


def test_a_transient_squeue_failure_makes_the_next_polls_wait(harness: Harness,
                                                              clock: Clock) -> None:
    ids = harness.launch([0])
    harness.slurm.replies["squeue"] = [(1, "", CONTROLLER_DOWN)] * 2
    harness.slurm.squeue_lines = ["878_1|RUNNING|None|0|"]
    assert harness.poll(ids) == {}
    assert len(harness.slurm.of("squeue")) == 1
    clock.now += 0.9
    assert harness.poll(ids) == {}
    assert len(harness.slurm.of("squeue")) == 1  # not asked during the pause
    clock.now += 0.1
    assert harness.poll(ids) == {}  # fails again: a longer pause
    assert len(harness.slurm.of("squeue")) == 2
    clock.now += 1.9
    assert harness.poll(ids) == {}
    assert len(harness.slurm.of("squeue")) == 2
    clock.now += 0.1
    assert harness.poll(ids) == {"878_1": JobStatus(Status.RUNNING)}
    assert harness.slurm.pauses == []  # a poll never sleeps
    # Answering again ends the pauses: the next failure waits 1 s again.
    harness.slurm.replies["squeue"] = [(1, "", CONTROLLER_DOWN)]
    harness.poll(ids)
    clock.now += 1
    assert harness.poll(ids) == {"878_1": JobStatus(Status.RUNNING)}


def test_an_absence_is_not_counted_while_squeue_fails(harness: Harness, clock: Clock) -> None:
    ids = harness.launch([0])
    harness.slurm.replies["squeue"] = [(1, "", CONTROLLER_DOWN)]
    assert harness.poll(ids) == {}
    clock.now += 31
    assert harness.poll(ids) == {}  # the first answer: only now noted as absent


def test_another_squeue_failure_is_an_error(harness: Harness) -> None:
    ids = harness.launch([0])
    harness.slurm.replies["squeue"] = [(1, "", "squeue: error: Invalid user: nobody")]
    with pytest.raises(SlurmError, match=r"squeue failed \(exit status 1\): .*Invalid user"):
        harness.poll(ids)
