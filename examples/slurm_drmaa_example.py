"""Map a function over inputs on Slurm through the slurm-drmaa library, and show what
Slurm granted each call.

Needs slurm-drmaa (``DRMAA_LIBRARY_PATH`` naming its ``libdrmaa.so`` when Python
starts: see docs/slurm-drmaa.md) and a Slurm cluster answering from this host.
scripts/install.sh builds the library (scripts/slurm/drmaa.sh) and runs this on the
single-node cluster that scripts/slurm/start.sh sets up:

    DRMAA_LIBRARY_PATH=/opt/slurm-drmaa/lib/libdrmaa.so python3 examples/slurm_drmaa_example.py
"""

from __future__ import annotations

import os
import socket
import tempfile

from gridmap_core import grid_map


def describe(x: int) -> str:
    # A job that ran as an array element has its element's id; one taken on by a runner
    # that had finished another job shows that runner's element.
    element = (f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
               if "SLURM_ARRAY_JOB_ID" in os.environ else os.environ["SLURM_JOB_ID"])
    return (f"{x} squared is {x * x}, on {socket.gethostname()} in Slurm job {element} "
            f"with {len(os.sched_getaffinity(0))} CPUs and {os.environ['SLURM_MEM_PER_CPU']} "
            f"MB per CPU (partition {os.environ['SLURM_JOB_PARTITION']})")


def main() -> None:
    # temp_dir holds the job logs and the map's key: on a real cluster, it must be a
    # directory the compute nodes share with this host (DEFAULT_TEMP_DIR).
    with tempfile.TemporaryDirectory(prefix="gridmap-example-") as shared:
        for line in grid_map(describe, range(4), backend="slurm_drmaa", require_cluster=True,
                             temp_dir=shared, num_slots=2, mem_free="200M"):
            print(line)


if __name__ == "__main__":
    main()
