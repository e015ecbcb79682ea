"""Map a function over inputs with gridmap and print the results.

Runs on the backend GRIDMAP_BACKEND or a gridmap.toml names, else on the best usable
one: a cluster whose tools work here (then temp_dir must be shared with its nodes), or
the local backend. scripts/install.sh runs it with GRIDMAP_BACKEND=local.
"""

from __future__ import annotations

import math

from gridmap_core import JobException, grid_map


def hypotenuse(a: float, b: float) -> float:
    return math.sqrt(a * a + b * b)


def main() -> None:
    triangles = [[3, 4], [5, 12], [8, 15], [7, 24]]  # a list is spread into arguments
    print("hypotenuses:", grid_map(hypotenuse, triangles, max_processes=2))

    scale = 10
    print("closures too:", grid_map(lambda x: x * scale, range(5), max_processes=2))

    try:
        grid_map(lambda x: 1 / x, [1, 0, 2], name="divide")
    except JobException as error:
        failed = ", ".join(f"{job.name}: {type(job.ret).__name__}" for job in error.jobs)
        print("failed jobs are named with their remote traceback:", failed)


if __name__ == "__main__":
    main()
