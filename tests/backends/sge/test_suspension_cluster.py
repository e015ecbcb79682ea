"""A job its scheduler suspends (Grid Engine's qmod -sj, Slurm's scontrol suspend) is
not counted dead while it sends no heartbeats, and finishes once resumed, on the
real test clusters."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle

from gridmap_core import GridMapExecutor, Job

SETTINGS = {"CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 1, "MAX_IDLE_HEARTBEATS": 0,
            "MAX_TIME_BETWEEN_HEARTBEATS": 3, "NUM_RESUBMITS": 1, "REUSE_RUNNERS": False}
SUSPENDED_FOR = 12.0  # seconds: four times MAX_TIME_BETWEEN_HEARTBEATS


def mark_then_sleep(marker: str, seconds: float) -> str:
    Path(marker).write_text("running")
    time.sleep(seconds)
    return "done"


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command}: {done.stderr or done.stdout}"
    return done.stdout


class Suspender(threading.Thread):
    """Suspends a job once it runs, keeps it suspended for SUSPENDED_FOR seconds once
    the scheduler says so, then resumes it: ``suspend`` and ``resume`` are commands
    to which the job's id is added."""

    def __init__(self, job: Job, marker: Path, suspend: list[str], resume: list[str],
                 is_suspended: Callable[[str], bool]) -> None:
        super().__init__(name="suspender")
        self.job, self.marker = job, marker
        self.suspend, self.resume, self.is_suspended = suspend, resume, is_suspended
        self.failures: list[BaseException] = []

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 120
            while not self.marker.exists() or not self.job.id:
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.1)
            job_id = str(self.job.id)
            _run([*self.suspend, job_id])
            while not self.is_suspended(job_id):
                assert time.monotonic() < deadline, f"job {job_id} was never suspended"
                time.sleep(0.2)
            time.sleep(SUSPENDED_FOR)
            _run([*self.resume, job_id])
        except BaseException as error:
            self.failures.append(error)


def _check(backend: str, tmp_path: Path, suspend: list[str], resume: list[str],
           is_suspended: Callable[[str], bool]) -> None:
    marker = tmp_path / "marker"
    job = Job(mark_then_sleep, [str(marker), 4], name="suspended")
    with GridMapExecutor(backend=backend, require_cluster=True, temp_dir=str(tmp_path),
                         settings=SETTINGS) as executor:
        suspender = Suspender(job, marker, suspend, resume, is_suspended)
        suspender.start()
        executor.run_jobs([job])
        suspender.join()
    assert not suspender.failures, suspender.failures
    assert job.ret == "done"
    assert job.num_resubmits == 0, job.cause_of_death


def test_a_job_suspended_by_grid_engine_is_not_dead(sge_cluster: str, tmp_path: Path) -> None:
    from gridmap_sge.qstat import run_qstat

    def is_suspended(job_id: str) -> bool:
        return "s" in (run_qstat(user="*").state(job_id) or "")

    _check("sge", tmp_path, ["qmod", "-sj"], ["qmod", "-usj"], is_suspended)


def test_a_job_suspended_by_slurm_is_not_dead(slurm_cluster: str, tmp_path: Path) -> None:
    def is_suspended(job_id: str) -> bool:
        return _run(["squeue", "-h", "-j", job_id, "-o", "%T"]).strip() == "SUSPENDED"

    _check("slurm", tmp_path, ["scontrol", "suspend"], ["scontrol", "resume"], is_suspended)
