"""Times the original GridMap 0.15.0's local mode inside its own virtual environment.

Run by bench_local.py with that environment's interpreter (``python -I``, in an empty
working directory), never imported: the original's package is also called
``gridmap`` and would clash with this project's. It stays running for the whole
benchmark so its runs can be interleaved with the outer process's, and serves one
request per line on stdin:

    {"op": "warmup", "n": 100}   one untimed run of each, to pay imports up front
    {"op": "run", "n": 1000}     one timed run of the original, then of Pool(2).map
    {"op": "finish"}             print the medians of every timed run, and exit

Each answer is one line on stdout starting with ``@@BENCH `` followed by JSON; other
output (the original logs that drmaa is missing) goes to stderr. Timings are taken
in this process with time.perf_counter, so talking to the outer process costs nothing
that is measured. Pool(2).map is timed here as well, because only a Pool run in this
same interpreter gives a same-process ratio for the original.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

MARK = "@@BENCH "
WORKERS = 2


def double(x: int) -> int:
    return 2 * x


def reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(payload) + "\n")
    sys.stdout.flush()


def run_original(inputs: list[int]) -> list[int]:
    from gridmap import grid_map

    return grid_map(double, inputs, local=True, max_processes=WORKERS)


def run_pool(inputs: list[int]) -> list[int]:
    # Created and closed inside the timed region, the way a user writes it.
    with Pool(WORKERS) as pool:
        return pool.map(double, inputs)


def timed_check(call: Any, inputs: list[int]) -> float:
    expected = [2 * x for x in inputs]
    gc.collect()  # so garbage left by the previous run is not collected on our clock
    start = time.perf_counter()
    result = call(inputs)
    elapsed = time.perf_counter() - start
    if result != expected:
        raise RuntimeError(f"{call.__name__} returned wrong results for {len(inputs)} inputs")
    return elapsed


def main() -> int:
    try:
        import gridmap

        version = importlib.metadata.version("gridmap")
    except Exception as error:
        reply({"error": f"cannot import the original gridmap: {error!r}"})
        return 1
    location = Path(gridmap.__file__).resolve()
    if not location.is_relative_to(Path(sys.prefix).resolve()):
        # The project's own gridmap package leaked onto sys.path: timing it would
        # silently report the new code as the original.
        reply({"error": f"imported gridmap from {location}, not from {sys.prefix}"})
        return 1
    reply({"ready": True, "version": version, "file": str(location),
           "python": sys.version.split()[0]})

    times: dict[int, dict[str, list[float]]] = {}
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "finish":
                medians = {str(n): {name: statistics.median(values)
                                    for name, values in series.items()}
                           for n, series in times.items()}
                reply({"medians": medians,
                       "times": {str(n): series for n, series in times.items()}})
                return 0
            inputs = list(range(int(request["n"])))
            original = timed_check(run_original, inputs)
            pool = timed_check(run_pool, inputs)
            if op == "run":
                series = times.setdefault(len(inputs), {"original": [], "pool": []})
                series["original"].append(original)
                series["pool"].append(pool)
            reply({"original": original, "pool": pool})
        except Exception as error:
            reply({"error": f"{type(error).__name__}: {error}"})
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
