"""The local backend: worker deaths, odd results, Ctrl-C, and no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gridmap_core import JobException, JobState, RemoteError, grid_map
from tests import jobs
from tests.conftest import children_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("function", "victim", "cause"),
    [(jobs.kill_self_on, 2, "killed by SIGKILL"),
     (jobs.segfault_on, 1, "killed by SIGSEGV"),
     (jobs.exit_on, 0, "exited with status 3")],
)
def test_a_dying_worker_fails_its_job_and_the_rest_complete(function, victim, cause) -> None:  # type: ignore[no-untyped-def]
    inputs = list(range(40))
    with pytest.raises(JobException) as info:
        grid_map(function, inputs, local=True, max_processes=2, name="w")
    (dead,) = info.value.jobs
    assert dead.name == f"w{victim}"
    assert dead.state is JobState.DEAD
    assert cause in dead.cause_of_death
    assert f"died: local worker process {cause}" in str(info.value)
    assert children_of(os.getpid()) == []


def test_results_of_a_map_with_a_death_are_all_accounted_for() -> None:
    from gridmap_core import GridMapExecutor
    from gridmap_core.face.maprun import MapRun

    with GridMapExecutor("local", max_processes=2) as executor:
        run = MapRun.of_calls(executor.runtime, jobs.kill_self_on,
                              [(i,) for i in range(100)]).runs[0]
        run.wait(timeout=60)
    assert set(run.failures) == {2}
    assert run.values[:2] == [0, 1]
    assert run.values[3:] == list(range(3, 100))


def test_unpicklable_result_and_exception() -> None:
    with pytest.raises(JobException) as info:
        grid_map(jobs.return_lock, [1], local=True)
    assert "cannot be pickled" in str(info.value)
    with pytest.raises(JobException) as info:
        grid_map(jobs.raise_odd_exception, [1], local=True)
    (job,) = info.value.jobs
    assert isinstance(job.ret, RemoteError)
    assert "Unpicklable: 1/2" in str(job.ret)
    assert "raise Unpicklable(1, 2)" in (job.traceback or "")


def test_large_results() -> None:
    results = grid_map(jobs.big_array, range(6), local=True, max_processes=2)
    assert [r.shape for r in results] == [(2_500_000,)] * 6
    assert [float(r[-1]) for r in results] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_ten_thousand_jobs() -> None:
    inputs = range(10_000)
    assert grid_map(jobs.double, inputs, local=True, max_processes=2) == [2 * i for i in inputs]


def test_uses_at_most_max_processes_workers() -> None:
    pids = set(grid_map(jobs.sleep_pid, range(12), local=True, max_processes=3))
    assert 1 < len(pids) <= 3
    assert os.getpid() not in pids


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(method: str, in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text(f"[backends.local]\nstart_method = '{method}'\n")
    offset = 5
    assert grid_map(lambda x: x + offset, [1, 2], local=True, max_processes=2) == [6, 7]


def _script(body: str) -> str:
    return textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from gridmap_core import grid_map
        from tests import jobs
        print("parent", os.getpid(), flush=True)
    """) + textwrap.dedent(body)


def _worker_pids(parent: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children_of(parent)
        if len(pids) >= 2:
            return pids
        time.sleep(0.05)
    raise AssertionError("workers did not start")


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except OSError:
            pass
    return alive


def test_ctrl_c_stops_the_map_promptly_and_leaves_no_worker() -> None:
    script = _script("""
        try:
            grid_map(jobs.sleep_then, [30] * 4, local=True, max_processes=2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    parent = int(process.stdout.readline().split()[1])
    workers = _worker_pids(parent)
    started = time.monotonic()
    os.kill(parent, signal.SIGINT)
    assert process.wait(timeout=20) == 7
    assert "interrupted" in process.stdout.read()
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert _alive(workers) == []


def test_workers_die_with_a_killed_parent() -> None:
    script = _script("""
        grid_map(jobs.sleep_then, [30] * 4, local=True, max_processes=2)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    parent = int(process.stdout.readline().split()[1])
    workers = _worker_pids(parent)
    os.kill(parent, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(workers) == []


def test_a_killed_job_is_resubmitted_up_to_num_resubmits_then_fails() -> None:
    from gridmap_core import GridMapExecutor, Job

    job = Job(jobs.kill_self_on, [2])
    with GridMapExecutor(backend="local", settings={"NUM_RESUBMITS": 2}) as executor, \
            pytest.raises(JobException):
        executor.run_jobs([job])
    assert job.state is JobState.DEAD
    assert job.num_resubmits == 2
    assert "SIGKILL" in job.cause_of_death


def test_a_job_killed_once_succeeds_when_resubmitted(tmp_path: Path) -> None:
    from gridmap_core import GridMapExecutor, Job

    marker = tmp_path / "killed"
    batch = [Job(jobs.die_once, [str(marker), x]) for x in range(4)]
    with GridMapExecutor(backend="local", max_processes=2,
                         settings={"NUM_RESUBMITS": 1}) as executor:
        executor.run_jobs(batch)
    assert [job.ret for job in batch] == [0, 1, 2, 3]
    assert [job.num_resubmits for job in batch] == [1, 0, 0, 0]
