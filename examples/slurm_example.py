"""Map a function over inputs on Slurm, and show where each call ran.

Needs a Slurm cluster whose tools (sbatch, squeue, scancel, sacct) work from this
host. scripts/install.sh runs this on the single-node cluster that
scripts/slurm/start.sh sets up.
"""

from __future__ import annotations

import os
import socket
import tempfile

from gridmap_core import grid_map


def describe(x: int) -> str:
    return (f"{x} squared is {x * x}, on {socket.gethostname()} in Slurm job "
            f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']} "
            f"(partition {os.environ['SLURM_JOB_PARTITION']})")


def main() -> None:
    # temp_dir holds the job logs and the map's key: on a real cluster, it must be a
    # directory the compute nodes share with this host (DEFAULT_TEMP_DIR).
    with tempfile.TemporaryDirectory(prefix="gridmap-example-") as shared:
        for line in grid_map(describe, range(4), backend="slurm", require_cluster=True,
                             temp_dir=shared, mem_free="200M"):
            print(line)


if __name__ == "__main__":
    main()
