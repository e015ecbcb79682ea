"""Map a function over inputs on Slurm, and show where each call ran.

Needs a Slurm cluster whose tools (sbatch, squeue, scancel, sacct) work from this
host. scripts/install.sh runs this on the single-node cluster that
scripts/slurm/start.sh sets up.

gridmap submits the calls as one job array, one array element each. A runner that
has finished its call may take on a call still queued (REUSE_RUNNERS, on by default),
and the element that call was submitted as is then cancelled: several calls can run
in one element. Each job's ``id`` is the element it ran in, as
``ARRAY_JOB_ID_TASK_ID``: look it up with ``squeue -j`` while it runs, or
``sacct -j ARRAY_JOB_ID_TASK_ID`` after.
"""

from __future__ import annotations

import os
import socket
import tempfile

from gridmap_core import Job, process_jobs


def describe(x: int) -> dict[str, object]:
    """x squared, and the Slurm array element it was computed in."""
    return {"square": x * x, "host": socket.gethostname(),
            "job": os.environ["SLURM_ARRAY_JOB_ID"], "task": os.environ["SLURM_ARRAY_TASK_ID"],
            "partition": os.environ["SLURM_JOB_PARTITION"]}


def main() -> None:
    # temp_dir holds the job logs and the map's key: on a real cluster, it must be a
    # directory the compute nodes share with this host (DEFAULT_TEMP_DIR).
    with tempfile.TemporaryDirectory(prefix="gridmap-example-") as shared:
        jobs = [Job(describe, [x], name=f"square{x}", mem_free="200M") for x in range(4)]
        process_jobs(jobs, backend="slurm", require_cluster=True, temp_dir=shared)
    for x, job in enumerate(jobs):
        seen = job.ret
        print(f"{job.name}: {x} squared is {seen['square']}, on {seen['host']} in Slurm "
              f"job {seen['job']}, array element {seen['task']} (partition "
              f"{seen['partition']}, job.id {job.id})")


if __name__ == "__main__":
    main()
