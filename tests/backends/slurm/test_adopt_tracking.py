"""Jobs another process submitted, adopted by the Slurm scheduler, over fake Slurm
tools: read from accounting at once when squeue forgot them, unknown when nothing
knows them, their stderr path taken from squeue, cancelled with scancel."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_slurm.cluster import Cluster

from gridmap_core.backend.scheduler import Status
from gridmap_core.model.death import DeathKind
from tests.backends.slurm.fakes import Clock, Harness

pytestmark = pytest.mark.timeout(30)


def test_an_adopted_job_squeue_forgot_is_read_from_accounting_at_the_first_poll(
        tmp_path: Path, clock: Clock) -> None:
    harness = Harness(tmp_path, cluster=Cluster(accounting=True))
    harness.scheduler.adopt(["900_1"])
    harness.slurm.sacct_lines = ["900_1|FAILED|1:0|None|vm"]
    report = harness.poll(["900_1"])  # no time passed: it ended long before
    assert report["900_1"].status is Status.ENDED and report["900_1"].exit_status == 1
    assert report["900_1"].host == "vm"
    assert "900_1" not in harness.scheduler.jobs


def test_an_adopted_job_that_nothing_knows_is_unknown_after_a_while(
        tmp_path: Path, clock: Clock) -> None:
    harness = Harness(tmp_path, cluster=Cluster(accounting=True))
    harness.scheduler.adopt(["900_1"])
    assert harness.poll(["900_1"]) == {}
    clock.now += 31
    status = harness.poll(["900_1"])["900_1"]
    assert status.status is Status.UNKNOWN and status.kind is DeathKind.VANISHED


def test_an_adopted_job_s_stderr_path_comes_from_squeue(tmp_path: Path) -> None:
    (tmp_path / "batch.0-1.2.0.err").write_text("the job's last words\n")
    harness = Harness(tmp_path)
    pattern = f"{tmp_path}/batch.0-1.%a.0.err"
    harness.slurm.replies["squeue"] = [(0, f"900_2|900|2|{pattern}|\n", "")]
    harness.scheduler.adopt(["900_2", "900_2"])
    [asked] = harness.slurm.of("squeue")
    assert asked[asked.index("-j") + 1] == "900"
    harness.slurm.squeue_lines = ["900_2|FAILED|NonZeroExitCode|256|vm|"]
    status = harness.poll(["900_2"])["900_2"]
    assert status.status is Status.ENDED and status.exit_status == 1, status
    assert "the job's last words" in status.cause


def test_ids_that_are_not_slurm_s_or_watched_already_are_left_alone(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    [own] = harness.launch([0])
    watched = harness.scheduler.jobs.job(own)
    harness.scheduler.adopt([own, "local.ab12.1", "12.3"])
    assert harness.scheduler.jobs.job(own) is watched
    assert "local.ab12.1" not in harness.scheduler.jobs and "12.3" not in harness.scheduler.jobs


def test_adopted_jobs_are_cancelled_with_scancel(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.scheduler.adopt(["900_1", "900_2", "901"])
    harness.scheduler.cancel(["900_1", "900_2", "901"])
    assert harness.slurm.of("scancel") == [["scancel", "900", "901"]]
    assert harness.scheduler.cancel_command()[-1].endswith("scancel")
