"""The local backend: worker deaths, odd results, Ctrl-C, and no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from gridmap_local import pool
from gridmap_local.pool import LocalSession

from gridmap_core import JobException, JobState, RemoteError, grid_map
from gridmap_core.backend import Batch, Failure, JobSpec, SessionOptions
from gridmap_core.model.config import load_settings
from gridmap_core.model.death import DeathKind
from tests import PROJECT_ROOT
from tests.conftest import children_of
from tests.support import jobs

ROOT = PROJECT_ROOT


@pytest.mark.parametrize(
    ("function", "victim", "cause", "kind"),
    [(jobs.kill_self_on, 2, "killed by SIGKILL", DeathKind.KILLED),
     (jobs.segfault_on, 1, "killed by SIGSEGV", DeathKind.KILLED),
     (jobs.exit_on, 0, "exited with status 3", DeathKind.EXITED)],
)
def test_a_dying_worker_fails_its_job_and_the_rest_complete(function, victim, cause, kind) -> None:  # type: ignore[no-untyped-def]
    inputs = list(range(40))
    with pytest.raises(JobException) as info:
        grid_map(function, inputs, local=True, max_processes=2, name="w")
    (dead,) = info.value.jobs
    assert dead.name == f"w{victim}"
    assert dead.state is JobState.DEAD
    assert cause in dead.cause_of_death
    assert dead.death_kind is kind
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
        from tests.support import jobs
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
    assert job.death_kind is DeathKind.KILLED


def test_a_job_killed_once_succeeds_when_resubmitted(tmp_path: Path) -> None:
    from gridmap_core import GridMapExecutor, Job

    marker = tmp_path / "killed"
    batch = [Job(jobs.die_once, [str(marker), x]) for x in range(4)]
    with GridMapExecutor(backend="local", max_processes=2,
                         settings={"NUM_RESUBMITS": 1}) as executor:
        executor.run_jobs(batch)
    assert [job.ret for job in batch] == [0, 1, 2, 3]
    assert [job.num_resubmits for job in batch] == [1, 0, 0, 0]


@pytest.mark.parametrize(("exitcode", "cause", "kind"), [
    (-9, "local worker process killed by SIGKILL", DeathKind.KILLED),
    (3, "local worker process exited with status 3", DeathKind.EXITED),
    (None, "local worker process vanished", DeathKind.VANISHED),
])
def test_each_end_of_a_worker_is_its_kind_of_death(exitcode: int | None, cause: str,
                                                   kind: DeathKind) -> None:
    assert pool._describe_exit(exitcode) == (cause, kind)


class _RecordingSink:
    """A sink that hands out every job and records how each ended."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.resubmissions: list[tuple[int, str, DeathKind | None]] = []
        self.failures: dict[int, Failure] = {}
        self.values: dict[int, object] = {}

    def claim(self, start: int, stop: int) -> range:
        return range(start, stop)

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        pass

    def succeeded(self, indices: Sequence[int], values: Sequence[object],
                  host_name: str) -> None:
        self.values.update(zip(indices, values, strict=True))
        self._check()

    def failed(self, index: int, failure: Failure) -> None:
        self.failures[index] = failure
        self._check()

    def resubmitted(self, index: int, cause_of_death: str,
                    kind: DeathKind | None = None) -> None:
        self.resubmissions.append((index, cause_of_death, kind))

    def heartbeat(self, index: int, heartbeat: object) -> None:
        pass

    def job_name(self, index: int) -> str | None:
        return None

    def waiting(self, index: int, note: str) -> None:
        pass

    def _check(self) -> None:
        if len(self.values) + len(self.failures) == 3:
            self.done.set()


def _session(resubmits: int) -> LocalSession:
    settings = load_settings({"NUM_RESUBMITS": resubmits})
    return LocalSession(SessionOptions(settings=settings, max_processes=1))


def test_a_resubmitted_worker_death_and_the_final_one_carry_its_kind() -> None:
    sink = _RecordingSink()
    session = _session(resubmits=1)
    try:
        session.submit(Batch(JobSpec(function=jobs.kill_self_on), [(1,), (2,), (3,)], None,
                             sink))
        assert sink.done.wait(60), (sink.values, sink.failures)
    finally:
        session.close()
    assert sink.resubmissions == [(1, "local worker process killed by SIGKILL",
                                   DeathKind.KILLED)]
    assert sink.failures[1].death_kind is DeathKind.KILLED
    assert sink.failures[1].num_resubmits == 1
    assert sink.values == {0: 1, 2: 3}


def test_a_failed_dispatcher_fails_its_jobs_with_a_kind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: LocalSession) -> list[object]:
        raise RuntimeError("the queue is broken")

    monkeypatch.setattr(LocalSession, "_next_work", broken)
    sink = _RecordingSink()
    session = _session(resubmits=0)
    try:
        session.submit(Batch(JobSpec(function=jobs.double), [(1,), (2,), (3,)], None, sink))
        assert sink.done.wait(60), (sink.values, sink.failures)
    finally:
        session.close()
    assert set(sink.failures) == {0, 1, 2}
    for failure in sink.failures.values():
        assert failure.cause_of_death == ("internal error in the local backend: the queue is "
                                          "broken")
        assert failure.death_kind is DeathKind.OTHER
