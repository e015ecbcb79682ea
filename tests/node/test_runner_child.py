"""The job's function runs in a process forked from its runner: heartbeats go on while
it holds the GIL, a process that dies is reported with how it died, and it does not
outlive its runner. Local backend, runner mode, and the runner against a stand-in
monitor."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import psutil
import pytest

from gridmap_core import Job, JobException, JobState
from gridmap_core.node.runner import EXIT_JOB_DIED, describe_exit
from gridmap_core.wire.protocol import Kind
from tests import PROJECT_ROOT
from tests.node.test_runner import WAIT, Monitor, key, key_file, serving, task_of  # noqa: F401
from tests.support import monitored

pytestmark = pytest.mark.timeout(180)


def hold_the_gil(seconds: int) -> int:
    """Sleep in C without releasing the GIL (ctypes.PyDLL keeps it): no other thread
    of this process runs meanwhile."""
    ctypes.PyDLL(None).sleep(seconds)
    return seconds


def kill_self(_: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def exit_at_once(_: int) -> None:
    os._exit(3)


def record_and_sleep(pid_file: str) -> int:
    """Write this process's pid and its parent's (the runner), then sleep."""
    Path(pid_file + ".tmp").write_text(f"{os.getpid()} {os.getppid()}")
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(120)
    return 0


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_a_job_that_holds_the_gil_past_the_heartbeat_limit_is_not_dead() -> None:
    # Silent for 2 s means dead; the job holds its GIL for 6 s. The runner's beats
    # come from another process than the job's, so they go on.
    settings = {"MAX_TIME_BETWEEN_HEARTBEATS": 2, "HEARTBEAT_FREQUENCY": 0.5,
                "NUM_RESUBMITS": 0}
    jobs = [Job(hold_the_gil, [6], name="gil")]
    with monitored.runner_executor(settings, max_processes=1) as executor:
        executor.run_jobs(jobs)
    assert jobs[0].state is JobState.DONE, jobs[0].cause_of_death
    assert jobs[0].ret == 6
    assert jobs[0].num_resubmits == 0
    assert len(jobs[0].track_cpu) >= 2  # heartbeats arrived while it held the GIL


@pytest.mark.parametrize(("function", "cause"), [
    (kill_self, "the job's process was killed by SIGKILL (exit status 6)"),
    (exit_at_once, "the job's process exited with status 3 before handing over its result "
                   "(exit status 6)"),
], ids=["signal", "exit"])
def test_a_job_process_that_dies_is_dead_with_how_it_died(function: object,
                                                           cause: str) -> None:
    jobs = [Job(function, [0], name="dies")]  # type: ignore[arg-type]
    with monitored.runner_executor({"NUM_RESUBMITS": 1}) as executor, \
            pytest.raises(JobException) as info:
        executor.run_jobs(jobs)
    assert jobs[0].state is JobState.DEAD
    assert jobs[0].cause_of_death == cause
    assert jobs[0].num_resubmits == 1  # a death, so resubmitted, as before
    assert cause in str(info.value)


def test_describe_exit_reads_how_the_job_process_died(tmp_path: Path) -> None:
    err_log = tmp_path / "job.err"
    err_log.write_text("gridmap runner 2026-01-01 10:00:00,000 INFO task 3 attempt 0\n"
                       "gridmap runner 2026-01-01 10:00:01,000 ERROR the job's process was "
                       "killed by SIGSEGV\n\n")
    assert describe_exit(EXIT_JOB_DIED, err_log=str(err_log)) == (
        "the job's process was killed by SIGSEGV (exit status 6)")
    assert describe_exit(EXIT_JOB_DIED, err_log=str(tmp_path / "missing.err")) == (
        "the job's process ended without a result (exit status 6)")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # type: ignore[no-any-return]
    except psutil.NoSuchProcess:
        return True


def test_the_job_process_dies_with_its_runner(tmp_path: Path, key: bytes,  # noqa: F811
                                              key_file: Path) -> None:  # noqa: F811
    pid_file = tmp_path / "job.pid"
    payload = task_of(record_and_sleep, [str(pid_file)])
    with Monitor(key, serving(payload)) as monitor:
        runner = subprocess.Popen(
            [sys.executable, "-m", "gridmap_core.node.runner", "--address", monitor.address,
             "--map", "map-runner-test", "--key-file", str(key_file), "--task", "7",
             "--heartbeat", "0.2", "--give-up", "20"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=PROJECT_ROOT)
        try:
            deadline = time.monotonic() + WAIT
            while not pid_file.exists():
                assert runner.poll() is None, "the runner ended before its job started"
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            job, parent = map(int, pid_file.read_text().split())
            assert parent == runner.pid and job != runner.pid
            runner.kill()
            runner.wait(WAIT)
            deadline = time.monotonic() + WAIT
            while not _gone(job):
                assert time.monotonic() < deadline, f"the job's process {job} outlived its runner"
                time.sleep(0.05)
        finally:
            runner.kill()
            runner.wait()
    assert Kind.RESULT not in monitor.kinds()
