"""Map a function over inputs on Grid Engine, and show where each call ran.

Needs a Grid Engine cluster and its client environment (SGE_ROOT, DRMAA_LIBRARY_PATH;
on Debian 12 also GLIBC_TUNABLES, set before Python starts). scripts/install.sh runs
this on the single-node cluster that scripts/sge/start.sh sets up.
"""

from __future__ import annotations

import os
import socket
import tempfile

from gridmap_core import grid_map


def describe(x: int) -> str:
    return (f"{x} squared is {x * x}, on {socket.gethostname()} in Grid Engine job "
            f"{os.environ['JOB_ID']}.{os.environ.get('SGE_TASK_ID', '')}")


def main() -> None:
    # temp_dir holds the job logs and the map's key: on a real cluster, it must be a
    # directory the compute nodes share with this host (DEFAULT_TEMP_DIR).
    with tempfile.TemporaryDirectory(prefix="gridmap-example-") as shared:
        for line in grid_map(describe, range(4), backend="sge", require_cluster=True,
                             temp_dir=shared, queue="all.q"):
            print(line)


if __name__ == "__main__":
    main()
