"""A compute node that dies in the middle of a map, on the multi-node test clusters.

A map of 50 short jobs runs over three nodes; once jobs run on the second node, the
test kills it (every process in its namespaces: daemon, runners, jobs). As soon as the
scheduler counts the node failed (Slurm: DOWN or NOT_RESPONDING, Grid Engine: a queue
instance in state ``u``), the monitor counts the node's silent jobs dead, long before
MAX_TIME_BETWEEN_HEARTBEATS (its default, 90 s, here), gives them the kind "node
failed" and a cause naming the node in the scheduler's words, and resubmits them kept
off the node (Slurm ``--exclude``, Grid Engine ``-l hostname=!node``). Every result is
right. The slurm_drmaa backend runs on the Slurm cluster, as the slurm backend does.
Then a job pinned to the dead node waits, and the user is told which node and why.

The map runs in a Python of its own (one process holds one DRMAA session for one Grid
Engine cell), with its monitor's log on its stderr; the node is restored in any case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
from tests.support.needs import slurm_drmaa_library

pytestmark = pytest.mark.timeout(300)

CLUSTER_OF = {"slurm": "slurm", "slurm_drmaa": "slurm", "sge": "sge"}

JOBS = 50
WAIT = 200.0  # the whole run, with room for a loaded machine
# The default: the jobs of a failed node are dead once the scheduler says so, whatever
# the limit.
SILENCE = 90
# The scheduler's words for the dead node: Slurm's state, Grid Engine's queue instance
# state (u, with a for the load alarm of a host that reports no load).
FAILED_WORDS = {"slurm": re.compile(r"\bNOT_RESPONDING\b"),
                "slurm_drmaa": re.compile(r"\bNOT_RESPONDING\b"),
                "sge": re.compile(r"is in state a?u\b")}

MAP = '''
import json, logging, sys, time
from gridmap_core import GridMapExecutor, Job, hookimpl
from gridmap_core.model.events import JobResubmitted, JobWaiting
from gridmap_core.plugins.manager import get_plugin_manager

backend, queue, temp_dir, marks, victim, count, settings = sys.argv[1:8]
logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")


def job(x, folder, seconds):
    """Leaves a file naming its host when it starts, then sleeps."""
    import os, socket, time
    from pathlib import Path
    Path(folder, f"{x}.{socket.gethostname()}.{os.getpid()}").touch()
    time.sleep(seconds)
    return x * x, socket.gethostname()


class Listener:
    """The deaths and waits the user hears of, as they are told."""

    def __init__(self):
        self.resubmitted, self.notes = [], []

    @hookimpl
    def gridmap_event(self, event):
        job = event.job if hasattr(event, "job") else None
        if isinstance(event, JobResubmitted):
            kind = job.death_kind.value if job.death_kind else None
            self.resubmitted.append({"name": job.name, "kind": kind, "at": time.time(),
                                     "cause": job.cause_of_death, "id": str(job.id)})
        elif isinstance(event, JobWaiting) and event.note:
            self.notes.append({"name": job.name, "note": event.note, "at": time.time()})


listener = Listener()
get_plugin_manager().register(listener, name="node death listener")
with GridMapExecutor(backend, require_cluster=True, temp_dir=temp_dir, queue=queue,
                     settings=json.loads(settings)) as executor:
    options = executor.runtime.job_options.as_dict()
    started = time.time()
    jobs = [Job(job, [x, marks, 1 + x % 3], **{**options, "name": f"nd{x}"})
            for x in range(int(count))]
    executor.run_jobs(jobs, name="node death", on_failure="return")
    finished = time.time()
    # A job that may run only on the dead node waits; the user hears why.
    pinned = Job(job, [0, marks, 0], **{**options, "name": "pinned"})
    pinned.white_list = [victim]
    executor.submit_job(pinned)
    deadline = time.time() + 60
    while time.time() < deadline and not any(n["name"] == "pinned" for n in listener.notes):
        time.sleep(0.5)
    executor.shutdown(wait=True, cancel_futures=True)
print(json.dumps({
    "started": started, "finished": finished,
    "jobs": [{"name": j.name, "ret": j.ret if isinstance(j.ret, (list, tuple)) else repr(j.ret),
              "host": j.host_name, "id": str(j.id), "resubmits": j.num_resubmits}
             for j in jobs],
    "resubmitted": listener.resubmitted, "notes": listener.notes,
}))
'''


def _run_and_kill(kind: str, cluster: MultinodeCluster, shared: Path, victim: str
                  ) -> tuple[dict[str, Any], float, str]:
    """Run the map; kill ``victim`` once a job runs there; restore it in any case. The
    map's answer, when the node was killed (wall clock), and the monitor's log."""
    marks = shared / "marks"
    marks.mkdir()
    settings = {"NUM_RESUBMITS": 3, "MAX_TIME_BETWEEN_HEARTBEATS": SILENCE,
                "HEARTBEAT_FREQUENCY": 2, "CHECK_FREQUENCY": 2, "MAX_IDLE_HEARTBEATS": 0}
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("GRIDMAP_MONITOR_")}
    env.update(cluster.env)
    if kind == "slurm_drmaa":
        env["DRMAA_LIBRARY_PATH"] = slurm_drmaa_library()
    out, err = shared / "map.out", shared / "map.err"
    killed_at = 0.0
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", MAP, kind, cluster.queue, str(shared), str(marks), victim,
             str(JOBS), json.dumps(settings)],
            stdout=stdout, stderr=stderr, text=True, env=env, cwd=PROJECT_ROOT)
        try:
            deadline = time.monotonic() + 90
            while not killed_at and process.poll() is None and time.monotonic() < deadline:
                if any(f".{victim}." in mark.name for mark in marks.iterdir()):
                    cluster.kill(victim)
                    killed_at = time.time()
                else:
                    time.sleep(0.1)
            process.wait(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            cluster.restore(victim)
    log = err.read_text()
    assert killed_at, f"no job ran on {victim}: {log[-3000:]}"
    assert process.returncode == 0, log[-5000:]
    return json.loads(out.read_text().strip().splitlines()[-1]), killed_at, log


def _excluded(kind: str, cluster: MultinodeCluster, job_id: str, victim: str) -> bool:
    """Whether the scheduler job ``job_id`` was kept off ``victim``, as the scheduler
    recorded its request."""
    if kind == "sge":
        done = cluster.run(["qacct", "-j", job_id.partition(".")[0]])
        return any(line.startswith("category") and f"hostname=!{victim}" in line
                   for line in done.stdout.splitlines())
    done = cluster.run(["scontrol", "show", "job", job_id])
    return f"ExcNodeList={victim}" in done.stdout


@pytest.mark.parametrize("kind", list(CLUSTER_OF))
def test_the_jobs_of_a_node_that_dies_are_resubmitted_elsewhere(
        kind: str, request: pytest.FixtureRequest) -> None:
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{CLUSTER_OF[kind]}")
    shared: Path = request.getfixturevalue("multinode_tmp")
    victim = cluster.nodes[1]
    answer, killed_at, log = _run_and_kill(kind, cluster, shared, victim)

    # Every result is right, none from the dead node after it died.
    jobs = {job["name"]: job for job in answer["jobs"]}
    assert [jobs[f"nd{x}"]["ret"][0] for x in range(JOBS)] == [x * x for x in range(JOBS)], \
        log[-5000:]

    # The node's jobs died of it, in the scheduler's words, and were resubmitted.
    node_deaths = [event for event in answer["resubmitted"] if event["kind"] == "node failed"]
    assert node_deaths, (answer["resubmitted"], log[-5000:])
    for event in node_deaths:
        assert event["cause"].startswith(f"its node {victim} failed ("), event
        assert FAILED_WORDS[kind].search(event["cause"]), event
    # Found dead by the scheduler's word, with less silence than the limit, not by it.
    silences = [int(found.group(1)) for event in node_deaths
                if (found := re.search(r"(?:no heartbeat for|running for) (\d+) s",
                                       event["cause"]))]
    assert silences and all(seconds < SILENCE for seconds in silences), node_deaths
    assert not any("MAX_TIME_BETWEEN_HEARTBEATS" in event["cause"] for event in node_deaths), \
        node_deaths
    first = min(event["at"] for event in node_deaths) - killed_at
    # The attempts that replaced them ran elsewhere, kept off the node by the scheduler.
    last_death = {event["name"]: event for event in answer["resubmitted"]}
    replaced = [name for name, event in last_death.items() if event["kind"] == "node failed"]
    for name in replaced:
        assert jobs[name]["host"] != victim and jobs[name]["ret"][1] != victim, jobs[name]
        assert _excluded(kind, cluster, jobs[name]["id"], victim), jobs[name]
    assert f"node {victim} failed" in log and "the jobs resubmitted from now on avoid it" in log

    # A job that may run only on the dead node is told why it waits.
    notes = [note["note"] for note in answer["notes"] if note["name"] == "pinned"]
    assert notes and victim in notes[0] and FAILED_WORDS[kind].search(notes[0]), \
        (answer["notes"], log[-3000:])
    assert f"jobs are waiting in the queue: {notes[0]}" in log

    print(f"\n{kind}: map of {JOBS} jobs took {answer['finished'] - answer['started']:.1f} s; "
          f"node {victim} killed {killed_at - answer['started']:.1f} s in; first death of it "
          f"found {first:.1f} s after the kill, after {max(silences)} s of silence at most; "
          f"{len(node_deaths)} deaths of the node, "
          f"{len(answer['resubmitted'])} resubmissions in all; the pinned job's note: "
          f"{notes[0]!r}")
