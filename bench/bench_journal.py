"""What a map's journal costs: the same map with its journal kept, and with the
journal's writes skipped, in one process, runs interleaved (on, off, on, off, ...).

"Off" replaces the monitor's journal writer with one whose writes do nothing; the
rest of the map is the same code. Each "on" run also reports the seconds the monitor
spent writing the journal, measured inside the writer: the journal's own share of
the map's time, whatever the machine's load does to the wall times.

Maps of trivial jobs (``double(x)``) through runners: the local backend in runner
mode (two runner processes), or a cluster backend. The local backend's default
worker mode keeps no journal (its workers die with the submitting process, so there
is nothing to take on) and costs nothing here.

Usage: python bench/bench_journal.py [--backend local|slurm|sge] [--jobs 10000]
                                     [--runs 3] [--temp-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import fmt_ratio, ratio, table  # a sibling module

from gridmap_core import GridMapExecutor
from gridmap_core.map import monitor
from gridmap_core.map.journaling import MapJournal


def double(x: int) -> int:
    return 2 * x


class SkippedJournal(MapJournal):
    """The monitor's journal writer with every write skipped: the map without it."""

    def added(self, *args: Any, **kwargs: Any) -> None: ...

    def launched(self, *args: Any, **kwargs: Any) -> None: ...

    def taken(self, *args: Any, **kwargs: Any) -> None: ...

    def started(self, *args: Any, **kwargs: Any) -> None: ...

    def result(self, *args: Any, **kwargs: Any) -> None: ...

    def resubmitted(self, *args: Any, **kwargs: Any) -> None: ...

    def dead(self, *args: Any, **kwargs: Any) -> None: ...

    def cancelled(self, *args: Any, **kwargs: Any) -> None: ...

    def flush(self) -> None: ...


@contextlib.contextmanager
def journal_skipped(skipped: bool) -> Iterator[None]:
    """The monitor's journal writer, replaced while ``skipped``."""
    original = getattr(monitor, "MapJournal")  # noqa: B009  (a name it imports)
    setattr(monitor, "MapJournal", SkippedJournal if skipped else original)  # noqa: B010
    try:
        yield
    finally:
        setattr(monitor, "MapJournal", original)  # noqa: B010


def one_map(backend: str, jobs: int, temp_dir: str, skipped: bool
            ) -> tuple[float, float, float]:
    """Wall seconds of one map, and the seconds spent writing its journal: in all,
    and on a CPU (the rest waits for the disk or for the interpreter's lock)."""
    options = {"mode": "runner"} if backend == "local" else {}
    with journal_skipped(skipped), GridMapExecutor(
            backend, max_processes=2, temp_dir=temp_dir, backend_options=options,
            settings={"MAP_KEEP_TIME": 0}) as executor:
        began = time.perf_counter()
        results = list(executor.map(double, range(jobs)))
        wall = time.perf_counter() - began
        record = getattr(executor.runtime.session, "record", None)
        spent = float(getattr(record, "seconds", 0.0))
        cpu = float(getattr(record, "cpu_seconds", 0.0))
    if results != [2 * x for x in range(jobs)]:
        raise SystemExit(f"wrong results from the map with the journal "
                         f"{'skipped' if skipped else 'kept'}")
    return wall, spent, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="local", choices=("local", "slurm", "sge"))
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--temp-dir", help="temp_dir of the maps (the nodes must see it)")
    args = parser.parse_args()
    temp_dir = args.temp_dir or tempfile.mkdtemp(prefix="gridmap-bench-journal-",
                                                 dir=str(Path.home()))
    walls: dict[bool, list[float]] = {False: [], True: []}
    spent: list[float] = []
    cpus: list[float] = []
    for run in range(args.runs):
        for skipped in (False, True):
            wall, seconds, cpu = one_map(args.backend, args.jobs, temp_dir, skipped)
            walls[skipped].append(wall)
            if not skipped:
                spent.append(seconds)
                cpus.append(cpu)
            print(f"run {run + 1}: journal {'skipped' if skipped else 'kept   '} "
                  f"{wall:7.2f} s" + ("" if skipped else
                                      f" (writing it: {seconds:.3f} s, {cpu:.3f} s on a CPU)"),
                  flush=True)
    kept, without = statistics.median(walls[False]), statistics.median(walls[True])
    writing, cpu = statistics.median(spent), statistics.median(cpus)
    print()
    print(f"{args.jobs} trivial jobs on backend {args.backend} through runners, "
          f"medians of {args.runs} runs:")
    print(table(["journal", "map (s)", "vs skipped", "writing it (s)", "share of map",
                 "on a CPU (s)", "CPU share", "CPU per job"],
                [["kept", f"{kept:.2f}", fmt_ratio(ratio(kept, without)), f"{writing:.3f}",
                  f"{100 * writing / kept:.1f} %", f"{cpu:.3f}", f"{100 * cpu / kept:.1f} %",
                  f"{1e6 * cpu / args.jobs:.0f} µs"],
                 ["skipped", f"{without:.2f}", "1.00x", "-", "-", "-", "-", "-"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
