"""A map rides through a restart of its scheduler's controller (``slurmctld``,
``sge_qmaster``): the jobs that run go on and report, the user is told while the
controller is away and when it is back, every result arrives once, and nothing of the
map is left in the queue afterwards, not even the jobs whose cancel the controller
missed while it was away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import PROJECT_ROOT
from tests.support.multinode import (  # noqa: F401  (fixtures)
    SCRIPTS,
    MultinodeCluster,
    multinode_sge,
    multinode_slurm,
    multinode_tmp,
)

pytestmark = pytest.mark.timeout(300)

JOBS = 30
AWAY = 12  # seconds with no controller at all, after it saved its state

# The map runs in a Python of its own (one DRMAA session per process and cell). Each
# execution of a job leaves a file named for it in ``marks``; the controller goes away
# once the first job runs.
MAP = '''
import json, logging, os, subprocess, sys, threading, time
from pathlib import Path

logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
from gridmap_core import grid_map

kind, queue, temp_dir, marks, script, away, jobs = sys.argv[1:8]

def job(x, marks):
    import os, socket, time
    Path(marks, f"{x}.{os.getpid()}.{socket.gethostname()}").touch()
    time.sleep(10)
    return x * x

def restart():
    while not os.listdir(marks):
        time.sleep(0.1)
    done = subprocess.run(["bash", script, kind, away], capture_output=True, text=True)
    print(f"RESTART rc={done.returncode} away={done.stdout.strip()}", file=sys.stderr,
          flush=True)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)

restarting = threading.Thread(target=restart, daemon=True)
restarting.start()
results = grid_map(job, [[x, marks] for x in range(int(jobs))], backend=kind,
                   queue=queue, temp_dir=temp_dir, require_cluster=True,
                   name="gm-ctl-restart")
restarting.join()
print(json.dumps(results))
'''


def queued_of_the_map(cluster: MultinodeCluster) -> str:
    """The queue's lines of the map's jobs (by their name) that wait or run, if any.

    Grid Engine 8.1.9 keeps, after a qmaster restart, the jobs that ended while it was
    away listed as running or being transferred (``r``, ``t``; ``dr`` once deleted)
    until a forced delete: its execds' reports of their end are lost. Those are not
    the map's doing, and are removed after the test; jobs waiting (``qw``) are.
    """
    if cluster.kind == "slurm":
        done = cluster.run(["squeue", "-h", "-n", "gm-ctl-restart", "-o", "%i %T %N"])
        return done.stdout.strip()
    done = cluster.run(["qstat", "-u", "*"])
    return "\n".join(line for line in done.stdout.splitlines()
                     if "gm-ctl" in line and line.split()[4].endswith("qw"))


def remove_ghosts(cluster: MultinodeCluster) -> None:
    """Force the map's jobs out of Grid Engine (see :func:`queued_of_the_map`): they
    hold the nodes' slots."""
    if cluster.kind == "sge":
        done = cluster.run(["qstat", "-u", "*"])
        ids = {line.split()[0] for line in done.stdout.splitlines() if "gm-ctl" in line}
        if ids:
            cluster.run(["qdel", "-f", *sorted(ids)])


@pytest.mark.parametrize("kind", ["slurm", "sge"])
def test_a_map_rides_through_a_controller_restart(kind: str,
                                                   request: pytest.FixtureRequest) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{kind}")
    shared: Path = request.getfixturevalue("multinode_tmp")
    marks = shared / "marks"
    marks.mkdir()
    # Polls every 2 s, so that the outage is seen whatever its phase.
    env = {**cluster.environ(), "PYTHONUNBUFFERED": "1", "CHECK_FREQUENCY": "2"}
    env = {name: value for name, value in env.items() if not name.startswith("GRIDMAP_MONITOR_")}
    try:
        done = subprocess.run(
            [sys.executable, "-c", MAP, kind, cluster.queue, str(shared), str(marks),
             str(SCRIPTS / "restart-controller.sh"), str(AWAY), str(JOBS)],
            capture_output=True, text=True, timeout=270, env=env, cwd=PROJECT_ROOT)
    finally:
        # Whatever happened, the controller runs again for the tests after this one.
        subprocess.run(["bash", str(SCRIPTS / f"start-{kind}.sh")], capture_output=True,
                       env=os.environ, timeout=120)
    try:
        check_the_map(done, marks)
        # Nothing of the map is left waiting: cancels the controller missed were made
        # once it was back.
        deadline = time.monotonic() + 30
        while (left := queued_of_the_map(cluster)) and time.monotonic() < deadline:
            time.sleep(1)
        assert not left, f"jobs of the map left in the queue:\n{left}"
    finally:
        remove_ghosts(cluster)


def check_the_map(done: subprocess.CompletedProcess[str], marks: Path) -> None:
    """The map ended with every result right, every job run once, and the user told."""
    assert done.returncode == 0, done.stderr[-4000:]
    assert "RESTART rc=0" in done.stderr, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [x * x for x in range(JOBS)]
    # Every job ran once: no running job was counted dead while its controller was away.
    runs = sorted(int(name.split(".")[0]) for name in os.listdir(marks))
    assert runs == list(range(JOBS)), runs
    # Told while it was away, and when it was back.
    assert "does not answer" in done.stderr, done.stderr[-4000:]
    assert "answers again" in done.stderr, done.stderr[-4000:]
