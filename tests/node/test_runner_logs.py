"""A runner's log files (its stdout and stderr: what the job printed, the tail of its
errors) are readable by their owner alone, whatever the umask they were made with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gridmap_core import Job, JobException
from gridmap_core.wire.exits import EXIT_UNREACHABLE
from tests.node.test_runner import MAP, ROOT, free_port
from tests.support import monitored
from tests.support.monitored import runner_executor


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_runner_makes_its_log_files_private(tmp_path: Path, key_file: Path) -> None:
    out, err = tmp_path / "runner.out", tmp_path / "runner.err"
    for path in (out, err):
        path.touch()
        path.chmod(0o644)  # as a scheduler makes them under umask 022
    with open(out, "ab") as stdout, open(err, "ab") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "gridmap_core.node.runner", "--address",
             f"tcp://127.0.0.1:{free_port()}", "--map", MAP, "--key-file", str(key_file),
             "--task", "0", "--give-up", "1"],
            stdout=stdout, stderr=stderr, cwd=ROOT, timeout=60)
    assert done.returncode == EXIT_UNREACHABLE, err.read_text()
    assert (_mode(out), _mode(err)) == (0o600, 0o600)


def test_the_logs_a_map_keeps_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor, \
                pytest.raises(JobException):
            executor.run_jobs([Job(monitored.raise_value_error, [1])])
    finally:
        os.umask(old)
    logs = [path for path in tmp_path.glob("gridmap-*/logs/*") if path.is_file()]
    assert logs, "the failed job's logs are kept"
    assert {path.name: _mode(path) for path in logs} == {path.name: 0o600 for path in logs}
