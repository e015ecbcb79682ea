"""Benchmark trivial jobs end to end on a real Slurm cluster: raw sbatch, submitit, gridmap.

Each run does N trivial jobs (200 by default), one array element per input, and is timed
from submission until every result is back:

* **raw**: ``sbatch --parsable --array=1-N -o /dev/null --wrap=true``, then ``squeue -h
  -j ID`` every 0.2 s until it lists nothing. The scheduler's floor: no Python anywhere.
* **raw-python** (a variant): the same array running ``python -c pass`` per element, to
  show what starting an interpreter per job costs on this machine.
* **submitit**: ``submitit.AutoExecutor(folder=..., cluster="slurm")``,
  ``executor.map_array(square, range(N))`` and ``[job.result() for job in jobs]``, run by
  its own virtual environment (bench/.venvs/submitit, built on first use).
* **submitit-poll** (a variant): the same, with the results awaited through submitit's
  asyncio API and its documented ``poll_interval`` (0.1 s) instead of ``result()``'s 1 s.
* **gridmap**: this project, ``grid_map(square, range(N), backend="slurm", ...)``. With
  REUSE_RUNNERS on (the default), a runner that has finished its job takes on a queued
  one, and the array elements whose jobs were taken are cancelled.
* **gridmap-fresh** (a variant): the same with ``GRIDMAP_REUSE_RUNNERS=0``: every job
  runs in an array element of its own, as raw and submitit do.

``square(x) = x * x``. Each Python contender runs in a fresh subprocess of this file
(``--child``) that times only the submitting and collecting with its own clock, so
interpreter start-up and imports are outside the timed region. Rounds are interleaved
(each runs every contender once) and their order rotates; before every run the script
waits until none of its own jobs is left on the cluster. Every run's results are
checked. Progress goes to stderr, the table to stdout. The harness shared with
bench_sge.py is cluster_bench.py; this file holds what is particular to Slurm.

Usage: python bench/bench_slurm.py [--jobs 200] [--rounds 3] [--quick] [--skip-raw]
                                   [--skip-submitit] [--skip-gridmap] [--skip-variants]
                                   [--json PATH] [--multinode [--kill-node NODE]]
                                   [--job-seconds S]
(--multinode: on the three-node cluster of scripts/multinode; bench/README.md)
"""

# Only the standard library at module level: the same file runs as submitit's child
# inside its venv, where this project's packages must not be imported.
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Unavailable, fmt_ratio, table, tail  # sibling modules
from cluster_adapter import Benchmark, Outcome, Peer
from cluster_bench import busy_note, main, ratios
from cluster_child import ContenderFailed, ContenderUnavailable
from cluster_queue import Cluster, QueuedJob
from cluster_runs import Context

if TYPE_CHECKING:
    from cluster_multinode import Setup

TARGET_RAW_RATIO = 1.3
RAW_POLL = 0.2  # seconds between squeue calls while a raw array runs
TUNED_POLL = 0.1  # submitit-poll's poll_interval
EXIT_UNAVAILABLE = 3  # Slurm is not running or its tools are missing
_SLURM_TOOLS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
HEADLINE_RATIOS = (("gridmap/raw", "gridmap", "raw"),
                   ("gridmap/submitit", "gridmap", "submitit"),
                   ("submitit/raw", "submitit", "raw"))
VARIANT_RATIOS = (("gridmap/raw-python", "gridmap", "raw-python"),
                  ("raw-python/raw", "raw-python", "raw"),
                  ("submitit-poll/submitit", "submitit-poll", "submitit"),
                  ("gridmap/submitit-poll", "gridmap", "submitit-poll"),
                  ("gridmap-fresh/raw", "gridmap-fresh", "raw"),
                  ("gridmap/gridmap-fresh", "gridmap", "gridmap-fresh"))

# How submitit 1.5.4 waits for results (read in its source, submitit/core/core.py):
#
# * ``Job.result()`` calls ``Job.wait()``, which is ``while not self.done():
#   time.sleep(1)``: a fixed 1 s poll. No argument, environment variable or
#   ``submitit.helpers`` setting changes it.
# * ``Job.done()`` first looks for the job's ``<id>_result.pkl`` in the folder (after a
#   chmod of the folder, to refresh a network filesystem's cache). Only while that file
#   is missing does it ask Slurm, through the class-wide ``SlurmInfoWatcher(delay_s=600)``
#   (one ``sacct`` for all jobs), at most at 0, 2, 4, 8, 16... s after the last
#   submission and then every 600 s. Results are therefore seen through the filesystem.
# * The documented way to wait differently is the asyncio API:
#   ``await job.awaitable().result(poll_interval=1)``, whose docstring says
#   "how often to check if the result is available, in seconds". The submitit-poll
#   variant uses it with 0.1 s. ``submitit.helpers.as_completed(jobs,
#   poll_frequency=10)`` polls every 10 s by default, slower still, so it is not used.
#
# With ``[job.result() for job in jobs]`` the 1 s sleep delays only the moment the last
# results are noticed: it adds up to 1 s (0.5 s on average) to a run. The headline
# figure is submitit's default.


def square(x: int) -> int:
    return x * x


def slurm_problem() -> str | None:
    """Why Slurm cannot be used from here, or None."""
    missing = [tool for tool in _SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not on PATH: install Slurm's client tools "
                "(Debian: slurm-client)")
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.exists(conf):
        return f"SLURM_CONF={conf} does not exist: point it at slurm.conf, or unset it"
    try:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"scontrol ping failed: {error}"
    if " is UP" not in done.stdout:
        text = (done.stdout + done.stderr).strip().splitlines()
        return (f"slurmctld does not answer (scontrol ping: {text[0] if text else 'no output'}): "
                "start Slurm (see shared/notes/slurm-single-node.md)")
    return None


def max_array_size(cluster: Cluster) -> int:
    """The cluster's MaxArraySize (array indices stay below it): 1001 unless set."""
    for line in cluster.run("scontrol", "show", "config").stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return max(int(value.strip()), 2)
    return 1001


class SlurmCluster(Cluster):
    """squeue and scancel; Slurm's version, settings and partitions for the report."""

    delete_tool, delete_verb = "scancel", "cancelling"

    def jobs(self) -> list[QueuedJob]:
        """Every job not yet ended (pending, running, completing...), one per array task."""
        done = self.run("squeue", "-h", "-r", "-o", "%F|%i|%T|%N|%j")
        if done.returncode != 0:
            raise RuntimeError(f"squeue failed ({done.returncode}): {tail(done.stderr, 3)}")
        found = []
        for line in done.stdout.splitlines():
            cells = line.split("|", 4)
            if len(cells) == 5:  # the array's id (the job's own outside an array) is cancelled
                found.append(QueuedJob(cells[0], cells[4], cells[2] == "PENDING", cells[3]))
        return found

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            info["version"] = self.run("sinfo", "--version").stdout.strip()
        with contextlib.suppress(Exception):
            for line in self.run("scontrol", "show", "config").stdout.splitlines():
                key, _, value = line.partition("=")
                if key.strip() in ("SchedulerParameters", "SelectTypeParameters",
                                   "AccountingStorageType", "MinJobAge", "MaxArraySize"):
                    info[key.strip()] = value.strip()
        with contextlib.suppress(Exception):
            partitions = {}
            for line in self.run("scontrol", "show", "partition", "-o").stdout.splitlines():
                fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
                partitions[fields.get("PartitionName", "?")] = {
                    key: fields.get(key) for key in ("Nodes", "TotalCPUs", "OverSubscribe",
                                                     "Default", "State")}
            info["partitions"] = partitions
        return info


class SlurmBenchmark(Benchmark):
    title, backend = "Slurm", "slurm"
    contenders = ("raw", "raw-python", "submitit", "submitit-poll", "gridmap", "gridmap-fresh")
    variants = ("raw-python", "submitit-poll", "gridmap-fresh")
    labels: ClassVar[Mapping[str, str]] = {
        "raw": "raw sbatch array (true)",
        "raw-python": "raw sbatch array (python -c pass)",
        "submitit": "submitit, job.result()",
        "submitit-poll": "submitit, poll_interval 0.1 s",
        "gridmap": 'gridmap, backend "slurm"',
        "gridmap-fresh": "gridmap, a runner per job (REUSE_RUNNERS off)",
    }
    peer = Peer("submitit", "submitit", "submitit", ("submitit",), "import submitit")
    skips: ClassVar[Mapping[str, str]] = {
        "raw": "do not time the raw sbatch arrays (both raw contenders)",
        "submitit": "do not install or time submitit (both submitit contenders)",
        "gridmap": "do not time this project's slurm backend"}
    rounds_word, rounds_flags = "round", ("--rounds", "--runs")
    rounds_help = "interleaved rounds, one run of every contender each (default 3; --quick: 1)"
    default_timeout = 600.0
    temp_dir_help = ("where the jobs' working directories go; must be visible to the compute "
                     "nodes (default: the system temp dir)")
    others_text = "{running} job(s) running and {pending} pending"
    cluster_type = SlurmCluster
    unavailable_status = EXIT_UNAVAILABLE
    multinode_kind = "slurm"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--submitit-poll", type=float, default=TUNED_POLL, metavar="S",
                            help=f"submitit-poll's poll_interval (default {TUNED_POLL})")
        parser.add_argument("--partition",
                            help="partition for every contender (default: the cluster's "
                                 "default partition; submitit is given 'debug' unless this "
                                 "is set)")
        parser.add_argument("--child-poll", type=float, help=argparse.SUPPRESS)

    def check_arguments(self, parser: argparse.ArgumentParser,
                        args: argparse.Namespace) -> None:
        if args.submitit_poll <= 0:
            parser.error("--submitit-poll must be positive")

    def use_multinode(self, args: argparse.Namespace, setup: Setup) -> None:
        # Its SLURM_CONF is in this process's environment already: sbatch and squeue,
        # here and in the children, talk to its controller.
        args.partition = args.partition or setup.queue

    def environment(self, args: argparse.Namespace,
                    log: Callable[[str], None]) -> dict[str, str]:
        problem = slurm_problem()
        if problem:
            raise Unavailable(problem)
        # Variables Slurm sets inside a job would mislead sbatch if this runs inside one.
        return {k: v for k, v in os.environ.items()
                if not k.startswith("SLURM_") or k == "SLURM_CONF"}

    def unreachable(self, error: BaseException) -> str:
        return f"Slurm is not available here: {error}"

    def job_name(self, prefix: str, contender: str) -> str:
        return f"{prefix}-{contender}"

    def run_raw(self, ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
        # The interpreter running this script: `python3` on PATH may be a wrapper (a pyenv
        # shim is a shell script) that costs more to start than the interpreter itself.
        nap = ctx.args.job_seconds
        if contender == "raw":
            wrap = f"sleep {nap:g}" if nap else "true"
        else:
            code = f"import time; time.sleep({nap!r})" if nap else "pass"
            wrap = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
        partition = [f"--partition={ctx.args.partition}"] if ctx.args.partition else []
        # Array indices must stay below MaxArraySize: more jobs are several arrays.
        most = max_array_size(ctx.cluster) - 1
        sizes = [min(most, jobs - first) for first in range(0, jobs, most)]
        deadline = time.monotonic() + ctx.args.timeout
        start = time.perf_counter()
        arrays: list[str] = []
        for size in sizes:
            command = ["sbatch", "--parsable", f"--array=1-{size}", "-o", "/dev/null",
                       f"--job-name={ctx.job_name(contender)}", *partition, f"--wrap={wrap}"]
            done = subprocess.run(command, cwd=workdir, env=ctx.base_env, capture_output=True,
                                  text=True, timeout=ctx.args.timeout, check=False)
            array = done.stdout.strip().split(";")[0]
            if done.returncode != 0 or not array.isdigit():
                if arrays:
                    ctx.cluster.run("scancel", *arrays)
                raise ContenderFailed(f"sbatch exited with status {done.returncode}: "
                                      f"{tail(done.stderr or done.stdout)}")
            arrays.append(array)
        ids = ",".join(arrays)
        polls = 0
        while True:
            polls += 1
            queued = subprocess.run(["squeue", "-h", "-j", ids], env=ctx.base_env,
                                    capture_output=True, text=True, timeout=60, check=False)
            if queued.returncode == 0 and not queued.stdout.strip():
                break
            if queued.returncode != 0 and "Invalid job id" not in queued.stderr:
                raise ContenderFailed(f"squeue -j {ids} failed: {tail(queued.stderr)}")
            if queued.returncode != 0:
                break  # slurmctld has already forgotten the arrays
            if time.monotonic() > deadline:
                ctx.cluster.run("scancel", *arrays)
                raise ContenderFailed(f"array(s) {ids} still queued after "
                                      f"{ctx.args.timeout:.0f} s")
            time.sleep(RAW_POLL)
        elapsed = time.perf_counter() - start
        # Outside the clock: every element must have ended COMPLETED (exit code 0).
        states = ctx.cluster.run("squeue", "-h", "-r", "-t", "all", "-j", ids, "-o", "%i|%T")
        ended = dict(line.split("|", 1) for line in states.stdout.split() if "|" in line)
        bad = {task: state for task, state in ended.items() if state != "COMPLETED"}
        if len(ended) != jobs or bad:
            raise ContenderFailed(f"array(s) {ids}: squeue lists {len(ended)} of {jobs} "
                                  f"elements; not COMPLETED: {dict(list(bad.items())[:10])}")
        return Outcome(elapsed, elapsed, {"wrap": wrap},
                       {"squeue_polls": polls, "arrays": len(arrays)})

    def child_peer(self, args: argparse.Namespace) -> dict[str, Any]:
        try:
            submitit = importlib.import_module("submitit")
            version = importlib.metadata.version("submitit")
        except Exception as error:
            raise ContenderUnavailable(f"cannot import submitit: {error!r}") from error
        location = Path(submitit.__file__ or ".").resolve()
        if not location.is_relative_to(Path(sys.prefix).resolve()):
            raise ContenderUnavailable(f"imported submitit from {location}, "
                                       f"not from {sys.prefix}")
        inputs = range(args.jobs)
        gc.collect()  # so garbage from the imports is not collected on the clock
        made = time.perf_counter()
        executor = submitit.AutoExecutor(folder=args.child_temp_dir, cluster="slurm")
        executor.update_parameters(slurm_partition=args.partition or "debug", timeout_min=10,
                                   slurm_array_parallelism=args.jobs, name=args.child_name)
        start = time.perf_counter()
        jobs = executor.map_array(square, inputs)
        submitted = time.perf_counter()
        if args.child_poll is None:
            results = [job.result() for job in jobs]
        else:
            async def collect() -> list[int]:
                return [await job.awaitable().result(poll_interval=args.child_poll)
                        for job in jobs]

            results = asyncio.run(collect())
        elapsed = time.perf_counter() - start
        return {"seconds": elapsed, "submit_seconds": submitted - start,
                "executor_seconds": start - made, "results": results, "version": version,
                "file": str(location),
                "array": jobs[0].job_id.split("_")[0] if jobs else None}

    def child_arguments(self, args: argparse.Namespace, contender: str) -> list[str]:
        poll = ["--child-poll", str(args.submitit_poll)] if contender == "submitit-poll" else []
        return poll + (["--partition", args.partition] if args.partition else [])

    def child_settings(self, contender: str) -> dict[str, str]:
        return {"GRIDMAP_REUSE_RUNNERS": "0"} if contender == "gridmap-fresh" else {}

    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"raw_poll": RAW_POLL, "submitit_poll": args.submitit_poll,
                "partition": args.partition}

    def summarize(self, medians: Mapping[str, float | None]) -> dict[str, Any]:
        headline = ratios(medians, HEADLINE_RATIOS)
        return {"ratios": headline, "variant_ratios": ratios(medians, VARIANT_RATIOS),
                "targets": {key: text for key, text in verdicts(headline).items() if text}}

    def describe_lines(self, results: Mapping[str, Any], runs: str) -> list[str]:
        cluster = results["cluster"]
        parts = cluster.get("partitions") or {}
        return [f"{cluster.get('version', 'Slurm')}; partitions: "
                + (", ".join(f"{name} {p.get('TotalCPUs')} CPUs "
                             f"OverSubscribe={p.get('OverSubscribe')}"
                             for name, p in parts.items()) or "unknown")
                + f"; SchedulerParameters={cluster.get('SchedulerParameters', '?')}", runs]

    def ratio_lines(self, results: Mapping[str, Any]) -> list[str]:
        found, notes_of = results["ratios"], verdicts(results["ratios"])
        out = ["", table(["ratio of medians", "value", "target"],
                         [[key, fmt_ratio(value), notes_of[key]] for key, value in found.items()],
                         "lrl")]
        variants = {k: v for k, v in results["variant_ratios"].items() if v is not None}
        if variants:
            out += ["", table(["variant ratio", "value"],
                              [[key, fmt_ratio(value)] for key, value in variants.items()],
                              "lr")]
        return out

    def notes(self, results: Mapping[str, Any]) -> list[str]:
        notes = []
        if results["contenders"]["submitit"]["status"] == "ok":
            notes.append("submitit's job.result() checks for its result file once a second (a "
                         "fixed time.sleep(1)); submitit-poll uses the documented asyncio "
                         f"poll_interval ({results['settings']['submitit_poll']} s). The "
                         "headline ratios use the default.")
        return notes + busy_note(results, {}, "the CPUs")


def verdicts(found: Mapping[str, float | None]) -> dict[str, str]:
    def verdict(value: float | None, met: bool) -> str:
        return "not measured" if value is None else ("met" if met else "NOT met")

    to_raw, to_submitit = found["gridmap/raw"], found["gridmap/submitit"]
    return {
        "gridmap/raw": (f"<= {TARGET_RAW_RATIO}x: "
                        + verdict(to_raw, to_raw is not None and to_raw <= TARGET_RAW_RATIO)),
        "gridmap/submitit": ("< 1.00x (gridmap faster): "
                             + verdict(to_submitit, to_submitit is not None
                                       and to_submitit < 1.0)),
        "submitit/raw": "",
    }


if __name__ == "__main__":
    sys.exit(main(SlurmBenchmark(__file__, __doc__, square)))
