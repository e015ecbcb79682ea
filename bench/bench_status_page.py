"""What the status page costs: its start-up, and a map's time with the page on, with
and without a client polling it, against the same map without the page and against
multiprocessing.Pool, all in this process with rounds interleaved.

    python bench/bench_status_page.py            # about a minute
    python bench/bench_status_page.py --quick    # a few seconds: the smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import fmt_ratio, table

from gridmap_core import grid_map
from gridmap_core.watching.board import Board
from gridmap_core.watching.page import StatusPage
from gridmap_core.watching.server import StatusServer


def double(x: int) -> int:
    return 2 * x


def nap(x: int) -> int:
    time.sleep(0.02)
    return x


def _import_cost(runs: int) -> float:
    """Seconds to import the page's modules in a fresh interpreter that has gridmap."""
    code = ("import time, gridmap_core; t = time.perf_counter(); "
            "import gridmap_core.watching.page; print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True).stdout) for _ in range(runs)]
    return statistics.median(times)


def _start_cost(runs: int) -> tuple[float, float]:
    """Median seconds to start the server, and to its first answer."""
    starts, firsts = [], []
    for _ in range(runs):
        began = time.perf_counter()
        server = StatusServer(Board("b"), "127.0.0.1:0")
        started = time.perf_counter()
        with urllib.request.urlopen(server.url, timeout=10) as response:
            response.read()
        answered = time.perf_counter()
        server.close()
        starts.append(started - began)
        firsts.append(answered - began)
    return statistics.median(starts), statistics.median(firsts)


class Poller:
    """A client with the page open: asks for what changed every ``every`` seconds, and
    for the whole table as often (what a page freshly opened asks)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.url: str | None = None
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        version = 0
        while not self._stop.wait(self.every):
            if self.url is None:
                continue
            base, token = self.url.split("/?token=")
            for since in (version, 0):
                try:
                    with urllib.request.urlopen(
                            f"{base}/api/jobs?since={since}&token={token}", timeout=10) as r:
                        version = json.loads(r.read())["version"]
                    self.requests += 1
                except OSError:  # the map ended between two polls
                    break

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.url = None


def _pool_map(function: Callable[[int], int], inputs: list[int]) -> list[int]:
    with Pool(2) as pool:
        return pool.map(function, inputs)


def _timed(action: Callable[[], object], expected: list[int]) -> float:
    began = time.perf_counter()
    result = action()
    took = time.perf_counter() - began
    assert result == expected
    return took


POLLS = [0]  # requests the polling clients made, for the report


def _map_with_poller(function: Callable[[int], int], inputs: list[int],
                     every: float) -> list[int]:
    """grid_map with the page on, and a client polling it from the moment it starts."""
    with Poller(every) as poller:
        start = StatusPage.start

        def start_and_tell(page: StatusPage, name: str) -> None:
            start(page, name)
            poller.url = page.url

        StatusPage.start = start_and_tell  # type: ignore[method-assign]
        try:
            results = grid_map(function, inputs, local=True, max_processes=2,
                               status_page=True)
        finally:
            StatusPage.start = start  # type: ignore[method-assign]
    POLLS[0] += poller.requests
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    os.environ.setdefault("SEND_ERROR_MAIL", "False")
    sys.stderr.write("status page: start-up\n")
    imported = _import_cost(3 if args.quick else 9)
    started, answered = _start_cost(3 if args.quick else 21)
    print("Start-up of the status page (stdlib http.server on a daemon thread), medians")
    print(table(["what", "ms"], [
        ["import of its modules (fresh interpreter)", f"{imported * 1000:.1f}"],
        ["server listening", f"{started * 1000:.2f}"],
        ["server listening + first page served", f"{answered * 1000:.2f}"],
    ], "lr"))

    workloads = [("trivial", double, 200 if args.quick else 2000),
                 ("20 ms sleep", nap, 20 if args.quick else 200)]
    rows = []
    for label, function, size in workloads:
        inputs = list(range(size))
        expected = [function(x) for x in inputs]
        contenders: dict[str, Callable[[], object]] = {
            "Pool": lambda f=function, i=inputs: _pool_map(f, i),
            "no page": lambda f=function, i=inputs: grid_map(f, i, local=True,
                                                             max_processes=2),
            "page": lambda f=function, i=inputs: grid_map(f, i, local=True, max_processes=2,
                                                          status_page=True),
            "page + client": lambda f=function, i=inputs: _map_with_poller(f, i, 0.1),
        }
        assert grid_map(function, inputs, local=True, max_processes=2) == expected  # warm-up
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for round_ in range(runs):
            sys.stderr.write(f"status page: {label} x{size}, round {round_ + 1}/{runs}\n")
            for name, action in contenders.items():
                times[name].append(_timed(action, expected))
        medians = {name: statistics.median(values) for name, values in times.items()}
        rows.append([f"{label} x{size}", *(f"{medians[n]:.3f}" for n in contenders),
                     fmt_ratio(medians["page"] / medians["no page"]),
                     fmt_ratio(medians["page + client"] / medians["no page"]),
                     fmt_ratio(medians["no page"] / medians["Pool"])])
    print(f"\nA map on the local backend (2 processes), median seconds of {runs} interleaved "
          f"rounds; the client polls every 0.1 s ({POLLS[0]} requests answered in all)")
    print(table(["jobs", "Pool", "no page", "page", "page + client", "page/no page",
                 "page+client/no page", "no page/Pool"], rows, "lrrrrrrr"))


if __name__ == "__main__":
    main()
