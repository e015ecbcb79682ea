"""Benchmark gridmap's local backend against multiprocessing.Pool and the original GridMap.

Two workloads, each with max_processes=2 (two worker processes):

* trivial jobs: ``double(x)`` over N inputs (100, 1,000 and 10,000 by default), timed
  for (a) ``gridmap_core.grid_map(..., local=True)``, (b) ``Pool(2).map`` with the pool
  created and closed inside the timed region, and (c) the original GridMap 0.15.0's
  local mode, run in its own virtual environment (bench/.venvs/gridmap015) by
  bench/original_timer.py, which also times Pool(2).map in that same interpreter;
* large results: 50 jobs that each build and return a 20 MB float64 array, for (a)
  and (b).

Runs are interleaved (a, b, c, a, b, c, ...) so that load from other processes on the
machine falls on every contender alike; the table shows the median of the runs and
its ratio to Pool. Every run's results are checked, so a broken path cannot show up
as a fast one.

Usage: python bench/bench_local.py [--sizes 100 1000 10000] [--runs 5] [--quick]
                                   [--skip-original] [--array-jobs 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # a sibling module
    Unavailable,
    ensure_venv,
    fmt_ratio,
    ratio,
    run_quiet,
    table,
    tail,
)

from gridmap_core import grid_map

WORKERS = 2
ORIGINAL_REQUIREMENT = "gridmap==0.15.0"
ORIGINAL_VERSION = "0.15.0"
BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR / ".venvs" / "gridmap015"
TIMER_SCRIPT = BENCH_DIR / "original_timer.py"
MARK = "@@BENCH "
ARRAY_LENGTH = 2_500_000  # float64, so 20 MB per result
DEFAULT_SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (100, 1_000)
# Generous: a timed run of the original at 10,000 inputs takes about a second.
ORIGINAL_REPLY_TIMEOUT = 600.0
# Variables that would let the venv's interpreter see this project's packages.
_LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
                    "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


def double(x: int) -> int:
    return 2 * x


def make_array(seed: int) -> Any:
    # Imported here so the trivial benchmark needs no numpy; the cost is paid once
    # per worker process and is the same for both contenders.
    import numpy as np

    return np.random.default_rng(seed).random(ARRAY_LENGTH)


class BenchmarkError(RuntimeError):
    """A contender returned wrong results: the timing would be meaningless."""


class OriginalUnavailable(Unavailable):
    """The original GridMap cannot be installed or timed; its column is skipped."""


# -- contenders run in this process ------------------------------------------------------

def run_gridmap(function: Callable[[Any], Any], inputs: list[int]) -> list[Any]:
    return grid_map(function, inputs, local=True, max_processes=WORKERS)


def run_pool(function: Callable[[Any], Any], inputs: list[int]) -> list[Any]:
    # Created and closed inside the timed region, the way a user writes it.
    with Pool(WORKERS) as pool:
        return pool.map(function, inputs)


def timed(runner: Callable[[Callable[[Any], Any], list[int]], list[Any]],
          function: Callable[[Any], Any], inputs: list[int]) -> tuple[float, list[Any]]:
    gc.collect()  # so garbage left by the previous run is not collected on our clock
    start = time.perf_counter()
    result = runner(function, inputs)
    return time.perf_counter() - start, result


def check_trivial(name: str, result: list[Any], expected: list[int]) -> None:
    if result != expected:
        raise BenchmarkError(f"{name} returned wrong results for {len(expected)} inputs")


def check_arrays(name: str, result: list[Any], expected_sums: list[float]) -> None:
    import numpy as np

    if len(result) != len(expected_sums):
        raise BenchmarkError(f"{name} returned {len(result)} arrays, not {len(expected_sums)}")
    for seed, (array, expected) in enumerate(zip(result, expected_sums, strict=True)):
        if not isinstance(array, np.ndarray) or array.shape != (ARRAY_LENGTH,) \
                or array.dtype != np.float64:
            raise BenchmarkError(f"{name}: result {seed} is not a float64 array of "
                                 f"{ARRAY_LENGTH} values")
        # The same generator and the same summation give the same bits, so any
        # corrupted or swapped result shows here.
        if float(array.sum()) != expected:
            raise BenchmarkError(f"{name}: result {seed} has the wrong checksum")


# -- the original GridMap, in its own virtual environment -------------------------------

def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES}


def installed_original(python: Path, cwd: str) -> str | None:
    """The gridmap version the venv's interpreter sees in isolation, if any."""
    if not python.exists():
        return None
    probe = run_quiet([python, "-I", "-c",
                       "import importlib.metadata as m; print(m.version('gridmap'))"], 60, cwd,
                      clean_environment())
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_original_venv(venv: Path, log: Callable[[str], None]) -> Path:
    """Create the venv with the original GridMap once; reuse it afterwards."""
    return ensure_venv(venv, [ORIGINAL_REQUIREMENT],
                       lambda python, cwd: installed_original(python, cwd) == ORIGINAL_VERSION,
                       log, clean_environment())


class OriginalTimer:
    """original_timer.py running in the venv, answering one request at a time.

    It stays alive for the whole benchmark so its runs interleave with ours, and
    sits blocked on stdin, using no CPU, while this process measures.
    """

    def __init__(self, python: Path) -> None:
        self._workdir = tempfile.TemporaryDirectory()
        # Copied into an empty directory and started there with -I: neither the
        # working directory, the script's directory, PYTHONPATH nor user site-packages
        # reach sys.path, so this project's own `gridmap` package cannot be imported.
        script = Path(self._workdir.name) / TIMER_SCRIPT.name
        shutil.copyfile(TIMER_SCRIPT, script)
        # Kept open while the timer runs and closed in close(); read only on failure.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(python), "-I", str(script)], cwd=self._workdir.name,
            env=clean_environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1)
        self._replies: queue.Queue[str | None] = queue.Queue()
        # A reader thread, so a hung or dead timer turns into a timeout, not a hang.
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._receive()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith(MARK):
                self._replies.put(line[len(MARK):])
        self._replies.put(None)

    def _receive(self) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=ORIGINAL_REPLY_TIMEOUT)
        except queue.Empty:
            raise OriginalUnavailable(
                f"no answer within {ORIGINAL_REPLY_TIMEOUT:.0f} s") from None
        if line is None:
            raise OriginalUnavailable(
                f"the timer exited ({self._process.wait()}):\n{self._stderr_tail()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise OriginalUnavailable(f"{reply['error']}\n{self._stderr_tail()}")
        return reply

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return tail(self._stderr.read())

    def request(self, op: str, n: int = 0) -> dict[str, Any]:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"op": op, "n": n}) + "\n")
            self._process.stdin.flush()
        except OSError as error:
            raise OriginalUnavailable(f"the timer is gone: {error}") from error
        return self._receive()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._stderr.close()
        self._workdir.cleanup()


# -- measuring ----------------------------------------------------------------------------

def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def bench_trivial(sizes: Sequence[int], runs: int, timer: OriginalTimer | None,
                  log: Callable[[str], None]) -> tuple[dict[str, Any], str | None]:
    """Time the three contenders on double(x); returns figures and why the original
    was dropped midway, if it was."""
    dropped: str | None = None
    series: dict[int, dict[str, list[float]]] = {
        n: {"gridmap": [], "pool": [], "original": [], "original_pool": []} for n in sizes}

    # One untimed round pays the one-off costs (imports, plugin discovery, the first
    # fork of a large parent) before any run is counted.
    warm = list(range(min(sizes)))
    run_gridmap(double, warm)
    run_pool(double, warm)
    if timer is not None:
        try:
            timer.request("warmup", len(warm))
        except Unavailable as error:
            timer, dropped = None, str(error)
            log(f"the original GridMap failed its warm-up run; skipping it: {error}")

    for n in sizes:
        inputs = list(range(n))
        expected = [2 * x for x in inputs]
        for run in range(runs):
            elapsed, result = timed(run_gridmap, double, inputs)
            check_trivial("gridmap", result, expected)
            series[n]["gridmap"].append(elapsed)
            elapsed, result = timed(run_pool, double, inputs)
            check_trivial("Pool", result, expected)
            series[n]["pool"].append(elapsed)
            del result
            if timer is not None:
                try:
                    reply = timer.request("run", n)
                except Unavailable as error:
                    timer, dropped = None, str(error)
                    log(f"the original GridMap stopped answering; skipping it: {error}")
                else:
                    series[n]["original"].append(reply["original"])
                    series[n]["original_pool"].append(reply["pool"])
            log(f"  trivial n={n:,} run {run + 1}/{runs} done")
    if timer is not None:
        # Its own medians, from its own clock: cross-check with what we received.
        try:
            final = timer.request("finish")
        except Unavailable as error:
            dropped = str(error)
        else:
            for n in sizes:
                theirs = final["medians"][str(n)]
                ours = median(series[n]["original"])
                if ours is None or abs(theirs["original"] - ours) > 1e-9:
                    raise BenchmarkError("the timer's medians do not match its runs")

    figures: dict[str, Any] = {}
    for n in sizes:
        s = series[n]
        medians = {name: median(values) for name, values in s.items()}
        figures[str(n)] = {
            "times": s,
            "medians": medians,
            "ratios": {
                "gridmap/pool": ratio(medians["gridmap"], medians["pool"]),
                "original/pool": ratio(medians["original"], medians["pool"]),
                "original/original_pool": ratio(medians["original"],
                                                medians["original_pool"]),
                "gridmap/original": ratio(medians["gridmap"], medians["original"]),
            },
        }
    return figures, dropped


def bench_arrays(jobs: int, runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Time gridmap and Pool on jobs that each return a 20 MB array."""
    inputs = list(range(jobs))
    # Built here once, outside every timed region: what each job must return.
    expected_sums = [float(make_array(seed).sum()) for seed in inputs]
    series: dict[str, list[float]] = {"gridmap": [], "pool": []}
    for run in range(runs):
        elapsed, result = timed(run_gridmap, make_array, inputs)
        check_arrays("gridmap", result, expected_sums)
        series["gridmap"].append(elapsed)
        del result  # free the gigabyte of results before the next contender runs
        elapsed, result = timed(run_pool, make_array, inputs)
        check_arrays("Pool", result, expected_sums)
        series["pool"].append(elapsed)
        del result
        log(f"  arrays run {run + 1}/{runs} done")
    medians = {name: median(values) for name, values in series.items()}
    return {"jobs": jobs, "megabytes_per_result": ARRAY_LENGTH * 8 / 1e6, "times": series,
            "medians": medians,
            "ratios": {"gridmap/pool": ratio(medians["gridmap"], medians["pool"])}}


# -- reporting ----------------------------------------------------------------------------

def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def report(results: dict[str, Any]) -> str:
    runs = results["settings"]["runs"]
    machine = results["machine"]
    out = [
        f"gridmap local backend benchmark, {results['date']}",
        f"{machine['platform']}, Python {machine['python']}, {machine['cpus']} CPUs, "
        f"load average {machine['load_before']} before, {machine['load_after']} after",
        f"max_processes={WORKERS}; median of {runs} interleaved runs; ratio = median / "
        f"median of Pool({WORKERS}).map",
    ]
    original = results["original"]
    if original["status"] != "ok":
        out.append(f"original GridMap {ORIGINAL_VERSION}: skipped ({original['reason']})")
    trivial = results["trivial"]
    if trivial:
        out += ["", "Trivial jobs, double(x):"]
        with_original = any(fig["medians"]["original"] is not None
                            for fig in trivial.values())
        header = ["inputs", "gridmap", "Pool", "gridmap/Pool"]
        if with_original:
            header += [f"GridMap {ORIGINAL_VERSION}", "orig/Pool", "Pool (venv)",
                       "orig/Pool (venv)"]
        rows = []
        for n, fig in trivial.items():
            m, r = fig["medians"], fig["ratios"]
            row = [f"{int(n):,}", fmt_time(m["gridmap"]), fmt_time(m["pool"]),
                   fmt_ratio(r["gridmap/pool"])]
            if with_original:
                row += [fmt_time(m["original"]), fmt_ratio(r["original/pool"]),
                        fmt_time(m["original_pool"]), fmt_ratio(r["original/original_pool"])]
            rows.append(row)
        out.append(table(header, rows))
        if with_original:
            out.append("  orig/Pool divides by the Pool timed in this process; orig/Pool "
                       "(venv) by the Pool timed\n  in the original's own process, the "
                       "like-for-like ratio.")
    arrays = results["arrays"]
    if arrays:
        m = arrays["medians"]
        out += ["", f"{arrays['jobs']} jobs each returning a "
                    f"{arrays['megabytes_per_result']:.0f} MB float64 array:"]
        out.append(table(["jobs", "gridmap", "Pool", "gridmap/Pool"],
                         [[str(arrays["jobs"]), fmt_time(m["gridmap"]), fmt_time(m["pool"]),
                           fmt_ratio(arrays["ratios"]["gridmap/pool"])]]))
    targets = []
    if "10000" in trivial:
        value = trivial["10000"]["ratios"]["gridmap/pool"]
        targets.append(f"10,000 trivial jobs within 2x of Pool: {fmt_ratio(value)} "
                       f"({'met' if value <= 2 else 'NOT met'})")
    if arrays and arrays["jobs"] == 50:
        value = arrays["ratios"]["gridmap/pool"]
        targets.append(f"50 x 20 MB no slower than Pool: {fmt_ratio(value)} "
                       f"({'met' if value <= 1 else 'NOT met'})")
    if targets:
        out += ["", "Targets:"] + [f"  {t}" for t in targets]
    return "\n".join(out)


# -- command line -------------------------------------------------------------------------

def parse_sizes(values: Sequence[str]) -> list[int]:
    # Accepts "100 1000", "100,1000" and "10_000" alike.
    sizes = [int(part) for value in values for part in value.split(",") if part]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--sizes needs whole numbers of at least 1")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", metavar="N",
                        help="numbers of trivial jobs (default 100 1000 10000; "
                             "--quick: 100 1000)")
    parser.add_argument("--runs", type=int,
                        help="timed runs per contender and size (default 5; --quick: 3)")
    parser.add_argument("--array-jobs", type=int,
                        help="jobs returning a 20 MB array, 0 to skip "
                             "(default 50; --quick: 10)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 3 runs, for a smoke test")
    parser.add_argument("--skip-original", action="store_true",
                        help="do not install or time the original GridMap")
    parser.add_argument("--venv", type=Path, default=VENV_DIR,
                        help=f"venv for the original GridMap (default {VENV_DIR})")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    try:
        args.sizes = parse_sizes(args.sizes) if args.sizes else \
            list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(f"--sizes: {error}")
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.array_jobs is None:
        args.array_jobs = 10 if args.quick else 50
    if args.runs < 1 or args.array_jobs < 0:
        parser.error("--runs must be at least 1 and --array-jobs at least 0")
    return args


def load_average() -> str:
    with contextlib.suppress(OSError, AttributeError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"


@contextlib.contextmanager
def original_timer(args: argparse.Namespace, original: dict[str, Any],
                   log: Callable[[str], None]) -> Iterator[OriginalTimer | None]:
    """The running timer for the original GridMap, or None (with the reason recorded)."""
    if args.skip_original:
        original.update(status="skipped", reason="--skip-original")
        yield None
        return
    try:
        timer = OriginalTimer(ensure_original_venv(args.venv, log))
    except Unavailable as error:
        log(f"skipping the original GridMap: {error}")
        original.update(status="skipped", reason=str(error).splitlines()[0])
        yield None
        return
    original.update(status="ok", version=timer.hello["version"], file=timer.hello["file"])
    try:
        yield timer
    finally:
        timer.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_before": load_average()},
        "settings": {"max_processes": WORKERS, "runs": args.runs, "sizes": args.sizes,
                     "array_jobs": args.array_jobs, "array_length": ARRAY_LENGTH},
        "original": {"status": "skipped", "reason": ""},
        "trivial": {}, "arrays": {},
    }
    with original_timer(args, results["original"], log) as timer:
        results["trivial"], dropped = bench_trivial(args.sizes, args.runs, timer, log)
    if dropped:
        results["original"].update(status="failed", reason=dropped.splitlines()[0])
    if args.array_jobs:
        try:
            import numpy  # noqa: F401
        except ImportError:
            log("numpy is not installed: skipping the 20 MB array benchmark")
        else:
            results["arrays"] = bench_arrays(args.array_jobs, args.runs, log)
    results["machine"]["load_after"] = load_average()

    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
