"""Map a function over inputs with gridmap and print the results.

    python examples/quickstart.py            # on this machine (the local backend)
    python examples/quickstart.py slurm      # on a cluster backend: sge, slurm, ...

On a cluster, DEFAULT_TEMP_DIR must name a directory the compute nodes share with
this host (`gridmap doctor --backend slurm` checks that). In your own code, leave
the backend out to have gridmap choose the best usable one; it then says which, and
why, on stderr.
"""

from __future__ import annotations

import math
import sys

from gridmap_core import JobException, grid_map


def hypotenuse(a: float, b: float) -> float:
    return math.sqrt(a * a + b * b)


def main(backend: str) -> None:
    print(f"jobs run on backend {backend}")
    triangles = [[3, 4], [5, 12], [8, 15], [7, 24]]  # a list is spread into arguments
    print("hypotenuses:", grid_map(hypotenuse, triangles, backend=backend, max_processes=2))

    scale = 10
    print("closures too:",
          grid_map(lambda x: x * scale, range(5), backend=backend, max_processes=2))

    try:
        grid_map(lambda x: 1 / x, [1, 0, 2], backend=backend, name="divide")
    except JobException as error:
        failed = ", ".join(f"{job.name}: {type(job.ret).__name__}" for job in error.jobs)
        print("failed jobs are named with their remote traceback:", failed)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "local")
