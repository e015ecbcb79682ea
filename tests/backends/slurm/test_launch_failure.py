"""A Slurm job whose log files its node could not open: slurmd reports its error code
(ESLURMD_IO_ERROR, 4021) in place of a wait status, which reads as signal 53. The
cause says which node, that the log directory is not there, and that temp_dir must be
shared; it is not resubmitted. The node comes from squeue, sacct or the completion log."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_slurm.states import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    Record,
    describe,
    parse_jobcomp,
    parse_sacct,
    parse_squeue,
)

from gridmap_core.backend.scheduler import Status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from gridmap_core.wire.exits import EXIT_NOT_SHARED
from tests.backends.slurm.fakes import jobcomp_line

pytestmark = pytest.mark.timeout(30)

# As the three-node test cluster printed them for a map whose temp_dir was in /tmp.
SQUEUE = "104_2|FAILED|JobLaunchFailure|4021|mn-slurm2|"
JOBCOMP = jobcomp_line(104, "FAILED", "0:53", array=(104, 2)).replace("NodeList=vm",
                                                                      "NodeList=mn-slurm2")


def test_the_tools_are_asked_for_the_node_and_each_parser_reads_it() -> None:
    assert SQUEUE_FORMAT.endswith(",NodeList:|") and SACCT_FIELDS.endswith(",NodeList")
    assert parse_squeue(SQUEUE)["104_2"].node == "mn-slurm2"
    assert parse_squeue("104_3|PENDING|Priority|0|(null)|")["104_3"].node == ""
    assert parse_squeue("104_4|RUNNING|None|0|")["104_4"].node == ""  # an older format
    assert parse_sacct("104_2|FAILED|0:53|JobLaunchFailure|mn-slurm2")["104_2"].node == \
        "mn-slurm2"
    assert parse_sacct("105|PENDING|0:0|Priority|None assigned")["105"].node == ""
    assert parse_jobcomp([JOBCOMP])["104_2"].node == "mn-slurm2"
    # The node is no part of what a record says of the job's state.
    assert Record("1", "FAILED", node="a") == Record("1", "FAILED", node="b")


@pytest.mark.parametrize("source", ["squeue", "sacct", "jobcomp"])
def test_a_log_directory_the_node_could_not_open_ends_the_job_with_what_to_do(
        source: str, tmp_path: Path) -> None:
    record = {"squeue": lambda: parse_squeue(SQUEUE)["104_2"],
              "sacct": lambda: parse_sacct("104_2|FAILED|0:53|JobLaunchFailure|mn-slurm2")[
                  "104_2"],
              "jobcomp": lambda: parse_jobcomp([JOBCOMP])["104_2"]}[source]()
    logs = tmp_path / "logs"
    logs.mkdir()  # here, but not on the node: no log file was ever made in it
    status = describe(record, Resources(), str(logs / "gridmap_job.0-1.2.0.err"))
    assert status.status is Status.ENDED and not status.resubmit
    assert status.kind is DeathKind.SCHEDULER_ERROR
    assert f"log directory {logs} could not be opened on node mn-slurm2" in status.cause
    assert "temp_dir must be on storage that the nodes share" in status.cause
    assert "DEFAULT_TEMP_DIR" in status.cause
    assert "signal 53" not in status.cause
    assert status.host == "mn-slurm2"  # where the monitor may look for a failed node


def test_an_io_error_with_its_log_file_made_is_told_apart(tmp_path: Path) -> None:
    err_log = tmp_path / "job.err"
    err_log.write_text("")
    status = describe(parse_squeue(SQUEUE)["104_2"], Resources(), str(err_log))
    assert "could not open its output or error file on node mn-slurm2" in status.cause
    assert status.kind is DeathKind.SCHEDULER_ERROR and status.resubmit


def test_a_kill_keeps_its_cause_though_slurm_calls_it_a_launch_failure(tmp_path: Path) -> None:
    # Slurm gives JobLaunchFailure to every batch job ended by a signal.
    status = describe(parse_squeue("878_4|FAILED|JobLaunchFailure|9|mn-slurm1|")["878_4"],
                      Resources(), str(tmp_path / "never-made.err"))
    assert status.cause == "killed by SIGKILL" and status.kind is DeathKind.KILLED


def test_a_runner_that_did_not_see_temp_dir_is_not_resubmitted(tmp_path: Path) -> None:
    err_log = tmp_path / "job.err"
    err_log.write_text("gridmap runner 2026-01-01 10:00:00,000 ERROR the map's session "
                       "directory /tmp/x/gridmap-1 does not exist on this node (mn-slurm1)\n")
    status = describe(Record("7_1", "FAILED", "NonZeroExitCode", EXIT_NOT_SHARED, 0),
                      Resources(), str(err_log))
    assert not status.resubmit and status.kind is DeathKind.RUNNER_FAILED
    assert "temp_dir is not shared" in status.cause and "mn-slurm1" in status.cause
