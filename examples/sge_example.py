"""Map a function over inputs on Grid Engine, and show where each call ran.

Needs a Grid Engine cluster and its client environment (SGE_ROOT, DRMAA_LIBRARY_PATH;
on Debian 12 also GLIBC_TUNABLES, set before Python starts). scripts/install.sh runs
this on the single-node cluster that scripts/sge/start.sh sets up.

gridmap submits the calls as one array job, one array element (task) each. A runner
that has finished its call may take on a call still queued (REUSE_RUNNERS, on by
default), and the element that call was submitted as is then cancelled: several calls
can run in one element. Each job's ``id`` is the element it ran in, as
``JOB_ID.TASK_ID``: look it up with ``qstat -j JOB_ID`` while it runs, or
``qacct -j JOB_ID -t TASK_ID`` after.
"""

from __future__ import annotations

import os
import socket
import tempfile

from gridmap_core import Job, process_jobs


def describe(x: int) -> dict[str, object]:
    """x squared, and the Grid Engine job and array element it was computed in."""
    return {"square": x * x, "host": socket.gethostname(), "job": os.environ["JOB_ID"],
            "task": os.environ["SGE_TASK_ID"]}


def main() -> None:
    # temp_dir holds the job logs and the map's key: on a real cluster, it must be a
    # directory the compute nodes share with this host (DEFAULT_TEMP_DIR).
    with tempfile.TemporaryDirectory(prefix="gridmap-example-") as shared:
        jobs = [Job(describe, [x], name=f"square{x}", queue="all.q") for x in range(4)]
        process_jobs(jobs, backend="sge", require_cluster=True, temp_dir=shared)
    for x, job in enumerate(jobs):
        seen = job.ret
        print(f"{job.name}: {x} squared is {seen['square']}, on {seen['host']} in Grid "
              f"Engine job {seen['job']}, array element {seen['task']} (job.id {job.id})")


if __name__ == "__main__":
    main()
