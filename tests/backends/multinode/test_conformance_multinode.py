"""The backend conformance suite across the nodes of the multi-node test clusters
(scripts/multinode): sge on the Grid Engine cell ``multinode``, slurm and slurm_drmaa on
the three-node Slurm, each job on one of three hosts with a host name, an address and a
/tmp of its own, its temp_dir in the shared directory.

Each backend's suite runs in a Python of its own, started with the cluster's client
environment: one process holds one DRMAA session for one Grid Engine cell (and this
one's may be the single-node cell's), loads one libdrmaa for good (slurm-drmaa's is not
Grid Engine's), and the backends look up a cluster's settings (its parallel environments,
its job completion log) once per process. The test here starts that process, reads its
JUnit report and names each conformance test that did not pass, with its message.

Beyond the shared suite, each backend's map must spread over two nodes or more: every
job reports its host name and the addresses of its network interfaces, which must be
one node's, as the cluster's start script names them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle
import psutil
import pytest

from gridmap_core.testing import BackendConformance
from gridmap_core.testing.jobs import where_after
from tests import PROJECT_ROOT
from tests.backends.sge import test_conformance_sge as single_node_sge
from tests.backends.slurm import test_conformance_slurm as single_node_slurm
from tests.backends.slurm_drmaa import test_slurm_drmaa as single_node_slurm_drmaa
from tests.support.multinode import (  # noqa: F401  (fixtures)
    MultinodeCluster,
    multinode_sge,
    multinode_sge_cluster,
    multinode_slurm,
    multinode_slurm_cluster,
    multinode_tmp,
)
from tests.support.needs import slurm_drmaa_library

# Set, to the backend's name, in the process that runs that backend's suite.
OWN_PROCESS = "GRIDMAP_MULTINODE_CONFORMANCE"
# The cluster each backend runs on.
CLUSTER_OF = {"slurm": "slurm", "sge": "sge", "slurm_drmaa": "slurm"}
# How long a job of the spread test lasts: long enough that every runner the scheduler
# starts at once takes a job before the first ones could have done them all.
SPREAD_SECONDS = 2.0
SPREAD_JOBS = 12


def located(x: int) -> dict[str, Any]:
    """:func:`~gridmap_core.testing.jobs.where` after a short wait, and the IPv4
    addresses of the host's network interfaces."""
    return {**where_after(SPREAD_SECONDS, x),
            "addresses": sorted(address.address
                                for addresses in psutil.net_if_addrs().values()
                                for address in addresses if address.family == socket.AF_INET)}


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the nodes need not import it


class AcrossNodes(BackendConformance):
    """The suite on a multi-node cluster: temp_dir in the shared directory, jobs killed
    and watched on their node, and checks that the jobs ran on the cluster's nodes."""

    kind: ClassVar[str]  # the cluster: "slurm" or "sge"
    #: Variables the scheduler sets in each job it starts: the job's number, and the
    #: name of the queue or partition it runs in.
    job_number_variable: ClassVar[str]
    queue_variable: ClassVar[str]
    cluster: MultinodeCluster

    @pytest.fixture(autouse=True)
    def _on_the_cluster(self, request: pytest.FixtureRequest) -> None:
        # The class's usefixtures set the client environment; this takes its cluster.
        self.cluster = request.getfixturevalue(f"multinode_{self.kind}_cluster")
        shared: Path = request.getfixturevalue("multinode_tmp")
        self.settings = {**self.settings, "DEFAULT_TEMP_DIR": str(shared)}

    def kill(self, pid: int, host: str) -> None:
        # The nodes are namespaces without a PID namespace of their own: a job's pid is
        # also its pid on this host (and so for process_ended).
        assert host in self.cluster.nodes, (
            f"the job ran on {host}, not on a node of the cluster {self.cluster.nodes}")
        os.kill(pid, signal.SIGKILL)

    def process_ended(self, pid: int, host: str) -> bool | None:
        assert host in self.cluster.nodes, (
            f"the job ran on {host}, not on a node of the cluster {self.cluster.nodes}")
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    def assert_ran_on_backend(self, where: Mapping[str, Any]) -> None:
        super().assert_ran_on_backend(where)
        assert where["host"] in self.cluster.nodes, (
            f"the job ran on {where['host']}, not on a node of {self.cluster.nodes}")
        environment = where["environment"]
        number = environment.get(self.job_number_variable, "")
        assert number.isdigit(), f"{self.job_number_variable}={number!r} in the job"
        queue = environment.get(self.queue_variable)
        assert queue == self.cluster.queue, (
            f"{self.queue_variable}={queue!r} in the job, not {self.cluster.queue!r}")
        assert "gridmap_core/node/runner.py" in where["argv"][0], where["argv"]

    def test_a_maps_jobs_run_on_two_nodes_or_more(self) -> None:
        with self.executor() as executor:
            results = list(executor.map(located, range(SPREAD_JOBS)))
        values = [result["value"] for result in results]
        assert values == [x * x for x in range(SPREAD_JOBS)], f"results: {values}"
        for result in results:
            self.assert_ran_on_backend(result)
            host = result["host"]
            assert self.cluster.addresses[host] in result["addresses"], (
                f"the job on {host} saw addresses {result['addresses']}, without "
                f"{self.cluster.addresses[host]}, the node's own")
        hosts = sorted({result["host"] for result in results})
        addresses = sorted({self.cluster.addresses[host] for host in hosts})
        assert len(hosts) >= 2 and len(addresses) >= 2, (
            f"the map's {SPREAD_JOBS} jobs ran on {hosts} ({addresses}) only, not on two "
            f"nodes or more of {self.cluster.nodes}")


@pytest.mark.usefixtures("multinode_sge_cluster")
class SgeAcrossNodes(AcrossNodes):
    backend, kind = "sge", "sge"
    job_number_variable, queue_variable = "JOB_ID", "QUEUE"
    # Job ids and granted resources are told as on the single-node cell.
    assert_scheduler_id = single_node_sge.TestSgeConformance.assert_scheduler_id
    assert_resources_honoured = single_node_sge.TestSgeConformance.assert_resources_honoured


@pytest.mark.usefixtures("multinode_slurm_cluster")
class SlurmAcrossNodes(AcrossNodes):
    backend, kind = "slurm", "slurm"
    job_number_variable, queue_variable = "SLURM_ARRAY_JOB_ID", "SLURM_JOB_PARTITION"
    assert_scheduler_id = single_node_slurm.TestSlurmConformance.assert_scheduler_id
    assert_resources_honoured = single_node_slurm.TestSlurmConformance.assert_resources_honoured


@pytest.mark.usefixtures("multinode_slurm_cluster")
class SlurmDrmaaAcrossNodes(AcrossNodes):
    backend, kind = "slurm_drmaa", "slurm"
    # slurm-drmaa submits a single job as a plain job: SLURM_JOB_ID is always set.
    job_number_variable, queue_variable = "SLURM_JOB_ID", "SLURM_JOB_PARTITION"
    assert_resources_honoured = (
        single_node_slurm_drmaa.SlurmDrmaaConformance.assert_resources_honoured)


SUITES: dict[str, type[AcrossNodes]] = {
    "sge": SgeAcrossNodes, "slurm": SlurmAcrossNodes, "slurm_drmaa": SlurmDrmaaAcrossNodes}

if os.environ.get(OWN_PROCESS) in SUITES:
    # Collected only in the suite's own process, which runs one backend's.
    TestAcrossNodes = SUITES[os.environ[OWN_PROCESS]]


def outcomes(report: Path) -> dict[str, str]:
    """Each test of a JUnit report: "" when it passed, else what happened to it (its
    failure's message and the end of its traceback)."""
    found = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name", "?")] = "\n".join(
            f"{problem.tag}: {(problem.get('message') or '')[:1000]}\n"
            + "\n".join((problem.text or "").strip().splitlines()[-8:])
            for problem in problems)
    return found


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("backend", list(SUITES))
def test_the_conformance_suite_passes_across_nodes(backend: str, request: pytest.FixtureRequest,
                                                   tmp_path: Path) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{CLUSTER_OF[backend]}")
    env = {**os.environ, **cluster.env, OWN_PROCESS: backend}
    if backend == "slurm_drmaa":
        env["DRMAA_LIBRARY_PATH"] = slurm_drmaa_library()
    report = tmp_path / "report.xml"
    here = Path(__file__).relative_to(PROJECT_ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         f"--junitxml={report}", f"{here}::TestAcrossNodes"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1450)
    expected = {name for name in dir(SUITES[backend])
                if name.startswith("test_") and callable(getattr(SUITES[backend], name))}
    found = outcomes(report) if report.exists() else {}
    not_passed = {name: found.get(name, "did not run") for name in sorted(expected)
                  if found.get(name, "did not run")}
    details = "\n\n".join(f"== {name}: {text}" for name, text in not_passed.items())
    if not found or "did not run" in not_passed.values():
        # Nothing to tell a test's own failure by: what the process printed last.
        details += f"\n\n-- its output --\n{done.stdout[-4000:]}{done.stderr[-1500:]}"
    assert done.returncode == 0 and not not_passed, (
        f"{len(not_passed)} of {len(expected)} conformance tests did not pass for backend "
        f"{backend} on the multi-node {cluster.kind} cluster (its own pytest exited "
        f"{done.returncode}):\n{details}")
