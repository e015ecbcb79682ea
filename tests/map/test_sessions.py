"""Session directories (key, logs) are never left behind: a map that fails while it
starts removes its own, and the next map (or ``gridmap clean``) removes those of maps
whose submitting process on this host is gone, never those of running maps."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from gridmap_core import Job
from gridmap_core.cli import main as gridmap
from gridmap_core.journal.store import JOURNAL
from gridmap_core.map.sessions import SUBMITTER, mark_ended, record_submitter
from tests import PROJECT_ROOT
from tests.support import monitored
from tests.support.monitored import runner_executor

REPO = PROJECT_ROOT


def _sessions(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.name.startswith("gridmap-"))


@pytest.mark.parametrize("setting", [{"MONITOR_PORTS": "99999-99998"},
                                     {"TRANSPORT": "carrier-pigeon"}])
def test_a_map_that_cannot_start_its_monitor_leaves_nothing(
        setting: dict[str, str], tmp_path: Path) -> None:
    with runner_executor({**setting, "DEFAULT_TEMP_DIR": str(tmp_path)}) as executor, \
            pytest.raises(Exception):  # noqa: B017 - the transport's own error
        list(executor.map(monitored.sleep_for, [0]))
    assert _sessions(tmp_path) == []


def _fake_session(root: Path, name: str, **record: object) -> Path:
    path = root / f"gridmap-{name}"
    (path / "logs").mkdir(parents=True, mode=0o700)
    (path / "key").write_text("0" * 64)
    (path / SUBMITTER).write_text(json.dumps(record))
    return path


def test_the_next_map_keeps_a_killed_submitters_map_while_it_can_be_attached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = tmp_path / "started"
    script = tmp_path / "submit.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.support import monitored
        from tests.support import session_jobs
        with monitored.runner_executor({{"DEFAULT_TEMP_DIR": {str(tmp_path)!r}}}) as executor:
            list(executor.map(session_jobs.touch_then_sleep, [{str(started)!r}], [60]))
    """))
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None, "the submitting process ended"
            assert time.monotonic() < deadline, "its job never started"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (left,) = _sessions(tmp_path)
    assert (left / "key").exists() and (left / SUBMITTER).exists()
    assert (left / JOURNAL).exists()
    # The next map's own directory goes as it ends.
    monkeypatch.setenv("GRIDMAP_MAP_KEEP_TIME", "0")
    monkeypatch.setenv("GRIDMAP_MONITOR_GRACE", "600")
    with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor:
        assert list(executor.map(monitored.sleep_for, [0])) == [0]
    assert _sessions(tmp_path) == [left]  # gridmap attach can still take it on
    # Past MONITOR_GRACE the map is abandoned, and past MAP_KEEP_TIME (0) it goes.
    monkeypatch.setenv("GRIDMAP_MONITOR_GRACE", "0.001")
    with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor:
        assert list(executor.map(monitored.sleep_for, [0])) == [0]
    assert _sessions(tmp_path) == []


def test_sessions_of_running_maps_other_hosts_and_kept_logs_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDMAP_MAP_KEEP_TIME", "0")  # the map's own directory goes
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = psutil.Process(alive.pid).create_time()
        here = socket.gethostname()
        running = _fake_session(tmp_path, "running", host=here, pid=alive.pid,
                                started=start, ended=False)
        elsewhere = _fake_session(tmp_path, "elsewhere", host=f"not-{here}", pid=1,
                                  started=0.0, ended=False)
        kept = _fake_session(tmp_path, "kept", host=here, pid=2**22 + 7, started=1.0,
                             ended=True)
        unrecorded = tmp_path / "gridmap-unrecorded"
        unrecorded.mkdir()  # a map that is making it right now, or an older gridmap's
        # A dead submitter, and one whose pid another process has taken since.
        dead = _fake_session(tmp_path, "dead", host=here, pid=2**22 + 7, started=1.0,
                             ended=False)
        reused = _fake_session(tmp_path, "reused", host=here, pid=alive.pid,
                               started=start - 3600, ended=False)
        with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor:
            assert list(executor.map(monitored.sleep_for, [0])) == [0]
        assert _sessions(tmp_path) == sorted([running, elsewhere, kept, unrecorded])
        assert not dead.exists() and not reused.exists()
    finally:
        alive.kill()
        alive.wait()


def test_a_kept_session_is_marked_ended_and_not_taken_for_abandoned(tmp_path: Path) -> None:
    failing = Job(monitored.raise_value_error, [1])  # a failed job keeps its logs
    with runner_executor({"DEFAULT_TEMP_DIR": str(tmp_path)}) as executor:
        executor.run_jobs([failing], on_failure="return")
    (kept,) = _sessions(tmp_path)
    record = json.loads((kept / SUBMITTER).read_text())
    assert record["ended"] is True and record["pid"] == os.getpid()
    assert not (kept / "key").exists()


def test_gridmap_clean_removes_abandoned_sessions_and_with_logs_ended_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    here = socket.gethostname()
    dead = _fake_session(tmp_path, "dead", host=here, pid=2**22 + 7, started=1.0)
    kept = tmp_path / "gridmap-kept"
    kept.mkdir()
    record_submitter(kept)
    mark_ended(kept)
    mine = tmp_path / "gridmap-mine"
    mine.mkdir()
    record_submitter(mine)  # this process: a running map
    assert gridmap(["clean", "--temp-dir", str(tmp_path), "--dry-run"]) == 0
    assert dead.exists()
    assert str(dead) in capsys.readouterr().out
    assert gridmap(["clean", "--temp-dir", str(tmp_path)]) == 0
    assert _sessions(tmp_path) == sorted([kept, mine])
    assert gridmap(["clean", "--temp-dir", str(tmp_path), "--logs"]) == 0
    assert _sessions(tmp_path) == [mine]
    out = capsys.readouterr().out
    assert f"removed {kept}" in out
