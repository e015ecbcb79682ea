"""The multi-node test clusters of scripts/multinode: a Slurm and a Grid Engine cluster
whose compute nodes are Linux namespaces on this machine, each with its own host name,
address and private /tmp, sharing one directory as a real cluster shares NFS.

The tests never start them (``scripts/multinode/start-slurm.sh`` and ``start-sge.sh``,
as root, do); a test that asks for one fails in CI and is skipped elsewhere when it is
not up. Fixtures, to import into a test module::

    from tests.support.multinode import multinode_slurm, multinode_slurm_cluster  # noqa: F401

* ``multinode_slurm`` / ``multinode_sge`` (session): the cluster, checked once
  (:class:`MultinodeCluster`: client environment, nodes, addresses, queue, shared
  directory, and kill / cut / reconnect / restore of a node);
* ``multinode_slurm_cluster`` / ``multinode_sge_cluster``: the same, with its client
  environment set in ``os.environ`` for the test, so a map run in the test process
  submits to it;
* ``multinode_tmp``: a fresh directory in the shared directory (a map's temp_dir must be
  one the nodes see), removed after the test.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import PROJECT_ROOT
from tests.support.needs import unavailable

SCRIPTS = PROJECT_ROOT / "scripts" / "multinode"
ENV_FILES = {
    "slurm": ("GRIDMAP_MN_SLURM_ENV_FILE", "/etc/gridmap-mn-slurm.env", "start-slurm.sh"),
    "sge": ("GRIDMAP_MN_SGE_ENV_FILE", "/etc/gridmap-mn-sge.env", "start-sge.sh"),
}
NAMES = {"slurm": "multi-node Slurm", "sge": "multi-node Grid Engine"}


def read_env_file(path: Path) -> dict[str, str]:
    """The ``export NAME=VALUE`` lines of a client environment file."""
    found = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            found[name] = value
    return found


@dataclass(frozen=True)
class MultinodeCluster:
    """A running multi-node test cluster, as its start script describes it."""

    kind: str  # "slurm" or "sge"
    env: dict[str, str]  # its client environment (SLURM_CONF, or SGE_ROOT, SGE_CELL, ...)
    nodes: tuple[str, ...]
    addresses: dict[str, str] = field(repr=False)  # node -> its IPv4 address
    queue: str  # the Slurm partition or Grid Engine queue of all nodes
    shared: Path  # the directory every node sees at the same path

    def environ(self) -> dict[str, str]:
        """This process's environment with the cluster's client environment over it."""
        return {**os.environ, **self.env}

    def run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a client command (sbatch, qstat, ...) against this cluster."""
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              env=self.environ(), cwd=self.shared)

    def _script(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(["bash", str(SCRIPTS / args[0]), *args[1:]], capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/multinode/{' '.join(args)} failed "
                               f"(exit status {done.returncode}): {done.stderr.strip()[-800:]}")

    def kill(self, node: str) -> None:
        """Crash ``node``: every process in its namespaces is SIGKILLed (its daemon, its
        jobs). The controller notices only by silence: Slurm marks it NOT_RESPONDING
        after ~15 s and DOWN after ~30 s, Grid Engine shows state ``u`` after ~20-35 s."""
        self._script("kill-node.sh", node)

    def cut(self, node: str) -> None:
        """Cut ``node`` off the network (its link down); its processes keep running."""
        self._script("cut-node.sh", node, "down")

    def reconnect(self, node: str) -> None:
        """Plug ``node`` back in after :meth:`cut`."""
        self._script("cut-node.sh", node, "up")

    def restore(self, node: str) -> None:
        """Bring ``node`` back after :meth:`kill` or :meth:`cut`, until it takes jobs."""
        self._script("restore-node.sh", node, timeout=180)


def env_file(kind: str) -> Path:
    variable, default, _ = ENV_FILES[kind]
    return Path(os.environ.get(variable) or default)


def load(kind: str) -> MultinodeCluster | str:
    """The cluster described by its client environment file and answering, or why not."""
    path = env_file(kind)
    if not path.is_file():
        return f"{path} does not exist (the start script writes it; stop.sh removes it)"
    env = read_env_file(path)
    missing = [name for name in ("GRIDMAP_MN_NODES", "GRIDMAP_MN_ADDRESSES", "GRIDMAP_MN_QUEUE",
                                 "GRIDMAP_MN_SHARED") if name not in env]
    if missing:
        return f"{path} lacks {', '.join(missing)}"
    addresses = dict(pair.split("=", 1) for pair in env["GRIDMAP_MN_ADDRESSES"].split())
    cluster = MultinodeCluster(kind=kind, env=env, nodes=tuple(env["GRIDMAP_MN_NODES"].split()),
                               addresses=addresses, queue=env["GRIDMAP_MN_QUEUE"],
                               shared=Path(env["GRIDMAP_MN_SHARED"]))
    check = (["scontrol", "ping"] if kind == "slurm" else ["qstat", "-f", "-q", cluster.queue])
    try:
        done = cluster.run(check, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{' '.join(check)} failed: {error}"
    if done.returncode != 0 or (kind == "slurm" and "is UP" not in done.stdout):
        return f"its controller does not answer ({' '.join(check)}: " \
               f"{(done.stdout + done.stderr).strip()[-300:]})"
    return cluster


def need(kind: str) -> MultinodeCluster:
    """The cluster; missing, the test fails in CI and is skipped elsewhere."""
    found = load(kind)
    if isinstance(found, str):
        start = ENV_FILES[kind][2]
        unavailable(f"the {NAMES[kind]} test cluster", found,
                    f"start it with scripts/multinode/{start}")
    return found


@pytest.fixture(scope="session")
def multinode_slurm() -> MultinodeCluster:
    """The multi-node Slurm cluster of scripts/multinode/start-slurm.sh."""
    return need("slurm")


@pytest.fixture(scope="session")
def multinode_sge() -> MultinodeCluster:
    """The multi-node Grid Engine cluster of scripts/multinode/start-sge.sh."""
    return need("sge")


def _in_environment(cluster: MultinodeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cluster.env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def multinode_slurm_cluster(multinode_slurm: MultinodeCluster,
                            monkeypatch: pytest.MonkeyPatch) -> MultinodeCluster:
    """The multi-node Slurm cluster, its client environment set for this test."""
    _in_environment(multinode_slurm, monkeypatch)
    return multinode_slurm


@pytest.fixture
def multinode_sge_cluster(multinode_sge: MultinodeCluster,
                          monkeypatch: pytest.MonkeyPatch) -> MultinodeCluster:
    """The multi-node Grid Engine cluster, its client environment set for this test.
    GLIBC_TUNABLES must already be set when Python starts (scripts/test.sh does it) for
    libdrmaa to load in this process."""
    _in_environment(multinode_sge, monkeypatch)
    return multinode_sge


@pytest.fixture
def multinode_tmp() -> Iterator[Path]:
    """A fresh directory in the clusters' shared directory, removed after the test."""
    shared = None
    for kind in ENV_FILES:
        path = env_file(kind)
        if path.is_file():
            shared = read_env_file(path).get("GRIDMAP_MN_SHARED")
            if shared:
                break
    if not shared or not Path(shared).is_dir():
        unavailable("the multi-node test clusters' shared directory",
                    "no client environment file names an existing one",
                    "start a cluster with scripts/multinode/start-slurm.sh or start-sge.sh")
    directory = Path(shared) / f"test-{uuid.uuid4().hex[:12]}"
    directory.mkdir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
