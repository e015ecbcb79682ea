"""The multi-node test clusters of scripts/multinode, when they are up: a job pinned to
each node runs there, under the node's own host name and address, with a private /tmp,
the shared directory, and the project importable at the host's paths."""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests import PROJECT_ROOT
from tests.support.multinode import (  # noqa: F401  (fixtures)
    MultinodeCluster,
    multinode_sge,
    multinode_slurm,
    multinode_tmp,
)

pytestmark = pytest.mark.timeout(240)

PROJECT = PROJECT_ROOT

# Run on a node: what the job sees, written into the shared directory as JSON (renamed
# into place, so a half-written file is never read).
PROBE = '''
import json, os, socket, sys
from pathlib import Path

import psutil

out, marker, shared_file = sys.argv[1:4]
mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
tmp_fs = [fields[fields.index("-") + 1] for fields in mounts if fields[4] == "/tmp"]
try:
    import gridmap_core, gridmap_sge, gridmap_slurm
    imported = "ok"
except ImportError as error:
    imported = repr(error)
report = {
    "host": socket.gethostname(),
    "addresses": sorted(address.address for addresses in psutil.net_if_addrs().values()
                        for address in addresses if address.family == socket.AF_INET),
    "tmp": sorted(os.listdir("/tmp")),
    "tmp_fs": tmp_fs[-1] if tmp_fs else None,
    "tmpdir": os.environ.get("TMPDIR") or os.environ.get("TMP") or "",
    "marker_seen": os.path.exists(marker),
    "shared_read": Path(shared_file).read_text(),
    "imported": imported,
}
Path(out + ".part").write_text(json.dumps(report))
os.rename(out + ".part", out)
'''


def submit(cluster: MultinodeCluster, node: str, command: list[str], log: Path) -> str:
    """Submit ``command`` as a batch job pinned to ``node``; its scheduler id."""
    if cluster.kind == "slurm":
        args = ["sbatch", "--parsable", "-J", "mn-check", "-p", cluster.queue, "-w", node,
                "-D", str(cluster.shared), "-o", str(log), "--wrap", shlex.join(command)]
    else:
        args = ["qsub", "-terse", "-N", "mn-check", "-q", f"{cluster.queue}@{node}",
                "-wd", str(cluster.shared), "-o", str(log), "-j", "y", "-b", "y", *command]
    done = cluster.run(args)
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr.strip()}"
    return done.stdout.strip().split(";")[0]


def queue_state(cluster: MultinodeCluster) -> str:
    args = ["squeue", "-t", "all"] if cluster.kind == "slurm" else ["qstat", "-f"]
    done = cluster.run(args)
    return (done.stdout + done.stderr).strip()


def cancel(cluster: MultinodeCluster, ids: list[str]) -> None:
    cluster.run(["scancel", *ids] if cluster.kind == "slurm" else ["qdel", *ids])


# Grid Engine's temporary directories of other jobs (JOB.TASK.QUEUE), as jobs that ended
# while the qmaster was away leave them (tests/backends/multinode/test_controller_restart.py):
# the node's own, not the host's.
GRID_ENGINE_JOB_TMP = re.compile(r"^\d+\.\d+\.[\w.@-]+$")


def allowed_in_tmp(tmpdir: str) -> set[str]:
    """What a node's private /tmp may hold: the job's own temporary directory (Grid Engine
    makes one and names it in TMP) and the top of each path the scripts bind back from
    the host's /tmp (a clone of the project, a virtualenv)."""
    allowed = set()
    for path in (Path(tmpdir), PROJECT, Path(sys.prefix).resolve(),
                 Path(sys.base_prefix).resolve()):
        if len(path.parts) > 2 and path.parts[:2] == ("/", "tmp"):
            allowed.add(path.parts[2])
    return allowed


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_a_job_on_each_node_sees_that_node(kind: str, request: pytest.FixtureRequest) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{kind}")
    directory: Path = request.getfixturevalue("multinode_tmp")
    assert len(cluster.nodes) >= 2, f"a multi-node cluster needs 2 nodes or more: {cluster.nodes}"
    probe = directory / "probe.py"
    probe.write_text(PROBE)
    shared_file = directory / "from-the-host.txt"
    shared_file.write_text("written on the host")
    reports: dict[str, Path] = {}
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="gridmap-host-only-") as marker:
        ids = []
        for node in cluster.nodes:
            reports[node] = directory / f"{node}.json"
            ids.append(submit(cluster, node, [sys.executable, str(probe), str(reports[node]),
                                              marker.name, str(shared_file)],
                              directory / f"{node}.log"))
        deadline = time.monotonic() + 180
        while not all(path.exists() for path in reports.values()):
            if time.monotonic() > deadline:
                state = queue_state(cluster)
                logs = {node: (directory / f"{node}.log").read_text()[-500:]
                        for node in cluster.nodes if (directory / f"{node}.log").exists()}
                cancel(cluster, ids)
                missing = [node for node, path in reports.items() if not path.exists()]
                pytest.fail(f"no report from the jobs on {missing} after 180 s; queue:\n{state}\n"
                            f"job logs: {logs}")
            time.sleep(0.5)

    for node in cluster.nodes:
        seen: dict[str, Any] = json.loads(reports[node].read_text())
        where = f"the job pinned to {node} saw {seen}"
        assert seen["host"] == node, where
        assert cluster.addresses[node] in seen["addresses"], where
        assert seen["tmp_fs"] == "tmpfs", where
        assert not seen["marker_seen"], f"{where}: the host's /tmp is not private to the node"
        others = {name for name in seen["tmp"] if not GRID_ENGINE_JOB_TMP.match(name)}
        assert others <= allowed_in_tmp(seen["tmpdir"]), where
        assert seen["shared_read"] == "written on the host", where
        assert seen["imported"] == "ok", where
    addresses = [cluster.addresses[node] for node in cluster.nodes]
    assert len(set(addresses)) == len(addresses), f"nodes share an address: {cluster.addresses}"
