"""``gridmap maps``, ``status``, ``logs``, ``cancel`` and ``clean`` on maps made on disk
as their monitors leave them."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import pytest

from gridmap_core.cli import main as gridmap
from gridmap_core.journal.store import JOURNAL, Journal
from gridmap_core.wire import beacon
from tests.journal import make_map

HOUR = 3600.0


def test_maps_lists_one_line_per_map(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    make_map(tmp_path, "a1111", name="squares",
             states=["succeeded"] * 3 + ["failed", "running"], created=time.time() - HOUR)
    make_map(tmp_path, "b2222", name="cubes", state="succeeded", submitter="gone")
    assert gridmap(["maps", "--temp-dir", str(tmp_path)]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.split()[:4] == ["a1111", "squares", "running", "1h"]
    assert "local" in first and "submitter alive" in first
    assert first.endswith("3 succeeded, 1 failed, 1 running")
    assert second.split()[:3] == ["b2222", "cubes", "succeeded"]
    assert "submitter gone" in second
    assert gridmap(["maps", "--temp-dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [one["id"] for one in listed] == ["a1111", "b2222"]
    assert listed[0]["counts"] == {"succeeded": 3, "failed": 1, "running": 1}
    assert listed[0]["submitter_alive"] is True and listed[1]["submitter_alive"] is False


def test_maps_with_none_says_where_it_looked(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert gridmap(["maps", "--temp-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no maps in {tmp_path}\n"


def test_status_shows_counts_and_failures_with_causes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_map(tmp_path, "c3333", name="squares", states=["succeeded", "dead", "failed"],
             monitor=5)
    assert gridmap(["status", "c33", "--temp-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "map c3333 (squares): running, backend local" in out
    assert "monitor: zmq tcp://10.0.0.1:5000 (pid 4194311 on somewhere), last touched" in out
    assert "3 jobs: 1 succeeded, 1 failed, 1 dead" in out
    lines = out.splitlines()
    dead = next(line for line in lines if line.startswith("  1 "))
    assert "squares-1  dead  2 attempts  node2: job 1 ran out of memory" in dead
    assert "  2  squares-2  failed  1 attempt  node1: raised ValueError: bad input 2" in lines
    assert lines.index(dead) < next(i for i, line in enumerate(lines)
                                    if line.startswith("  2 "))  # the dead first
    assert gridmap(["status", "squares", "--temp-dir", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["id"] == "c3333" and status["counts"]["dead"] == 1
    assert status["monitor"]["address"] == "tcp://10.0.0.1:5000"
    assert status["failures"][0] == {
        "position": 1, "name": "squares-1", "state": "dead",
        "cause": "job 1 ran out of memory", "kind": "out of memory", "host": "node2",
        "attempts": 2, "job_id": "100.2", "error": None}
    assert status["failures"][1]["error"].startswith("Traceback (most recent call last)")


def test_status_of_a_map_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gridmap(["status", "nosuch", "--temp-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "'nosuch'" in err and str(tmp_path) in err and "gridmap maps" in err


def test_status_of_a_damaged_journal_names_it_and_prints_what_it_can(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_map(tmp_path, "d4444", states=["succeeded"] * 200)
    (directory / "logs").mkdir()
    (directory / "logs" / "squares.0.0.out").write_text("hello\n")
    journal = directory / JOURNAL
    journal.write_bytes(journal.read_bytes()[:len(journal.read_bytes()) // 2])
    assert gridmap(["status", str(directory)]) == 1
    captured = capsys.readouterr()
    assert str(journal) in captured.err
    assert "its journal cannot be read" in captured.out
    assert "log files: 1" in captured.out and "scheduler jobs launched: 200" in captured.out
    assert "submitter.json" in captured.out
    assert gridmap(["status", str(directory), "--json"]) == 1
    status = json.loads(capsys.readouterr().out)
    assert str(journal) in status["problem"] and status["log_files"] == 1


def test_logs_prints_a_jobs_stdout_and_stderr(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_map(tmp_path, "e5555", states=["succeeded", "dead", "failed"])
    logs = directory / "logs"
    logs.mkdir()
    # Task 1 ran in an array over tasks 0-2 (element 2), then alone as attempt 1.
    (logs / "squares.0-2.2.0.out").write_text("first try\n")
    (logs / "squares.0-2.2.0.err").write_text("Killed\n")
    (logs / "squares.1.1.out").write_text("second try\n")
    (logs / "squares.1.1.err").write_text("MemoryError\n")
    (logs / "squares.0-2.1.0.out").write_text("task 0\n")
    (logs / "squares.0-2.3.0.out").write_text("task 2\n")
    assert gridmap(["logs", "e5555", "1", "--temp-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if not line.startswith("==>")] == [
        "first try", "Killed", "second try", "MemoryError"]
    assert "stderr of job 1 (squares-1), attempt 1: " in out and "squares.1.1.err" in out
    assert "stdout of job 1 (squares-1), attempt 0, scheduler job 100.2: " in out
    assert gridmap(["logs", "e5555", "squares-2", "--temp-dir", str(tmp_path)]) == 0
    assert "task 2" in capsys.readouterr().out


def test_logs_of_a_job_a_runner_of_another_took_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_map(tmp_path, "e6666", states=["succeeded", "succeeded", "queued"])
    with contextlib.closing(Journal.open(directory, readonly=False)) as journal:
        # Job 0's runner (scheduler job 100.1), its own job done, takes job 2 on.
        journal.launched([(2, 1, "100.1")])
        journal.started(2, 1, "100.1", "node1")
        journal.flush()
    logs = directory / "logs"
    logs.mkdir()
    (logs / "squares.0-2.1.0.out").write_text("job 0 output\njob 2 output\n")
    assert gridmap(["logs", str(directory), "2"]) == 0
    out = capsys.readouterr().out
    assert "stdout of job 2 (squares-2), attempt 1, scheduler job 100.1, in the runner " \
        "launched for job 0" in out
    assert out.splitlines()[1:] == ["job 0 output", "job 2 output"]


def test_logs_says_when_there_are_none(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    make_map(tmp_path, "f6666", states=["succeeded", "queued"])
    assert gridmap(["logs", "f6666", "0", "--temp-dir", str(tmp_path)]) == 1
    assert "no logs of job 0" in capsys.readouterr().err
    assert gridmap(["logs", "f6666", "1", "--temp-dir", str(tmp_path)]) == 1
    assert "it has not started yet" in capsys.readouterr().err
    assert gridmap(["logs", "f6666", "7", "--temp-dir", str(tmp_path)]) == 1
    assert "has no job '7'" in capsys.readouterr().err


def _recording_cancel(tmp_path: Path) -> tuple[list[str], Path]:
    """A cancel command that records each call's arguments, a line per call."""
    calls = tmp_path / "calls"
    script = tmp_path / "fake_cancel.py"
    script.write_text("import json, sys\n"
                      f"with open({str(calls)!r}, 'a') as handle:\n"
                      "    handle.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    return [sys.executable, str(script)], calls


def test_cancel_an_unserved_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command, calls = _recording_cancel(tmp_path)
    directory = make_map(tmp_path, "g7777", states=["succeeded", "running", "queued",
                                                    "running", "succeeded", "succeeded"],
                         submitter="gone", monitor=HOUR, cancel=command)
    with contextlib.closing(Journal.open(directory, readonly=False)) as journal:
        # Job 4's runner (scheduler job 100.5), its own job done, took job 2 on.
        journal.launched([(2, 1, "100.5")])
        journal.started(2, 1, "100.5", "node1")
        journal.flush()
    assert gridmap(["cancel", "g7777", "--temp-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # One call, with the jobs that may still run: not those of jobs 0 and 5, which
    # ended; that of job 4, which ended too, but whose runner took job 2 on; job 2's
    # own, which no task holds any more.
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [
        ["100.2", "100.3", "100.4", "100.5"]]
    assert beacon.end_mark(directory) == beacon.CANCELLED
    with contextlib.closing(Journal.open(directory)) as journal:
        assert journal.map_record().state == "cancelled"
        assert journal.counts() == {"succeeded": 3, "cancelled": 3}
    assert "wrote the cancelled mark" in out and "4 scheduler job(s)" in out
    assert "3 unfinished job(s) cancelled" in out


def test_cancel_a_served_map_leaves_its_journal_to_its_monitor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command, calls = _recording_cancel(tmp_path)
    directory = make_map(tmp_path, "h8888", states=["running", "running"], cancel=command)
    assert gridmap(["cancel", str(directory)]) == 0
    assert "a monitor serves the map" in capsys.readouterr().out
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [
        ["100.1", "100.2"]]
    assert (directory / beacon.CANCELLED).exists()
    with contextlib.closing(Journal.open(directory)) as journal:
        assert journal.map_record().state == "running"
        assert journal.counts() == {"running": 2}


def test_clean_removes_maps_whose_time_is_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDMAP_MAP_KEEP_TIME", str(HOUR))
    monkeypatch.setenv("GRIDMAP_MONITOR_GRACE", "600")
    now = time.time()
    old = make_map(tmp_path, "i1", state="succeeded", submitter="gone", ended=now - 2 * HOUR)
    recent = make_map(tmp_path, "i2", state="failed", submitter="gone", ended=now - 60)
    (recent / "logs").mkdir()
    attachable = make_map(tmp_path, "i3", submitter="gone", monitor=60)
    living = make_map(tmp_path, "i4")
    assert gridmap(["clean", "--temp-dir", str(tmp_path), "--dry-run"]) == 0
    assert f"would remove {old}" in capsys.readouterr().out and old.exists()
    assert gridmap(["clean", "--temp-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"removed {old}" in out and not old.exists()
    assert recent.exists() and attachable.exists() and living.exists()
    assert out.splitlines()[-1].startswith("3 session directories left")
    # --logs: the logs an ended map kept go; its journal stays for MAP_KEEP_TIME.
    assert gridmap(["clean", "--temp-dir", str(tmp_path), "--logs"]) == 0
    assert f"removed {recent / 'logs'}" in capsys.readouterr().out
    assert not (recent / "logs").exists() and (recent / JOURNAL).exists()


def test_attach_and_watch_take_a_map(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gridmap(["attach"])
    with pytest.raises(SystemExit):
        gridmap(["watch", "x", "--address"])
    assert "the following arguments are required: map" in capsys.readouterr().err
