"""The Grid Engine scheduler adopting jobs that another process launched: the ends of
such jobs read from their accounting records (qacct), and on the single-node cluster,
jobs of a submitter killed with SIGKILL polled, deleted and read back in a new
scheduler of this process (tests/backends/sge/adopt_steps.py is that submitter: one
DRMAA session per process)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gridmap_sge import scheduler as sge_scheduler
from gridmap_sge.accounting import DeleteError, Record, describe_record, parse_qacct

from gridmap_core.backend.drmaa import DrmaaConnection
from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.model.death import DeathKind
from tests.backends.sge.fakes import Clock, Harness
from tests.support.killed_submitter import killed_submitter

pytestmark = pytest.mark.timeout(180)

WAIT = 90.0

# qacct -j 923 (abridged): element 1 deleted while it ran, 2 killed with kill -9 on
# its node, 3 exited with status 3.
QACCT = """\
==============================================================
qname        all.q
hostname     vm
jobnumber    923
taskid       3
failed       0
exit_status  3
ru_wallclock 0s
==============================================================
qname        all.q
hostname     vm
jobnumber    923
taskid       1
failed       100 : assumedly after job
exit_status  137                  (Killed)
==============================================================
qname        all.q
hostname     vm
jobnumber    923
taskid       2
failed       0
exit_status  137                  (Killed)
==============================================================
qname        all.q
hostname     node2
jobnumber    924
taskid       undefined
failed       26   : opening input/output file
exit_status  0
"""


def test_accounting_records_are_read_by_job_id() -> None:
    records = parse_qacct(QACCT)
    assert records == {
        "923.3": Record("923.3", 0, "", 3, "vm"),
        "923.1": Record("923.1", 100, "assumedly after job", 137, "vm"),
        "923.2": Record("923.2", 0, "", 137, "vm"),
        "924": Record("924", 26, "opening input/output file", 0, "node2"),
    }


def test_a_later_record_of_the_same_job_wins() -> None:
    again = QACCT + "=" * 62 + "\njobnumber 923\ntaskid 3\nfailed 0\nexit_status 0\n"
    assert parse_qacct(again)["923.3"].exit_status == 0


def test_endings_from_accounting_records() -> None:
    records = parse_qacct(QACCT)
    exited = describe_record(records["923.3"])
    assert exited.status is Status.ENDED and exited.exit_status == 3 and exited.host == "vm"
    killed = describe_record(records["923.2"])
    assert killed.kind is DeathKind.KILLED and "SIGKILL" in killed.cause and killed.resubmit
    ended_by_grid_engine = describe_record(records["923.1"])
    assert ended_by_grid_engine.kind is DeathKind.KILLED
    assert not ended_by_grid_engine.resubmit  # deleted, or over a limit it would hit again
    assert "qdel" in ended_by_grid_engine.cause and "SIGKILL" in ended_by_grid_engine.cause
    not_started = describe_record(records["924"])
    assert not_started.kind is DeathKind.SCHEDULER_ERROR and not_started.host == "node2"
    assert "could not start it (failed 26" in not_started.cause


# -- the scheduler over fakes (tests/backends/sge/fakes.py) ------------------------------


@pytest.fixture
def accounting(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Record]]:
    """qacct's records by job number, as a test sets them; what was asked is recorded
    under "asked"."""
    records: dict[str, dict[str, Record]] = {"asked": {}}

    def read(number: str) -> dict[str, Record]:
        records["asked"][number] = Record(number)
        return dict(records.get(number, {}))

    monkeypatch.setattr(sge_scheduler, "read_accounting", read)
    return records


def test_adopted_jobs_are_read_from_qstat_then_from_accounting(
        harness: Harness, clock: Clock, accounting: dict[str, dict[str, Record]]) -> None:
    harness.scheduler.adopt(["923.1", "923.2", "924"])
    harness.qstat.jobs = {("923", 1): "r", ("923", 2): "qw"}
    harness.qstat.places = {("923", 1): "all.q@vm"}
    report = harness.poll(["923.1", "923.2", "924"])
    assert report["923.1"] == JobStatus(Status.RUNNING, host="vm")
    assert report["923.2"].status is Status.QUEUED
    assert "924" not in report and set(accounting["asked"]) == {"924"}
    # 923 ended while nobody watched it; qacct answers for its whole array at once.
    harness.qstat.jobs = {}
    accounting["923"] = {key: value for key, value in parse_qacct(QACCT).items()
                         if key.startswith("923.")}
    report = harness.poll(["923.1", "923.2"])
    assert report["923.1"].kind is DeathKind.KILLED and not report["923.1"].resubmit
    assert report["923.2"].kind is DeathKind.KILLED and report["923.2"].resubmit
    assert harness.poll(["923.1", "923.2"]) == {}  # reported once


def test_an_adopted_job_without_a_record_is_unknown_after_a_while(
        harness: Harness, clock: Clock, accounting: dict[str, dict[str, Record]]) -> None:
    harness.scheduler.adopt(["925"])
    assert harness.poll(["925"]) == {}
    clock.now += 31
    status = harness.poll(["925"])["925"]
    assert status.status is Status.UNKNOWN and status.kind is DeathKind.VANISHED
    assert "no accounting record" in status.cause


def test_adopted_jobs_are_deleted_with_qdel_and_their_end_is_not_news(
        harness: Harness, monkeypatch: pytest.MonkeyPatch,
        accounting: dict[str, dict[str, Record]]) -> None:
    deleted: list[list[str]] = []
    monkeypatch.setattr(sge_scheduler, "delete", lambda targets: deleted.append(list(targets)))
    [own] = harness.launch([0])
    harness.scheduler.adopt(["923.1", "923.2", "926.1", "not-an-id"])
    harness.scheduler.cancel(["923.1", "923.2", "926.1", own])
    assert deleted == [["923", "926.1"]]  # one qdel; a whole array by its number
    assert harness.connection.terminated == [own]  # its own jobs through DRMAA
    accounting["923"] = {key: value for key, value in parse_qacct(QACCT).items()
                         if key.startswith("923.")}
    assert harness.poll(["923.1", "923.2"]) == {}


def test_a_refused_qdel_is_asked_again_at_the_next_cancel(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(targets: list[str]) -> None:
        raise DeleteError("qdel exited 1: denied")

    monkeypatch.setattr(sge_scheduler, "delete", refuse)
    harness.scheduler.adopt(["927.1"])
    with pytest.raises(DeleteError):
        harness.scheduler.cancel(["927.1"])
    deleted: list[list[str]] = []
    monkeypatch.setattr(sge_scheduler, "delete", lambda targets: deleted.append(list(targets)))
    harness.scheduler.cancel(["927.1"])
    assert deleted == [["927.1"]]
    assert Path(harness.scheduler.cancel_command()[0]).name == "qdel"


# -- on the cluster ---------------------------------------------------------------------


def qstat_lists(ids: list[str]) -> list[str]:
    from gridmap_sge.qstat import run_qstat

    snapshot = run_qstat(user="*")
    return [job_id for job_id in ids if snapshot.state(job_id) is not None]


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_jobs_of_a_killed_submitter_are_adopted_deleted_and_read_back(
        sge_cluster: str, tmp_path: Path) -> None:
    from gridmap_sge.native import NativeOptions
    from gridmap_sge.scheduler import SgeScheduler

    with killed_submitter([sys.executable, "-m", "tests.backends.sge.adopt_steps",
                           str(tmp_path)], os.environ, "qdel") as launched:
        running, failing = launched["running"], launched["failing"]
        ids = running + failing
        assert qstat_lists(running) == running
        wait_for("the failing job to end", lambda: not qstat_lists(failing))

        scheduler = SgeScheduler(DrmaaConnection.acquire(), NativeOptions())
        try:
            scheduler.adopt(ids)
            first = scheduler.poll(running)
            assert {first[job_id].status for job_id in running} <= \
                {Status.QUEUED, Status.RUNNING}, first
            scheduler.cancel(running)  # both elements: the whole array, one qdel
            wait_for("the adopted jobs to be deleted", lambda: not qstat_lists(running))
            ended: dict[str, JobStatus] = {}

            def failing_reported() -> bool:
                report = scheduler.poll(ids)
                assert not set(report) & set(running), report  # cancelled: not news
                ended.update(report)
                return bool(ended)

            wait_for("the ended job's report", failing_reported)
            status = ended[failing[0]]
            assert status.status is Status.ENDED and status.exit_status == 1, status
            assert "exit status 1" in status.cause and status.host, status
            assert Path(scheduler.cancel_command()[0]).name == "qdel"
        finally:
            scheduler.close()
        assert not qstat_lists(ids)  # nothing left queued or running
