"""The sbatch backend's scheduler adopting jobs that another scheduler instance (a
submitter now gone) launched, on the single-node Slurm: polled, cancelled and read
back as jobs of its own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from gridmap_slurm.cluster import read_cluster
from gridmap_slurm.commands import Commands
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm.scheduler import SlurmScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.resources import Resources

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("slurm_cluster")]

WAIT = 90.0


def scheduler() -> SlurmScheduler:
    cluster = read_cluster(Commands())
    return SlurmScheduler(cluster, SlurmOptions(nodes=cluster.nodes,
                                                partitions=cluster.partitions))


def shell_launch(tmp_path: Path, script: str, tasks: Sequence[int]) -> Launch:
    """Runners that run ``script`` in sh, whatever the arguments a runner gets."""
    spec = JobSpec(function=print, resources=Resources.parse(mem_free="100M"),
                   working_dir=str(tmp_path), name="adopted")
    return Launch(spec=spec, tasks=list(tasks), attempt=0, log_dir=str(tmp_path),
                  runner=["/bin/sh", "-c", script, "sh"], name="adopted")


def squeue_states(ids: Sequence[str]) -> dict[str, str]:
    arrays = sorted({job_id.partition("_")[0] for job_id in ids})
    done = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays), "-O",
                           "JobArrayID:|,State:|"], capture_output=True, text=True, timeout=60)
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.partition("|")
        states[job_id.strip()] = state.strip(" |")
    return {job_id: states.get(job_id, "") for job_id in ids}


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def scancel(ids: Sequence[str]) -> None:
    subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)


def test_running_jobs_of_a_gone_submitter_are_polled_and_cancelled(tmp_path: Path) -> None:
    first = scheduler()
    ids = first.launch(shell_launch(tmp_path, "sleep 300", [0, 1]))
    first.close()  # forgets its jobs without cancelling them, as a killed submitter
    try:
        adopting = scheduler()
        adopting.adopt(ids)
        report = adopting.poll(ids)
        assert {report[job_id].status for job_id in ids} <= {Status.QUEUED, Status.RUNNING}, \
            report
        adopting.cancel(ids)
        wait_for("the adopted jobs to be cancelled in Slurm", lambda: all(
            state in ("", "CANCELLED") for state in squeue_states(ids).values()))
        # Their end is read like any cancelled job's: no longer watched, not reported.
        wait_for("the adopting scheduler to see them end",
                 lambda: not adopting.poll(ids) and not any(i in adopting.jobs for i in ids))
        adopting.close()
    finally:
        scancel(ids)


def test_one_element_adopted_is_cancelled_alone(tmp_path: Path) -> None:
    first = scheduler()
    ids = first.launch(shell_launch(tmp_path, "sleep 300", [0, 1]))
    first.close()
    try:
        adopting = scheduler()
        adopting.adopt(ids[:1])
        adopting.cancel(ids[:1])
        wait_for("the adopted element to be cancelled", lambda: squeue_states(ids[:1])[ids[0]]
                 in ("", "CANCELLED"))
        assert squeue_states(ids[1:])[ids[1]] in ("PENDING", "RUNNING")  # not adopted
        adopting.close()
    finally:
        scancel(ids)


def test_a_job_that_ended_before_its_adoption_is_reported_ended(tmp_path: Path) -> None:
    first = scheduler()
    ids = first.launch(shell_launch(tmp_path, "echo 'no monitor here' >&2; exit 1", [0]))
    first.close()
    try:
        wait_for("the job to fail", lambda: squeue_states(ids)[ids[0]] in ("", "FAILED"))
        adopting = scheduler()
        adopting.adopt(ids)
        found: dict[str, JobStatus] = {}

        def reported() -> bool:
            found.update(adopting.poll(ids))
            return bool(found)

        wait_for("the adopted job's end", reported)
        status = found[ids[0]]
        assert status.status is Status.ENDED and status.exit_status == 1, status
        # Its stderr, whose path squeue told, says why.
        assert "no monitor here" in status.cause, status
        assert ids[0] not in adopting.jobs
        adopting.close()
    finally:
        scancel(ids)


def test_scancel_is_the_cancel_command() -> None:
    command = scheduler().cancel_command()
    assert command and Path(command[0]).name == "scancel" and Path(command[0]).is_absolute()
