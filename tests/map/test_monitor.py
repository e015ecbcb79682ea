"""The runner and monitor path end to end, with runners as local processes."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
import pytest
from gridmap_local.processes import ProcessScheduler

from gridmap_core import Job, JobException, JobState
from gridmap_core.backend import Batch, JobSpec, SessionOptions
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run
from gridmap_core.model.config import load_settings
from gridmap_core.wire.keys import read_key_file
from tests.support import monitored
from tests.support.durable import ENDED_SESSION
from tests.support.monitored import runner_executor


def test_results_come_back_in_order_from_runner_processes() -> None:
    with runner_executor({"REUSE_RUNNERS": False}) as executor:
        results = list(executor.map(monitored.where, range(6)))
    assert [r[0] for r in results] == [x * x for x in range(6)]
    for _, pid, argv, _ in results:
        assert pid != os.getpid()
        assert argv[0].endswith("gridmap_core/node/runner.py")
    assert len({pid for _, pid, _, _ in results}) == 6  # one runner per job


def test_a_raising_job_reports_its_remote_traceback() -> None:
    jobs = [Job(monitored.raise_value_error, [7]), Job(monitored.sleep_for, [0.1])]
    with runner_executor() as executor, pytest.raises(JobException) as info:
        executor.run_jobs(jobs)
    failed = jobs[0]
    assert failed.state is JobState.FAILED
    assert isinstance(failed.ret, ValueError) and str(failed.ret) == "refused 7"
    assert failed.traceback is not None and "raise_value_error" in failed.traceback
    assert "runner.py" not in failed.traceback  # starts in the job's own code
    assert failed.num_resubmits == 0  # a job that raised is not resubmitted
    assert jobs[1].ret == 0.1
    assert "refused 7" in str(info.value)


def test_a_job_killed_mid_run_is_resubmitted_and_the_map_completes(tmp_path: Path) -> None:
    marker = tmp_path / "first-pid"
    jobs = [Job(monitored.die_first_time, [str(marker), 21]), Job(monitored.sleep_for, [0.2])]

    def kill_first_attempt() -> None:
        deadline = time.monotonic() + 30
        while not marker.exists() or not marker.read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.kill(int(marker.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_first_attempt)
    killer.start()
    with runner_executor() as executor:
        executor.run_jobs(jobs)
    killer.join()
    assert [job.ret for job in jobs] == [42, 0.2]
    assert jobs[0].num_resubmits == 1
    assert "SIGKILL" in jobs[0].cause_of_death
    assert jobs[1].num_resubmits == 0


def test_a_job_that_never_starts_fails_instead_of_hanging(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-python")
    jobs = [Job(monitored.sleep_for, [0]) for _ in range(3)]
    started = time.monotonic()
    with runner_executor(python=missing) as executor, pytest.raises(JobException) as info:
        executor.run_jobs(jobs)
    assert time.monotonic() - started < 30
    assert len(info.value.jobs) == 3
    for job in jobs:
        assert job.state is JobState.DEAD
        assert "could not start the runner" in job.cause_of_death
        assert job.num_resubmits == 1


def test_a_runner_that_exits_before_its_first_message_is_found_dead() -> None:
    jobs = [Job(monitored.sleep_for, [0])]
    with runner_executor({"NUM_RESUBMITS": 0}, python="/bin/false") as executor, \
            pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].state is JobState.DEAD
    assert "exit status 1" in jobs[0].cause_of_death


def test_a_job_over_its_memory_limit_is_killed_and_reported_not_resubmitted() -> None:
    # As on Grid Engine and Slurm, which do not resubmit a job killed for its memory:
    # it would only grow past its limit again.
    jobs = [Job(monitored.hog_memory, [300], h_vmem="150M")]
    with runner_executor({"NUM_RESUBMITS": 2}) as executor, pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].state is JobState.DEAD
    assert jobs[0].num_resubmits == 0
    assert jobs[0].cause_of_death.startswith("out of memory")
    assert "h_vmem=150 MB" in jobs[0].cause_of_death
    assert max(jobs[0].track_mem) > 150  # the heartbeats saw it, in MB


def test_an_idle_job_is_found_dead_and_a_busy_one_is_not() -> None:
    jobs = [Job(monitored.sleep_for, [60]), Job(monitored.spin, [3.0])]
    settings = {"NUM_RESUBMITS": 0, "MAX_IDLE_HEARTBEATS": 3, "IDLE_THRESHOLD": 5}
    started = time.monotonic()
    with runner_executor(settings) as executor, pytest.raises(JobException) as info:
        executor.run_jobs(jobs)
    assert time.monotonic() - started < 30
    assert [job.name for job in info.value.jobs] == [jobs[0].name]
    assert jobs[0].cause_of_death.startswith("idle")
    assert jobs[1].ret == 3.0
    # CPU is measured across samples: the spinning job was seen busy.
    assert max(jobs[1].track_cpu) > 50


def test_a_silent_job_is_found_dead_by_its_missing_heartbeats(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monitored.blind_to_suspension(monkeypatch)  # frozen, but not by the scheduler
    jobs = [Job(monitored.stop_self, [0])]
    settings = {"NUM_RESUBMITS": 0, "MAX_TIME_BETWEEN_HEARTBEATS": 2}
    with runner_executor(settings) as executor, pytest.raises(JobException):
        executor.run_jobs(jobs)
    assert jobs[0].cause_of_death.startswith("no heartbeat")


def test_a_100_mb_result_arrives_whole() -> None:
    with runner_executor() as executor:
        (result,) = list(executor.map(monitored.big_result, [100]))
    assert result == monitored.big_result(100)


def test_the_filesystem_transport_carries_a_map(tmp_path: Path) -> None:
    with runner_executor({"TRANSPORT": "filesystem", "DEFAULT_TEMP_DIR": str(tmp_path)}
                         ) as executor:
        results = list(executor.map(monitored.where, range(3)))
        assert any(p.name.startswith("gridmap-") for p in tmp_path.iterdir())
    assert [r[0] for r in results] == [0, 1, 4]
    # The key, logs and transport files are removed; the map's journal is kept.
    (session,) = tmp_path.iterdir()
    assert {path.name for path in session.iterdir()} == ENDED_SESSION


def test_the_key_file_is_private_and_not_on_the_command_line(tmp_path: Path) -> None:
    with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor:
        (result,) = list(executor.map(monitored.where, [1]))
        (directory,) = tmp_path.iterdir()
        key_file = directory / "key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        keys = read_key_file(key_file)
    secrets = [keys.mac.hex(), keys.curve.server_secret.decode(),
               keys.curve.client_secret.decode(), keys.curve.client_public.decode()]
    argv = result[2]
    assert str(key_file) in " ".join(argv)
    for secret in secrets:
        assert secret not in " ".join(argv)
        assert all(secret not in value for value in os.environ.values())


def test_cancel_policy_stops_the_runners_at_the_first_failure(tmp_path: Path) -> None:
    jobs = [Job(monitored.raise_value_error, [1])] + [
        Job(monitored.sleep_for, [60]) for _ in range(3)
    ]
    started = time.monotonic()
    with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor, \
            pytest.raises(JobException) as info:
        executor.run_jobs(jobs, on_failure="cancel")
    assert time.monotonic() - started < 30
    assert info.value.cancelled == 3
    assert [job.state for job in jobs] == [JobState.FAILED] + [JobState.CANCELLED] * 3
    assert not any(str(tmp_path) in line for line in _command_lines())


def test_return_policy_puts_exceptions_in_place_of_results() -> None:
    jobs = [Job(monitored.raise_value_error, [1]), Job(monitored.sleep_for, [0.1])]
    with runner_executor() as executor:
        executor.run_jobs(jobs, on_failure="return")
    assert isinstance(jobs[0].ret, ValueError) and jobs[1].ret == 0.1


def test_the_monitor_listens_on_the_configured_ports_and_address() -> None:
    settings = {"MONITOR_PORTS": "52000-52010", "MONITOR_ADDRESS": "127.0.0.1",
                "MONITOR_INTERFACE": "127.0.0.1"}
    with runner_executor(settings) as executor:
        (result,) = list(executor.map(monitored.where, [3]))
    argv = result[2]
    address = argv[argv.index("--address") + 1]
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    assert host == "127.0.0.1" and 52000 <= int(port) <= 52010
    assert result[0] == 9


def _command_lines() -> list[str]:
    """Every process's command line; processes that end meanwhile are left out."""
    found = []
    for proc in psutil.process_iter():
        try:
            found.append(" ".join(proc.cmdline()))
        except psutil.Error:
            continue
    return found


class SlowFirstPoll(ProcessScheduler):
    """A scheduler whose poll hangs once, for longer than MAX_TIME_BETWEEN_HEARTBEATS."""

    def __init__(self, max_processes: int, after: float, hang: float) -> None:
        super().__init__(max_processes)
        self.hang_at = time.monotonic() + after
        self.hang = hang
        self.hung = False

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        if not self.hung and time.monotonic() > self.hang_at:
            self.hung = True
            time.sleep(self.hang)
        return super().poll(ids)


def test_a_hanging_scheduler_poll_does_not_make_live_jobs_look_dead(tmp_path: Path) -> None:
    settings = load_settings({**monitored.FAST, "MAX_TIME_BETWEEN_HEARTBEATS": 2,
                              "NUM_RESUBMITS": 0})
    scheduler = SlowFirstPoll(2, after=1.5, hang=3.5)
    session = MonitoredSession(scheduler, SessionOptions(settings=settings),
                               work_dir=str(tmp_path))
    scheduler.poll_soon = session.poll_soon
    run = Run(2)
    try:
        session.submit(Batch(JobSpec(monitored.sleep_for), [(5,), (5,)], None, run))
        assert run.wait(timeout=60)
    finally:
        session.close()
    assert scheduler.hung
    assert run.failures == {}
    assert run.values == [5, 5]


def test_a_100_mb_argument_reaches_the_job_whole() -> None:
    import hashlib

    data = os.urandom(100 * 2**20)
    with runner_executor() as executor:
        (result,) = list(executor.map(monitored.digest, [data]))
    assert result == (len(data), hashlib.sha256(data).hexdigest())


class VanishingScheduler:
    """A scheduler whose jobs all end at once without running: every poll reports
    them killed, so each is found dead and resubmitted until it may not be."""

    def __init__(self) -> None:
        self.launched = 0
        self.lock = threading.Lock()

    def launch(self, launch: Launch) -> list[str]:
        with self.lock:
            first = self.launched
            self.launched += len(launch.tasks)
        return [f"47.{first + n + 1}" for n in range(len(launch.tasks))]

    def poll(self, ids: Sequence[str]) -> Mapping[str, JobStatus]:
        return {job_id: JobStatus(Status.ENDED, "killed by SIGKILL") for job_id in ids}

    def cancel(self, ids: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


def test_death_and_resubmit_warnings_name_each_job_by_its_own_name(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    names = [f"watch{x}" for x in range(12)]
    jobs = [Job(monitored.sleep_for, [0], name=name) for name in names]
    settings = load_settings({**monitored.FAST, "NUM_RESUBMITS": 1, "CHECK_FREQUENCY": 0.1})
    session = MonitoredSession(VanishingScheduler(), SessionOptions(settings=settings),
                               work_dir=str(tmp_path))
    run = Run(len(jobs), jobs)
    caplog.set_level(logging.WARNING, logger="gridmap_core.map.monitor")
    try:
        # One batch under the first job's spec, as run_jobs sends jobs that share one.
        session.submit(Batch(JobSpec(monitored.sleep_for, name=names[0]),
                             [(0,)] * len(jobs), None, run))
        assert run.wait(timeout=60)
    finally:
        session.close()
    messages = [record.getMessage() for record in caplog.records]
    for name in names:
        resubmitted = [m for m in messages if m.startswith(f"{name} (job ")
                       and "resubmitting" in m]
        died = [m for m in messages if m.startswith(f"{name} (job ")
                and m.endswith("died: killed by SIGKILL")]
        assert len(resubmitted) == 1 and len(died) == 1, (name, messages)
    assert not any(m.startswith(("watch09 ", "watch010 ", "watch011 ")) for m in messages)
    assert all(job.cause_of_death == "killed by SIGKILL" for job in jobs)
