"""The local backend's ProcessScheduler, driven directly with Launch objects whose
"runner" is a small ``python -c`` program (``--task N --attempt K`` land in its
``sys.argv``, where the programs below find their task number)."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import pytest
from gridmap_local.processes import ProcessScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from tests.conftest import children_of

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0  # generous upper bound for anything that should happen within a second

# Each program writes its pid to DIR/pid.TASK once it is ready (after installing any
# signal handler), so a test knows when and what to signal.
PID_FILE = (
    "import os, sys\n"
    "def ready():\n"
    "    path = os.path.join({dir!r}, 'pid.' + sys.argv[sys.argv.index('--task') + 1])\n"
    "    with open(path + '.tmp', 'w') as f: f.write(str(os.getpid()))\n"
    "    os.replace(path + '.tmp', path)\n"
)
SLEEP = "import time\nready()\ntime.sleep(60)\n"
IGNORE_TERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nready()\n" \
              "time.sleep(60)\n"

_names = itertools.count()


def _noop() -> None:
    pass


def make_launch(tmp_path: Path, code: str, tasks: Sequence[int], *, attempt: int = 0,
                runner: Sequence[str] | None = None) -> Launch:
    program = PID_FILE.format(dir=str(tmp_path)) + code
    return Launch(
        spec=JobSpec(function=_noop, working_dir=str(tmp_path)),
        tasks=list(tasks),
        attempt=attempt,
        log_dir=str(tmp_path),
        runner=list(runner) if runner is not None else [sys.executable, "-c", program],
        name=f"job{next(_names)}",
    )


@pytest.fixture
def scheduler() -> Iterator[ProcessScheduler]:
    made = ProcessScheduler(max_processes=2)
    yield made
    made.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_ended(scheduler: ProcessScheduler, job_id: str) -> JobStatus:
    wait_for(f"{job_id} to end",
             lambda: scheduler.poll([job_id])[job_id].status is Status.ENDED)
    status: JobStatus = scheduler.poll([job_id])[job_id]
    return status


def pid_of(tmp_path: Path, task: int) -> int:
    path = tmp_path / f"pid.{task}"
    wait_for(f"task {task} to start", path.exists)
    return int(path.read_text())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # type: ignore[no-any-return]
    except psutil.NoSuchProcess:
        return True


def new_children(before: set[int]) -> set[int]:
    """Our children that were not there before (multiprocessing's forkserver and
    resource tracker, started by other tests, live as long as the test session)."""
    return set(children_of(os.getpid())) - before


def statuses(report: Mapping[str, JobStatus]) -> list[Status]:
    return [status.status for status in report.values()]


# -- limits and queueing -----------------------------------------------------------


def test_at_most_max_processes_run_and_the_rest_wait(tmp_path: Path,
                                                     scheduler: ProcessScheduler) -> None:
    before = set(children_of(os.getpid()))
    ids = scheduler.launch(make_launch(tmp_path, SLEEP, [0, 1, 2, 3]))
    assert len(ids) == 4 and len(set(ids)) == 4
    wait_for("two to run", lambda: statuses(scheduler.poll(ids)).count(Status.RUNNING) == 2)
    for _ in range(25):  # and it stays that way while they run
        report = scheduler.poll(ids)
        assert statuses(report).count(Status.RUNNING) == 2
        assert statuses(report).count(Status.QUEUED) == 2
        assert len(new_children(before)) <= 2
        time.sleep(0.02)
    running = [job_id for job_id in ids if scheduler.poll(ids)[job_id].status is Status.RUNNING]
    assert running == ids[:2]  # in the order launched
    # One ends: a queued one takes its place, still two at a time.
    os.kill(pid_of(tmp_path, 0), signal.SIGKILL)
    wait_ended(scheduler, ids[0])
    wait_for("a third to run", lambda: (tmp_path / "pid.2").exists())
    report = scheduler.poll(ids)
    assert statuses(report).count(Status.RUNNING) == 2
    assert report[ids[3]].status is Status.QUEUED
    assert not (tmp_path / "pid.3").exists()


def test_an_unknown_id_counts_as_queued(scheduler: ProcessScheduler) -> None:
    assert scheduler.poll(["local.999"]) == {"local.999": JobStatus(Status.QUEUED)}


# -- how processes end -------------------------------------------------------------


def test_a_process_that_exits_0_ends_with_status_0(tmp_path: Path,
                                                   scheduler: ProcessScheduler) -> None:
    (job_id,) = scheduler.launch(make_launch(tmp_path, "pass\n", [0]))
    status = wait_ended(scheduler, job_id)
    assert status.exit_status == 0
    assert "exit status 0" in status.cause
    assert status.resubmit


def test_a_process_that_exits_1_reports_the_last_lines_of_its_log(
        tmp_path: Path, scheduler: ProcessScheduler) -> None:
    code = ("sys.stderr.write('zeroth line\\nfirst line\\nsecond line\\n"
            "Traceback: boom at the end\\n\\n')\n"
            "sys.exit(1)\n")
    launch = make_launch(tmp_path, code, [0])
    (job_id,) = scheduler.launch(launch)
    status = wait_ended(scheduler, job_id)
    assert status.exit_status == 1
    assert "exit status 1" in status.cause
    assert status.cause.endswith("first line | second line | Traceback: boom at the end")
    assert "zeroth line" not in status.cause
    assert status.resubmit
    assert "boom at the end" in Path(launch.log_path(0, "err")).read_text()


def test_a_runner_exit_status_is_explained(tmp_path: Path, scheduler: ProcessScheduler) -> None:
    (job_id,) = scheduler.launch(make_launch(tmp_path, "sys.exit(3)\n", [0]))
    status = wait_ended(scheduler, job_id)
    assert status.exit_status == 3
    assert "could not reach the monitor" in status.cause


def test_a_process_killed_with_sigkill_says_so(tmp_path: Path,
                                               scheduler: ProcessScheduler) -> None:
    (job_id,) = scheduler.launch(make_launch(tmp_path, SLEEP, [0]))
    os.kill(pid_of(tmp_path, 0), signal.SIGKILL)
    status = wait_ended(scheduler, job_id)
    assert status.cause.startswith("killed by SIGKILL")
    assert status.exit_status == -signal.SIGKILL
    assert status.resubmit


def test_the_jobs_stdout_and_stderr_go_to_its_log_files(tmp_path: Path,
                                                        scheduler: ProcessScheduler) -> None:
    code = "print('to out ' + sys.argv[-1]); sys.stderr.write('to err\\n')\n"
    launch = make_launch(tmp_path, code, [4], attempt=2)
    (job_id,) = scheduler.launch(launch)
    wait_ended(scheduler, job_id)
    assert Path(launch.log_path(4, "out")).read_text() == "to out 2\n"  # --attempt 2
    assert Path(launch.log_path(4, "err")).read_text() == "to err\n"


def test_what_a_job_leaves_running_is_killed_when_it_ends(tmp_path: Path,
                                                          scheduler: ProcessScheduler) -> None:
    code = ("import subprocess\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open(os.path.join({str(tmp_path)!r}, 'child'), 'w').write(str(child.pid))\n")
    (job_id,) = scheduler.launch(make_launch(tmp_path, code, [0]))
    status = wait_ended(scheduler, job_id)
    assert status.exit_status == 0
    child = int((tmp_path / "child").read_text())
    wait_for(f"the job's leftover child {child} to be killed", lambda: gone(child))


# -- cancelling ---------------------------------------------------------------------


def test_cancelling_a_queued_job(tmp_path: Path) -> None:
    scheduler = ProcessScheduler(max_processes=1)
    try:
        first, second = scheduler.launch(make_launch(tmp_path, SLEEP, [0, 1]))
        pid_of(tmp_path, 0)
        assert scheduler.poll([second])[second].status is Status.QUEUED
        scheduler.cancel([second])
        status = scheduler.poll([second])[second]
        assert status.status is Status.ENDED
        assert status.cause == "cancelled"
        assert not status.resubmit
        assert scheduler.poll([first])[first].status is Status.RUNNING
        # It never starts, even once the slot is free.
        scheduler.cancel([first])
        wait_ended(scheduler, first)
        time.sleep(0.2)
        assert not (tmp_path / "pid.1").exists()
    finally:
        scheduler.close()


@pytest.mark.parametrize("code", [SLEEP, IGNORE_TERM], ids=["obeys-sigterm", "ignores-sigterm"])
def test_cancelling_a_running_job_ends_its_process(tmp_path: Path, scheduler: ProcessScheduler,
                                                   code: str) -> None:
    (job_id,) = scheduler.launch(make_launch(tmp_path, code, [0]))
    pid = pid_of(tmp_path, 0)
    scheduler.cancel([job_id])
    wait_for(f"process {pid} to go", lambda: gone(pid))
    status = wait_ended(scheduler, job_id)
    assert status.cause == "cancelled"
    assert not status.resubmit
    expected = signal.SIGTERM if code == SLEEP else signal.SIGKILL
    assert status.exit_status == -expected


def test_cancelling_an_ended_job_changes_nothing(tmp_path: Path,
                                                 scheduler: ProcessScheduler) -> None:
    (job_id,) = scheduler.launch(make_launch(tmp_path, "sys.exit(1)\n", [0]))
    before = wait_ended(scheduler, job_id)
    scheduler.cancel([job_id, "local.12345"])
    assert scheduler.poll([job_id])[job_id] == before


def test_a_stopped_process_is_suspended_until_it_is_continued(
        tmp_path: Path, scheduler: ProcessScheduler) -> None:
    (job_id,) = scheduler.launch(make_launch(tmp_path, SLEEP, [0]))
    pid = pid_of(tmp_path, 0)
    assert scheduler.poll([job_id])[job_id] == JobStatus(Status.RUNNING)
    os.kill(pid, signal.SIGSTOP)
    wait_for("the stop to show", lambda: scheduler.poll([job_id])[job_id].status
             is Status.SUSPENDED)
    os.kill(pid, signal.SIGCONT)
    wait_for("the job to go on", lambda: scheduler.poll([job_id])[job_id].status
             is Status.RUNNING)


# -- closing, failures to start, poll_soon ------------------------------------------


def test_close_leaves_no_child_process(tmp_path: Path) -> None:
    before = set(children_of(os.getpid()))
    scheduler = ProcessScheduler(max_processes=2)
    ids = scheduler.launch(make_launch(tmp_path, IGNORE_TERM, [0, 1, 2]))
    pids = [pid_of(tmp_path, 0), pid_of(tmp_path, 1)]
    assert new_children(before) == set(pids)
    scheduler.close()
    assert new_children(before) == set()
    assert all(gone(pid) for pid in pids)
    assert not (tmp_path / "pid.2").exists()  # the queued one never started
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.launch(make_launch(tmp_path, SLEEP, [3]))
    assert len(ids) == 3


def test_an_interpreter_that_does_not_exist_ends_the_job(tmp_path: Path,
                                                         scheduler: ProcessScheduler) -> None:
    missing = str(tmp_path / "no-such-python")
    ids = scheduler.launch(make_launch(tmp_path, "", [0, 1], runner=[missing, "-c", "pass"]))
    for job_id in ids:
        status = wait_ended(scheduler, job_id)
        assert status.cause.startswith("could not start the runner")
        assert missing in status.cause


def test_a_log_directory_that_cannot_be_written_fails_the_job_not_the_scheduler(
        tmp_path: Path, scheduler: ProcessScheduler) -> None:
    gone_dir = tmp_path / "removed"
    (bad,) = scheduler.launch(Launch(
        spec=JobSpec(function=_noop, working_dir=str(tmp_path)), tasks=[0], attempt=0,
        log_dir=str(gone_dir), runner=[sys.executable, "-c", "pass"],
    ))
    (good,) = scheduler.launch(make_launch(tmp_path, "pass\n", [1]))
    # Both are settled well within 10 s when the scheduler works (it ticks every 20 ms).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        report = scheduler.poll([bad, good])
        if all(status.status is Status.ENDED for status in report.values()):
            break
        time.sleep(0.05)
    report = scheduler.poll([bad, good])
    assert report[bad].status is Status.ENDED, report
    assert str(gone_dir) in report[bad].cause or "log" in report[bad].cause
    assert report[good].status is Status.ENDED and report[good].exit_status == 0, report


def test_poll_soon_is_called_when_a_process_ends(tmp_path: Path,
                                                 scheduler: ProcessScheduler) -> None:
    called = threading.Event()
    scheduler.poll_soon = called.set
    (job_id,) = scheduler.launch(make_launch(tmp_path, SLEEP, [0]))
    pid = pid_of(tmp_path, 0)
    called.clear()  # only the end counts here
    os.kill(pid, signal.SIGKILL)
    assert called.wait(WAIT)
    assert scheduler.poll([job_id])[job_id].status is Status.ENDED


def test_poll_soon_is_called_when_a_process_cannot_start(tmp_path: Path,
                                                         scheduler: ProcessScheduler) -> None:
    called = threading.Event()
    scheduler.poll_soon = called.set
    scheduler.launch(make_launch(tmp_path, "", [0], runner=[str(tmp_path / "nothing")]))
    assert called.wait(WAIT)
