"""A Grid Engine job whose node could not open its log file ("failed 26: opening
input/output file" in its accounting record): with the log directory on this host, the
cause names the node (from qacct) and says that temp_dir must be shared, and the job is
not resubmitted: every job of the map would fail the same way."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gridmap_sge.endings import accounting_host, describe_ending

from gridmap_core.backend.drmaa import Ending
from gridmap_core.backend.scheduler import Status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from gridmap_core.wire.exits import EXIT_NOT_SHARED

pytestmark = pytest.mark.timeout(30)

FAILED = (26, "opening input/output file")
# qacct -j 57 of a two-element array, as the three-node test cell printed it (cut).
QACCT = """\
==============================================================
qname        all.q
hostname     mn-sge2
jobnumber    57
taskid       2
failed       26  : opening input/output file
==============================================================
qname        all.q
hostname     mn-sge1
jobnumber    57
taskid       1
failed       26  : opening input/output file
"""


def test_a_log_directory_the_node_could_not_open_ends_the_job_with_what_to_do(
        tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    asked: list[str] = []

    def host_of(job_id: str) -> str:
        asked.append(job_id)
        return "mn-sge2"

    status = describe_ending(Ending("57.2", aborted=True), Resources(),
                             str(logs / "gridmap_job.0-1.2.0.err"), FAILED, host_of)
    assert asked == ["57.2"]
    assert status.status is Status.ENDED and not status.resubmit
    assert status.kind is DeathKind.SCHEDULER_ERROR
    assert "failed 26: opening input/output file" in status.cause
    assert f"log directory {logs} could not be opened on host mn-sge2" in status.cause
    assert "temp_dir must be on storage that the nodes share" in status.cause
    assert "DEFAULT_TEMP_DIR" in status.cause
    assert status.host == "mn-sge2"  # where the monitor may look for a failed node


def test_without_a_log_directory_here_it_may_be_the_nodes_own_trouble(
        tmp_path: Path) -> None:
    status = describe_ending(Ending("57.2", aborted=True), Resources(),
                             str(tmp_path / "gone" / "x.err"), FAILED, lambda job_id: "")
    assert status.cause.endswith("the job's log file could not be opened on its node")
    assert status.resubmit and status.kind is DeathKind.SCHEDULER_ERROR


def test_the_host_is_read_from_the_latest_accounting_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def qacct(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, QACCT, "")

    monkeypatch.setattr(subprocess, "run", qacct)
    assert accounting_host("57.1") == "mn-sge1"
    assert calls == [["qacct", "-j", "57", "-t", "1"]]

    def missing(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError("qacct")

    monkeypatch.setattr(subprocess, "run", missing)
    assert accounting_host("57") == ""


def test_a_runner_that_did_not_see_temp_dir_is_not_resubmitted(tmp_path: Path) -> None:
    err_log = tmp_path / "job.err"
    err_log.write_text("gridmap runner 2026-01-01 10:00:00,000 ERROR the map's session "
                       "directory /tmp/x/gridmap-1 does not exist on this node (mn-sge3)\n")
    status = describe_ending(Ending("5", exited=True, exit_status=EXIT_NOT_SHARED),
                             Resources(), str(err_log))
    assert not status.resubmit and status.kind is DeathKind.RUNNER_FAILED
    assert "temp_dir is not shared" in status.cause and "mn-sge3" in status.cause
