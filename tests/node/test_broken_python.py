"""A job whose Python cannot start (a broken PYTHONHOME) dies with the end of its
stderr as its cause, and the failure names the folder where its logs were kept, in
JobException and in a WARNING. Local backend, runner mode."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gridmap_core import Job, JobException, JobState
from gridmap_core.node.runner import describe_exit
from tests.support import monitored

pytestmark = pytest.mark.timeout(120)

BROKEN_HOME = "/nonexistent/gridmap-test-python-home"


def test_a_job_whose_python_cannot_start_says_why(caplog: pytest.LogCaptureFixture) -> None:
    jobs = [Job(monitored.sleep_for, [0], name="nohome", add_env={"PYTHONHOME": BROKEN_HOME})]
    with caplog.at_level(logging.WARNING, logger="gridmap_core.map.monitor"), \
            monitored.runner_executor({"NUM_RESUBMITS": 0}) as executor:
        with pytest.raises(JobException) as info:
            executor.run_jobs(jobs)
        log_dir = str(getattr(executor.session, "log_dir", ""))
    assert jobs[0].state is JobState.DEAD
    cause = jobs[0].cause_of_death
    assert "exit status 1" in cause
    assert "Fatal Python error" in cause and "No module named 'encodings'" in cause, cause
    assert f"PYTHONHOME = '{BROKEN_HOME}'" in cause, cause
    assert "<no Python frame>" not in cause
    assert log_dir and os.path.isdir(log_dir)
    assert any(name.endswith(".err") for name in os.listdir(log_dir))
    assert f"kept in {log_dir}" in str(info.value)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(log_dir in message for message in warnings), warnings


def test_a_crash_shows_its_last_lines_and_the_runner_its_own_last_line(tmp_path: Path) -> None:
    crash = tmp_path / "crash.err"
    crash.write_text("Traceback (most recent call last):\n"
                     '  File "/opt/site.py", line 3, in <module>\n'
                     "    import missing_thing\n"
                     "ModuleNotFoundError: No module named 'missing_thing'\n\n")
    assert describe_exit(1, err_log=str(crash)) == (
        "the runner ended without a result (exit status 1); its stderr ends: "
        'File "/opt/site.py", line 3, in <module> | import missing_thing | '
        "ModuleNotFoundError: No module named 'missing_thing'")
    runner = tmp_path / "runner.err"
    runner.write_text("gridmap runner 2026-01-01 10:00:00,000 INFO task 3 attempt 0\n"
                      "gridmap runner 2026-01-01 10:00:09,000 ERROR cannot reach the monitor "
                      "at tcp://head:5555\n")
    assert describe_exit(3, err_log=str(runner)) == (
        "the runner could not reach the monitor (exit status 3); its log ends: "
        "ERROR cannot reach the monitor at tcp://head:5555")
