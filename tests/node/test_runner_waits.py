"""Runners that wait for their monitor: the runner (``python -m gridmap_core.node.runner``)
as a subprocess against stand-in monitors of the test, with the session directory's
monitor.json written (and touched, while the stand-in "lives") by the test.

A monitor that is gone (its monitor.json no longer changes) is waited for until
``--grace``: a new monitor on a new address gets the job's result; when none comes, the
first runner marks the map abandoned and cancels its other jobs in one call. A monitor
alive but out of reach (its file keeps changing) is given up on at ``--give-up``, as
before. A ``cancelled`` mark ends a waiting runner at once."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cloudpickle
import psutil
import pytest

from gridmap_core.model.core_settings import DEFAULT_TRANSPORT
from gridmap_core.wire import beacon
from gridmap_core.wire.exits import (
    EXIT_LOST,
    EXIT_MAP_ENDED,
    EXIT_UNREACHABLE,
    describe_exit,
)
from gridmap_core.wire.keys import MapKeys, write_key_file
from gridmap_core.wire.messages import decode_result
from gridmap_core.wire.protocol import Kind
from tests.node.test_runner import (
    CURVE,
    MAP,
    ROOT,
    WAIT,
    Answer,
    Finished,
    Frames,
    Monitor,
    Received,
    free_port,
    serving,
    task_of,
)

pytestmark = pytest.mark.timeout(180)

# What a scheduler sets that names the runner's own job: set by each test, never
# inherited from wherever the tests run.
SCHEDULER_IDS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "JOB_ID",
                 "SGE_TASK_ID")


def count_and_wait(count_file: str, go_file: str, returned_file: str, value: int) -> int:
    """The job: note its start (its pid, a line per run), wait (at most 60 s) for
    ``go_file``, note that it returned, and return ``value``."""
    with open(count_file, "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            return -1
        time.sleep(0.02)
    Path(returned_file).write_text("returned", encoding="utf-8")
    return value


class Job:
    """The files of one :func:`count_and_wait` job in ``directory``."""

    def __init__(self, directory: Path, value: int = 42) -> None:
        self.count = directory / "count"
        self.go = directory / "go"
        self.returned = directory / "returned"
        self.payload = task_of(count_and_wait, [str(self.count), str(self.go),
                                                str(self.returned), value])

    def starts(self) -> list[int]:
        """The pid of each run of the job so far."""
        if not self.count.exists():
            return []
        return [int(line) for line in self.count.read_text().split()]

    def wait_started(self) -> int:
        _wait_for(lambda: bool(self.starts()), "the job to start")
        return self.starts()[0]


class Beacon:
    """The session directory's monitor.json naming a stand-in monitor at ``address``,
    touched every 0.2 s (a monitor does so every second) while the context lasts: the
    monitor "lives". Leaving the context stops the touching: the monitor is "gone"."""

    def __init__(self, directory: Path, address: str, pid: int) -> None:
        self.directory = directory
        beacon.write_monitor(directory, beacon.MonitorRecord(
            DEFAULT_TRANSPORT, address, "test-monitor-host", pid, time.time()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._touch, name="test-beacon", daemon=True)

    def _touch(self) -> None:
        while not self._stop.wait(0.2):
            beacon.touch_monitor(self.directory)

    def __enter__(self) -> Beacon:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(WAIT)


class RunningRunner:
    """The runner as a subprocess that the test watches while it runs: its stdout (the
    job's log) and stderr (the runner's log) go to files."""

    def __init__(self, address: str, key_path: Path, log_dir: Path, *extra: str,
                 task: int = 7, env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "gridmap_core.node.runner", "--address", address,
                "--map", MAP, "--key-file", str(key_path), "--task", str(task), *extra]
        stamp = time.monotonic_ns()
        self.out_path = log_dir / f"runner.{stamp}.out"
        self.err_path = log_dir / f"runner.{stamp}.err"
        base = {name: value for name, value in os.environ.items()
                if name not in SCHEDULER_IDS}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=err, cwd=ROOT, env={**base, **(env or {})})

    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for_log(self, text: str) -> None:
        """Wait until the runner's log says ``text`` (failing if it ends first)."""
        deadline = time.monotonic() + WAIT
        while text not in self.log():
            if self.process.poll() is not None:
                pytest.fail(f"the runner ended ({self.process.returncode}) before "
                            f"logging {text!r}: {self.log()}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the runner did not log {text!r} within {WAIT} s: {self.log()}")
            time.sleep(0.05)

    def finish(self) -> Finished:
        """Wait for the runner's end (generously) and return how it ended."""
        try:
            self.process.wait(WAIT * 2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the runner did not end within {WAIT * 2} s: {self.log()}")
        return Finished(self.process.returncode, self.out_path.read_text(errors="replace"),
                        self.log())


@contextlib.contextmanager
def _served(tmp_path: Path, key: bytes, key_file: Path, job: Job, *, give_up: str,
            grace: str, answer: Answer | None = None, env: dict[str, str] | None = None
            ) -> Iterator[tuple[Monitor, RunningRunner, int]]:
    """A stand-in monitor that lives while the context lasts (``answer``, or serving
    ``job``), and a runner of it beating every second, with ``--give-up`` and
    ``--grace``: the monitor, the runner, and the pid of the job, once started."""
    with Monitor(key, answer or serving(job.payload)) as monitor, \
            Beacon(tmp_path, monitor.address, 1):
        runner = RunningRunner(monitor.address, key_file, tmp_path, "--heartbeat", "1",
                               "--give-up", give_up, "--grace", grace, env=env)
        yield monitor, runner, job.wait_started()


def _wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _wait_ended(pid: int) -> None:
    """Wait for the job's process (stopped with its runner) to be gone."""
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(WAIT)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _cancel_command(directory: Path) -> tuple[list[str], Path]:
    """A stand-in for scancel: a script that records the ids it is given, one call a
    line; the command and the file it records to."""
    script = directory / "cancel.py"
    calls = directory / "cancel-calls"
    script.write_text("import json, sys\n"
                      "with open(sys.argv[1], 'a', encoding='utf-8') as handle:\n"
                      "    handle.write(json.dumps(sys.argv[2:]) + '\\n')\n",
                      encoding="utf-8")
    return [sys.executable, str(script), str(calls)], calls


def _calls(calls: Path) -> list[list[str]]:
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines()]


def _result_value(monitor: Monitor) -> object:
    results = monitor.of_kind(Kind.RESULT)
    assert results, "the monitor got no result"
    outcome = decode_result(results[0].payload)
    assert outcome.ok, outcome.traceback
    return outcome.value


# -- a monitor gone, then a new one -----------------------------------------------------


def test_a_monitor_gone_mid_job_then_a_new_one_on_a_new_address_gets_the_result(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    job = Job(tmp_path)
    # --give-up is short: a monitor that is gone is waited for past it, until --grace.
    with _served(tmp_path, key, key_file, job, give_up="3", grace="150") as (first, runner, _):
        _wait_for(lambda: first.of_kind(Kind.HEARTBEAT), "a heartbeat")
    # The first monitor has gone: nothing answers there, its file no longer changes.
    runner.wait_for_log("is gone (its monitor.json has not changed")
    job.go.touch()  # the job ends while no monitor serves the map: its result is kept
    _wait_for(job.returned.exists, "the job to return")
    with Monitor(key, serving(job.payload)) as second, Beacon(tmp_path, second.address, 2):
        assert second.address != first.address
        result = runner.finish()
    assert result.code == 0, result.err
    assert "a new monitor serves the map" in result.err
    assert f"talking to the map's monitor at {second.address} now" in result.err
    assert _result_value(second) == 42
    assert not first.of_kind(Kind.RESULT)
    assert len(job.starts()) == 1  # the job ran once
    assert second.of_kind(Kind.FETCH) == []


def test_an_array_element_that_starts_while_no_monitor_answers_waits_for_a_new_one(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    job = Job(tmp_path, value=7)
    job.go.touch()
    gone = f"tcp://127.0.0.1:{free_port()}"
    # The map's monitor is gone: its monitor.json is there, and changes no more.
    beacon.write_monitor(tmp_path, beacon.MonitorRecord(DEFAULT_TRANSPORT, gone, "old-host",
                                                        1, time.time()))
    runner = RunningRunner(gone, key_file, tmp_path, "--heartbeat", "1", "--give-up", "2",
                           "--grace", "150")
    runner.wait_for_log("is gone (its monitor.json has not changed")
    with Monitor(key, serving(job.payload)) as monitor, Beacon(tmp_path, monitor.address, 2):
        result = runner.finish()
    assert result.code == 0, result.err
    assert monitor.of_kind(Kind.FETCH)
    assert _result_value(monitor) == 7
    assert len(job.starts()) == 1


# -- a monitor gone for good ------------------------------------------------------------


def test_past_the_grace_the_first_runner_abandons_the_map_and_cancels_its_jobs_once(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    job = Job(tmp_path)
    command, calls = _cancel_command(tmp_path)
    beacon.record_launched(tmp_path, ["500_1", "500_2", "500_3"], cancel=command)
    this_job = {"SLURM_ARRAY_JOB_ID": "500", "SLURM_ARRAY_TASK_ID": "2",
                "SLURM_JOB_ID": "502"}
    with _served(tmp_path, key, key_file, job, give_up="60", grace="3",
                 env=this_job) as (monitor, runner, pid):
        pass  # the monitor goes as soon as the job has started
    result = runner.finish()
    assert result.code == EXIT_MAP_ENDED, result.err
    assert "giving up on the map" in result.err
    assert beacon.end_mark(tmp_path) == beacon.ABANDONED
    assert "past the grace of 3 s" in beacon.mark_reason(tmp_path, beacon.ABANDONED)
    # One call, with every id of the map but the runner's own.
    assert _calls(calls) == [["500_1", "500_3"]]
    assert "cancelled 2 job(s) of the map" in result.err
    _wait_ended(pid)  # the job was stopped with its runner
    assert not job.returned.exists()

    # Another runner of the map, started afterwards, sees the mark: it exits at once,
    # and cancels nothing again.
    later = RunningRunner(monitor.address, key_file, tmp_path, "--grace", "3", task=8,
                          env={"SLURM_ARRAY_JOB_ID": "500", "SLURM_ARRAY_TASK_ID": "3"})
    second = later.finish()
    assert second.code == EXIT_MAP_ENDED, second.err
    assert "the map was abandoned" in second.err
    assert _calls(calls) == [["500_1", "500_3"]]
    assert len(job.starts()) == 1
    cause = describe_exit(second.code, err_log=str(later.err_path))
    assert cause.startswith("the map was abandoned, cancelled or ended"), cause


def test_a_runner_that_cannot_tell_its_own_job_cancels_every_job_of_the_map(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    command, calls = _cancel_command(tmp_path)
    beacon.record_launched(tmp_path, ["77.1", "77.2"], cancel=command)
    gone = f"tcp://127.0.0.1:{free_port()}"
    beacon.write_monitor(tmp_path, beacon.MonitorRecord(DEFAULT_TRANSPORT, gone, "old-host",
                                                        1, time.time()))
    result = RunningRunner(gone, key_file, tmp_path, "--give-up", "1", "--grace", "1"
                           ).finish()
    assert result.code == EXIT_MAP_ENDED, result.err
    assert _calls(calls) == [["77.1", "77.2"]]


def test_a_cancelled_mark_ends_a_waiting_runner_at_once(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    job = Job(tmp_path)
    command, calls = _cancel_command(tmp_path)
    beacon.record_launched(tmp_path, ["9"], cancel=command)
    with _served(tmp_path, key, key_file, job, give_up="3", grace="150") as (_, runner, pid):
        pass  # the monitor goes as soon as the job has started
    runner.wait_for_log("is gone (its monitor.json has not changed")
    assert beacon.mark(tmp_path, beacon.CANCELLED, "cancelled by the test")
    result = runner.finish()
    assert result.code == EXIT_MAP_ENDED, result.err
    assert "the map was cancelled (cancelled by the test)" in result.err
    _wait_ended(pid)
    assert not job.returned.exists()
    assert _calls(calls) == []  # whoever cancels the map cancels its jobs
    assert beacon.end_mark(tmp_path) == beacon.CANCELLED


def test_a_removed_session_directory_ends_a_waiting_runner_at_once(
        tmp_path: Path, key: bytes) -> None:
    session = tmp_path / "session"
    session.mkdir()
    key_file = write_key_file(session / "key", MapKeys(key, CURVE))
    logs = tmp_path / "logs"
    logs.mkdir()
    job = Job(logs)
    with Monitor(key, serving(job.payload)) as monitor, Beacon(session, monitor.address, 1):
        runner = RunningRunner(monitor.address, key_file, logs, "--heartbeat", "1",
                               "--give-up", "3", "--grace", "150")
        pid = job.wait_started()
    runner.wait_for_log("is gone (its monitor.json has not changed")
    shutil.rmtree(session)  # the map ended and was tidied away (MAP_KEEP_TIME=0)
    result = runner.finish()
    assert result.code == EXIT_MAP_ENDED, result.err
    assert f"session directory {session} was removed: the map is over" in result.err
    _wait_ended(pid)
    assert not job.returned.exists()


# -- a monitor alive but out of reach ---------------------------------------------------


def test_a_monitor_alive_but_out_of_reach_is_given_up_on_at_give_up_not_at_grace(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    job = Job(tmp_path)
    cut = threading.Event()

    def answer(monitor: Monitor, message: Received) -> Frames | None:
        if cut.is_set():
            return None  # this node is cut off: nothing reaches it
        return serving(job.payload)(monitor, message)

    # The grace is far longer than the test may wait: only the give-up ends it.
    with _served(tmp_path, key, key_file, job, give_up="4", grace="3600",
                 answer=answer) as (monitor, runner, pid):
        _wait_for(lambda: monitor.of_kind(Kind.HEARTBEAT), "a heartbeat")
        cut.set()
        result = runner.finish()
    assert result.code == EXIT_LOST, result.err
    assert "lost the monitor" in result.err
    assert "does not answer but lives" in result.err
    _wait_ended(pid)
    assert not job.returned.exists()
    assert beacon.end_mark(tmp_path) is None


def test_a_session_directory_the_node_cannot_read_keeps_the_usual_give_up(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    job = Job(tmp_path)
    with _served(tmp_path, key, key_file, job, give_up="4",
                 grace="3600") as (monitor, runner, pid):
        _wait_for(lambda: monitor.of_kind(Kind.HEARTBEAT), "a heartbeat")
        # The node loses its shared file system with the network: monitor.json cannot
        # be read (a link to itself fails with ELOOP, where a cut mount fails with EIO).
        looped = tmp_path / beacon.MONITOR_FILE
        looped.unlink()
        looped.symlink_to(looped.name)
    result = runner.finish()
    assert result.code == EXIT_LOST, result.err
    assert f"cannot read {tmp_path}" in result.err
    assert "is gone" not in result.err
    _wait_ended(pid)
    assert not job.returned.exists()


def test_a_fetch_that_a_living_monitor_never_answers_gives_up_at_give_up(
        tmp_path: Path, key_file: Path) -> None:
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    with Beacon(tmp_path, nowhere, 1):
        result = RunningRunner(nowhere, key_file, tmp_path, "--give-up", "3",
                               "--grace", "3600").finish()
    assert result.code == EXIT_UNREACHABLE, result.err
    assert "cannot reach the monitor" in result.err
    assert beacon.end_mark(tmp_path) is None


cloudpickle.register_pickle_by_value(sys.modules[__name__])
