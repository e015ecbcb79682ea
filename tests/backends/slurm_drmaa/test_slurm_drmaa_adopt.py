"""The slurm-drmaa scheduler adopting jobs that another process launched: over a fake
connection, cancelled with scancel, not through the DRMAA session; on the single-node
Slurm, jobs of a process that launched them through slurm-drmaa and then died of
SIGKILL polled, cancelled, an ended one reported ended, nothing left in squeue. Each
side runs in a Python of its own (one DRMAA session per process, and this one may hold
Grid Engine's library): tests/backends/slurm_drmaa/adopt_steps.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import pytest
from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import Commands, SlurmError
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm_drmaa.scheduler import SlurmDrmaaScheduler

from gridmap_core.backend.drmaa import DrmaaConnection
from gridmap_core.model.resources import Resources
from tests import PROJECT_ROOT
from tests.support.killed_submitter import killed_submitter
from tests.support.needs import slurm_drmaa_library

pytestmark = pytest.mark.timeout(300)

STEPS = "tests.backends.slurm_drmaa.adopt_steps"


class Connection:
    """The part of a DRMAA connection a cancel uses: what it was asked to terminate."""

    def __init__(self) -> None:
        self.terminated: list[str] = []

    def terminate(self, job_id: str) -> None:
        self.terminated.append(job_id)


class Tools(Commands):
    """Slurm's tools answering nothing, every call recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def once(self, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")


def test_adopted_jobs_are_cancelled_with_scancel_not_through_drmaa() -> None:
    connection, tools = Connection(), Tools()
    scheduler = SlurmDrmaaScheduler(cast(DrmaaConnection, connection), Cluster(),
                                    SlurmOptions(), commands=tools)
    scheduler.jobs.record(["500"], Resources(), [""])  # as a launch of its own records it
    scheduler.adopt(["900_1", "900_2", "901_1"])
    scheduler.cancel(["900_1", "900_2", "901_1", "500"])
    assert connection.terminated == ["500"]
    assert [call for call in tools.calls if call[0] == "scancel"] == \
        [["scancel", "900", "901_1"]]
    assert Path(scheduler.cancel_command()[0]).name == "scancel"


def test_a_refused_scancel_of_adopted_jobs_is_made_again() -> None:
    connection, tools = Connection(), Tools()
    scheduler = SlurmDrmaaScheduler(cast(DrmaaConnection, connection), Cluster(),
                                    SlurmOptions(), commands=tools)
    scheduler.adopt(["900_1"])
    refusal = subprocess.CompletedProcess(["scancel"], 1, "", "scancel: error: Access denied")
    tools.once = lambda argv, env=None: refusal  # type: ignore[method-assign]
    with pytest.raises(SlurmError, match="Access denied"):
        scheduler.cancel(["900_1"])
    del tools.once  # answers again
    scheduler.cancel(["900_1"])
    assert [call for call in tools.calls if call[0] == "scancel"] == [["scancel", "900_1"]]


def squeue_listed(ids: list[str]) -> dict[str, str]:
    arrays = sorted({job_id.partition("_")[0] for job_id in ids})
    done = subprocess.run(["squeue", "-h", "-r", "-t", "PD,R,CG,S", "-j", ",".join(arrays),
                           "-O", "JobArrayID:|,State:|"], capture_output=True, text=True,
                          timeout=60)
    listed = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.partition("|")
        listed[job_id.strip()] = state.strip(" |")
    return listed


def test_jobs_of_a_killed_submitter_are_adopted_cancelled_and_read_back(
        slurm_cluster: str, tmp_path: Path) -> None:
    environment = {**os.environ, "DRMAA_LIBRARY_PATH": slurm_drmaa_library()}
    with killed_submitter([sys.executable, "-m", STEPS, "launch", str(tmp_path)],
                          environment, "scancel") as launched:
        ids = launched["running"] + launched["failing"]
        assert set(squeue_listed(launched["running"])) == set(launched["running"])
        # The failing job ends before it is adopted.
        deadline = time.monotonic() + 60
        while launched["failing"][0] in squeue_listed(launched["failing"]):
            assert time.monotonic() < deadline, "the failing job did not end"
            time.sleep(0.5)
        done = subprocess.run([sys.executable, "-m", STEPS, "adopt", json.dumps(launched)],
                              cwd=PROJECT_ROOT, env=environment, capture_output=True,
                              text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert {state for state, _, _ in seen["first"].values()} <= {"queued", "running"}, seen
        assert set(seen["first"]) == set(launched["running"]), seen
        assert not seen["queued_or_running"] and not seen["still_watched"], seen
        [(state, exit_status, cause)] = seen["failing"].values()
        assert state == "ended" and exit_status == 1 and "exit status 1" in cause, seen
        assert Path(seen["cancel_command"][0]).name == "scancel", seen
        assert not squeue_listed(ids)  # nothing left running or queued
