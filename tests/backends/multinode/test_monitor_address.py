"""Maps across hosts with default settings: the monitor advertises the address the
nodes reach this host by (its end of the route to them), not the host's first
interface, which the nodes of the multi-node clusters cannot reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import PROJECT_ROOT
from tests.support.multinode import (  # noqa: F401  (fixtures)
    MultinodeCluster,
    multinode_sge,
    multinode_slurm,
    multinode_tmp,
)

pytestmark = pytest.mark.timeout(240)

# A map run in a Python of its own: one process holds one DRMAA session, for one Grid
# Engine cell, and this one's may already be the single-node cluster's.
MAP = '''
import json, sys
from gridmap_core import GridMapExecutor
from gridmap_core.face.maprun import MapRun
from gridmap_core.testing.jobs import where

backend, queue, temp_dir = sys.argv[1:4]
with GridMapExecutor(backend, require_cluster=True, temp_dir=temp_dir, queue=queue,
                     settings={"NUM_RESUBMITS": 0, "MAX_TIME_BETWEEN_HEARTBEATS": 60}
                     ) as executor:
    results = MapRun.of_calls(executor.runtime, where, [(x,) for x in range(12)]).run()
    address = executor.session.address
print(json.dumps({"address": address, "results": results}))
'''


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_a_map_with_default_settings_runs_across_the_nodes(
        kind: str, request: pytest.FixtureRequest) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{kind}")
    shared: Path = request.getfixturevalue("multinode_tmp")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("GRIDMAP_MONITOR_")}
    env.update(cluster.env)
    done = subprocess.run([sys.executable, "-c", MAP, kind, cluster.queue, str(shared)],
                          capture_output=True, text=True, timeout=200, env=env,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    # The nodes (10.251.K.x) reach this host on the clusters' bridge, 10.251.0.1; its
    # first interface, the old guess, is on a network they have no route to.
    assert answer["address"].startswith("tcp://10.251.0.1:"), answer["address"]
    assert [result["value"] for result in answer["results"]] == [x * x for x in range(12)]
    hosts = {result["host"] for result in answer["results"]}
    assert hosts <= set(cluster.nodes) and len(hosts) >= 2, hosts
