"""The doctor's checks name the compute node its job ran on (host name and addresses),
tell a node of this host's name apart from this host by its addresses, and fail
"temp_dir shared" with what to do when temp_dir is local to this host: refused before
any job is submitted, or a node that did not see it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gridmap_core.doctor.trip import (
    Trip,
    check_monitor,
    check_round_trip,
    check_shared,
    node_addresses,
    probe_job,
)
from gridmap_core.doctor.verdicts import Plan, Verdict
from gridmap_core.map.shared_dir import TempDirNotShared
from gridmap_core.model.config import load_settings
from gridmap_core.model.death import DeathKind
from gridmap_core.plugins.manager import get_plugin_manager
from gridmap_core.plugins.types import BackendSpec
from gridmap_core.wire.exits import EXIT_NOT_SHARED, describe_exit

pytestmark = pytest.mark.timeout(60)

NODE = {"host": "mn-slurm2", "addresses": ["10.251.1.2"]}


@pytest.fixture
def spec() -> BackendSpec:
    return get_plugin_manager().backend("slurm")


def _plan(temp_dir: str) -> Plan:
    return Plan(load_settings({"DEFAULT_TEMP_DIR": temp_dir}), "slurm", "test")


def _done(tmp_path: Path, **report: object) -> Trip:
    trip = Trip("t0k3n", report={"token": "t0k3n", "seen": "t0k3n",
                                 "environment": {"SLURM_ARRAY_JOB_ID": "12"}, **report},
                job_id="12_1", address="tcp://10.251.0.1:5555", back="t0k3n x",
                exchange=str(tmp_path))
    trip.host = str(report.get("host", ""))
    return trip


def test_the_probe_reports_the_addresses_of_its_node() -> None:
    report = probe_job("t", None)
    assert report["host"] == socket.gethostname()
    assert report["addresses"] == node_addresses()
    assert not any(address.startswith("127.") for address in report["addresses"])


def test_every_check_names_the_node_the_job_ran_on(tmp_path: Path, spec: BackendSpec) -> None:
    trip, plan = _done(tmp_path, **NODE), _plan(str(tmp_path))
    round_trip = check_round_trip(trip, plan, spec)
    assert round_trip.verdict is Verdict.PASS, round_trip
    assert "from host mn-slurm2 (10.251.1.2), as job 12_1" in round_trip.detail
    monitor = check_monitor(trip, plan, spec)
    assert monitor.verdict is Verdict.PASS
    assert "from host mn-slurm2 (10.251.1.2)" in monitor.detail
    assert "ran on this host" not in monitor.detail
    shared = check_shared(trip, plan, spec)
    assert shared.verdict is Verdict.PASS
    assert shared.detail.startswith("a job on host mn-slurm2 (10.251.1.2) read a file")


def test_a_node_with_this_hosts_name_but_other_addresses_is_another_host(
        tmp_path: Path, spec: BackendSpec) -> None:
    plan = _plan(str(tmp_path))
    twin = _done(tmp_path, host=socket.gethostname(), addresses=["192.0.2.77"])
    assert "ran on this host" not in check_shared(twin, plan, spec).detail
    here = _done(tmp_path, host=socket.gethostname(), addresses=node_addresses())
    assert "ran on this host" in check_shared(here, plan, spec).detail


def test_a_temp_dir_refused_before_submission_fails_temp_dir_shared(
        tmp_path: Path, spec: BackendSpec) -> None:
    plan = _plan("/tmp/gridmap")
    trip = Trip("t", submit_error=TempDirNotShared(
        "/tmp/gridmap", "it is in /tmp, and every host has a /tmp of its own",
        ["mn-slurm1", "mn-slurm2"]))
    round_trip = check_round_trip(trip, plan, spec)
    assert round_trip.verdict is Verdict.FAIL and not round_trip.config_error
    assert round_trip.detail.startswith("nothing was submitted: temp_dir is local")
    assert round_trip.todo == "see 'temp_dir shared' below"
    assert check_monitor(trip, plan, spec).verdict is Verdict.SKIP
    shared = check_shared(trip, plan, spec)
    assert shared.verdict is Verdict.FAIL
    assert "/tmp/gridmap is local to this host" in shared.detail
    assert "mn-slurm1, mn-slurm2" in shared.detail
    assert "DEFAULT_TEMP_DIR" in shared.todo and "--temp-dir" in shared.todo
    assert str(Path.home()) in shared.todo


def test_a_node_that_did_not_see_temp_dir_fails_temp_dir_shared(
        tmp_path: Path, spec: BackendSpec) -> None:
    log = tmp_path / "job.err"
    log.write_text("gridmap runner 2026-01-01 10:00:00,000 ERROR the map's session directory "
                   "/elsewhere/gridmap-1 does not exist on this node (mn-slurm3)\n")
    trip = Trip("t", cause=describe_exit(EXIT_NOT_SHARED, None, str(log)),
                death_kind=DeathKind.RUNNER_FAILED, started=False)
    trip.host = "mn-slurm3"
    plan = _plan(str(tmp_path / "temp"))
    round_trip = check_round_trip(trip, plan, spec)
    assert round_trip.verdict is Verdict.FAIL
    assert round_trip.detail.startswith("the job on host mn-slurm3 died:")
    assert round_trip.todo.startswith("see 'temp_dir shared' below")
    shared = check_shared(trip, plan, spec)
    assert shared.verdict is Verdict.FAIL
    assert "on host mn-slurm3" in shared.detail and "temp_dir is not shared" in shared.detail
    assert "DEFAULT_TEMP_DIR" in shared.todo


def test_the_exchange_directory_is_absolute_and_home_is_expanded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridmap_core.doctor.trip import exchange_directory

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "td").mkdir()
    made = Path(exchange_directory("~/td"))
    assert made.parent == tmp_path / "td" and made.is_dir()
    monkeypatch.chdir(tmp_path)
    relative = Path(exchange_directory("td"))
    assert relative.is_absolute() and relative.parent == tmp_path / "td"
