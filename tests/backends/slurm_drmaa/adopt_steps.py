"""The two processes of test_slurm_drmaa_adopt.py, each with a DRMAA session of its own
(one per process): ``launch DIR`` submits through slurm-drmaa, prints the ids as JSON
and waits to be killed; ``adopt IDS_JSON`` adopts those ids in a fresh scheduler,
cancels the running ones and prints what its polls said, as JSON.

Run as ``python -m tests.backends.slurm_drmaa.adopt_steps`` from the project's root,
with DRMAA_LIBRARY_PATH naming the slurm-drmaa library.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

from gridmap_slurm.cluster import read_cluster
from gridmap_slurm.commands import Commands
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm_drmaa.scheduler import SlurmDrmaaScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.drmaa import DrmaaConnection
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.resources import Resources

WAIT = 90.0


def scheduler() -> SlurmDrmaaScheduler:
    cluster = read_cluster(Commands())
    return SlurmDrmaaScheduler(DrmaaConnection.acquire(), cluster,
                               SlurmOptions(nodes=cluster.nodes, partitions=cluster.partitions))


def shell_launch(directory: str, script: str, tasks: Sequence[int]) -> Launch:
    """Runners that run ``script`` in sh, whatever the arguments a runner gets."""
    spec = JobSpec(function=print, resources=Resources.parse(mem_free="100M"),
                   working_dir=directory, name="adopted")
    return Launch(spec=spec, tasks=list(tasks), attempt=0, log_dir=directory,
                  runner=["/bin/sh", "-c", script, "sh"], name="adopted")


def launch(directory: str) -> None:
    made = scheduler()
    running = made.launch(shell_launch(directory, "sleep 300", [0, 1]))
    failing = made.launch(shell_launch(directory, "exit 1", [2]))
    print(json.dumps({"running": running, "failing": failing}), flush=True)
    time.sleep(600)  # killed (SIGKILL) by the test, as a submitter that dies


def _seen(report: dict[str, JobStatus]) -> dict[str, list[object]]:
    return {job_id: [status.status.value, status.exit_status, status.cause]
            for job_id, status in report.items()}


def adopt(launched: dict[str, list[str]]) -> None:
    running, failing = launched["running"], launched["failing"]
    made = scheduler()
    made.adopt(running + failing)
    first = made.poll(running)
    made.cancel(running)
    deadline = time.monotonic() + WAIT
    after: dict[str, JobStatus] = {}
    while any(job_id in made.jobs for job_id in running) and time.monotonic() < deadline:
        after.update(made.poll(running))
        time.sleep(0.5)
    ended: dict[str, JobStatus] = {}
    while not ended and time.monotonic() < deadline:
        ended.update(made.poll(failing))
        time.sleep(0.5)
    print(json.dumps({
        "first": _seen(dict(first)),
        "after_cancel": _seen(after),
        "still_watched": [job_id for job_id in running + failing if job_id in made.jobs],
        "failing": _seen(ended),
        "cancel_command": made.cancel_command(),
        "queued_or_running": [job_id for job_id, status in after.items()
                              if status.status in (Status.QUEUED, Status.RUNNING)],
    }), flush=True)
    made.close()


if __name__ == "__main__":
    if sys.argv[1] == "launch":
        launch(sys.argv[2])
    else:
        adopt(json.loads(sys.argv[2]))
