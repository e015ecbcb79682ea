"""A temp_dir in the submitting host's own /tmp, on the three-node clusters whose nodes
each have a /tmp of their own: the map is refused before anything is submitted, saying
what to do. Where the check cannot know (here: made blind to the scheduler's nodes),
the jobs fail at launch; each ends at once with a cause naming its node and saying that
temp_dir must be shared, and none is resubmitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import PROJECT_ROOT
from tests.support.multinode import (  # noqa: F401  (fixtures)
    MultinodeCluster,
    multinode_sge,
    multinode_slurm,
)

pytestmark = pytest.mark.timeout(240)

# A map run in a Python of its own (one process holds one DRMAA session, for one Grid
# Engine cell). With "blind", the monitor's check of temp_dir is switched off, as if
# temp_dir were local in a way the check cannot see.
MAP = '''
import json, logging, sys
from gridmap_core import GridMapExecutor, Job
from gridmap_core.testing.jobs import where

backend, queue, temp_dir, blind = sys.argv[1:5]
if blind == "blind":
    import gridmap_core.map.monitor
    gridmap_core.map.monitor.check_shared = lambda temp_dir, peers: None
warnings = []

class Heard(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger("gridmap_core").addHandler(Heard(logging.WARNING))
jobs = [Job(where, [x]) for x in range(2)]
answer = {}
try:
    with GridMapExecutor(backend, require_cluster=True, temp_dir=temp_dir, queue=queue,
                         settings={"NUM_RESUBMITS": 2, "NOTIFIERS": ""}) as executor:
        executor.run_jobs(jobs, on_failure="return")
except Exception as error:
    answer["error"] = [type(error).__name__, str(error)]
answer["jobs"] = [{"cause": job.cause_of_death,
                   "kind": job.death_kind.value if job.death_kind else None,
                   "host": job.host_name, "id": str(job.id or "")} for job in jobs]
answer["resubmitted"] = [message for message in warnings if "resubmitting" in message]
print(json.dumps(answer))
'''


def _run_map(cluster: MultinodeCluster, temp_dir: Path, blind: bool) -> dict[str, Any]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("GRIDMAP_MONITOR_")}
    env.update(cluster.env)
    done = subprocess.run([sys.executable, "-c", MAP, cluster.kind, cluster.queue,
                           str(temp_dir), "blind" if blind else "seeing"],
                          capture_output=True, text=True, timeout=200, env=env,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.fixture
def local_temp_dir(tmp_path: Path) -> Path:
    # pytest's directories are in this host's /tmp, which no node sees.
    directory = tmp_path / "temp_dir"
    directory.mkdir()
    assert str(directory).startswith("/tmp/")
    return directory


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_a_temp_dir_in_tmp_is_refused_before_anything_is_submitted(
        kind: str, request: pytest.FixtureRequest, local_temp_dir: Path) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{kind}")
    answer = _run_map(cluster, local_temp_dir, blind=False)
    name, message = answer["error"]
    assert name == "TempDirNotShared", answer
    assert f"temp_dir {local_temp_dir} is local to this host" in message
    assert all(node in message for node in cluster.nodes), message
    assert "nothing was submitted" in message and "DEFAULT_TEMP_DIR" in message
    # No job was given a scheduler's id, and none died.
    assert all(job["id"] in ("", "-1") and not job["cause"] for job in answer["jobs"]), answer
    assert list(local_temp_dir.iterdir()) == []  # no session directory either


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_jobs_whose_node_cannot_open_their_logs_end_at_once_with_the_cause(
        kind: str, request: pytest.FixtureRequest, local_temp_dir: Path) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{kind}")
    answer = _run_map(cluster, local_temp_dir, blind=True)
    assert answer["resubmitted"] == [], answer
    jobs: list[dict[str, str]] = answer["jobs"]
    assert len(jobs) == 2
    for job in jobs:
        cause = job["cause"]
        assert "could not be opened on" in cause and "temp_dir must be on storage that " \
            "the nodes share" in cause, cause
        assert any(f" {node}" in cause for node in cluster.nodes), cause
        assert str(local_temp_dir) in cause, cause
        assert "signal 53" not in cause, cause
        assert job["kind"] == "scheduler error", job
        assert job["host"] in cluster.nodes, job
