"""``gridmap doctor`` on the three-node clusters: its job proves, from a compute node,
that the nodes reach the monitor and see temp_dir, and the checks name that node (host
name and address). They fail, saying what to do, with temp_dir in this host's /tmp
(which the nodes do not see) and with a monitor address the nodes cannot reach."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.doctor.test_doctor import Outcome, parse, verdicts
from tests.support.multinode import (  # noqa: F401  (fixtures)
    MultinodeCluster,
    multinode_sge,
    multinode_slurm,
    multinode_tmp,
)

pytestmark = pytest.mark.timeout(200)

KINDS = ["slurm", "sge"]
UNREACHABLE = "192.0.2.1"  # TEST-NET-1: no host has it, no route leads there


def doctor(cluster: MultinodeCluster, temp_dir: Path, timeout: int, cwd: Path,
           **env: str) -> Outcome:
    """``gridmap doctor`` for the cluster, in a Python of its own started with the
    cluster's client environment (one process holds one DRMAA session, for one cell)."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("GRIDMAP_MONITOR_")}
    environment.update(cluster.env)
    environment.update({"DEFAULT_QUEUE": cluster.queue, **env})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gridmap_core.cli", "doctor", "--backend", cluster.kind,
         "--temp-dir", str(temp_dir), "--timeout", str(timeout)],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr
    return Outcome(done.returncode, parse(done.stdout), done.stdout,
                   time.monotonic() - started)


def _cluster(kind: str, request: pytest.FixtureRequest) -> MultinodeCluster:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{kind}")
    return cluster


@pytest.mark.parametrize("kind", KINDS)
def test_a_shared_temp_dir_passes_and_the_node_is_named(
        kind: str, request: pytest.FixtureRequest) -> None:
    cluster = _cluster(kind, request)
    shared_dir: Path = request.getfixturevalue("multinode_tmp")
    outcome = doctor(cluster, shared_dir, 60, shared_dir)
    assert verdicts(outcome) == ["PASS"] * 6, outcome.out
    trip = outcome.lines["round trip"].detail
    match = re.search(r"from host (\S+) \(([\d., ]+)\)", trip)
    assert match, trip
    node, address = match.groups()
    assert node in cluster.nodes and address == cluster.addresses[node], trip
    monitor = outcome.lines["nodes reach monitor"].detail
    # The monitor's address on the clusters' bridge, reached from that node.
    assert re.search(r"at tcp://10\.251\.0\.1:\d+ ", monitor), monitor
    assert f"from host {node} ({address})" in monitor and "this host" not in monitor
    shared = outcome.lines["temp_dir shared"].detail
    assert shared.startswith(f"a job on host {node} ({address}) read a file written here")
    assert str(shared_dir) in shared


@pytest.mark.parametrize("kind", KINDS)
def test_a_temp_dir_in_tmp_fails_temp_dir_shared_before_any_job(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cluster = _cluster(kind, request)
    assert str(tmp_path).startswith("/tmp/")
    outcome = doctor(cluster, tmp_path, 20, tmp_path)
    assert verdicts(outcome) == ["PASS", "PASS", "PASS", "FAIL", "SKIP", "FAIL"], outcome.out
    assert outcome.status == 1
    assert outcome.lines["round trip"].detail.startswith("nothing was submitted")
    assert outcome.lines["round trip"].todo == "see 'temp_dir shared' below"
    shared = outcome.lines["temp_dir shared"]
    assert f"{tmp_path} is local to this host" in shared.detail, shared
    assert all(node in shared.detail for node in cluster.nodes), shared
    assert "DEFAULT_TEMP_DIR" in shared.todo and "--temp-dir" in shared.todo, shared


@pytest.mark.parametrize("kind", KINDS)
def test_a_monitor_address_the_nodes_cannot_reach_fails_nodes_reach_monitor(
        kind: str, request: pytest.FixtureRequest) -> None:
    cluster = _cluster(kind, request)
    shared_dir: Path = request.getfixturevalue("multinode_tmp")
    outcome = doctor(cluster, shared_dir, 15, shared_dir,
                     GRIDMAP_MONITOR_ADDRESS=UNREACHABLE, MAX_TIME_BETWEEN_HEARTBEATS="5")
    assert verdicts(outcome) == ["PASS", "PASS", "PASS", "FAIL", "FAIL", "SKIP"], outcome.out
    assert outcome.status == 1
    trip = outcome.lines["round trip"]
    assert trip.todo.startswith("see 'nodes reach monitor' below"), trip
    monitor = outcome.lines["nodes reach monitor"]
    assert monitor.detail.startswith(f"no job reached the monitor at tcp://{UNREACHABLE}:"), \
        monitor
    assert "GRIDMAP_MONITOR_ADDRESS" in monitor.detail
    # The node the job ran on, as the scheduler said: the probe itself never ran.
    assert re.search(r"\(the job ran on host (\S+)\)", monitor.detail), monitor
    assert any(f"the job ran on host {node}" in monitor.detail for node in cluster.nodes)
    assert "GRIDMAP_MONITOR_ADDRESS" in monitor.todo and "10.251.0.1" in monitor.todo, monitor
