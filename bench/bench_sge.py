"""Benchmark trivial jobs end to end on a real Son of Grid Engine cluster, three ways.

Each run maps ``double(x) = 2 * x`` over N inputs (200 by default), one cluster job or
array task per input, and is timed from submission until every result is back:

* **raw**: one Grid Engine array, ``qsub -sync y -t 1-N -b y ... python -c '...'``, whose
  tasks each print ``2 * (SGE_TASK_ID - 1)``. No Python on the submitting side, no
  monitor, no heartbeats: the scheduler's floor for this work.
* **original**: the original GridMap 0.15.0 (``gridmap.grid_map(double, ...)``), run by
  its own virtual environment's interpreter (bench/.venvs/gridmap015-sge by default,
  built on first use), which submits one DRMAA job per input.
* **gridmap**: this project, ``gridmap.grid_map(double, ..., backend="sge",
  require_cluster=True)``.

Each Python contender runs in a fresh subprocess of this same file (``--child``), which
times only the grid_map call with its own clock; interpreter start-up and imports are
outside the timed region. Runs are interleaved in rounds whose order rotates (raw,
original, gridmap; then original, gridmap, raw; ...), and before every run the script
waits until none of its own jobs is left on the cluster. Every run's results are
checked. Progress goes to stderr, the table to stdout. The harness shared with
bench_slurm.py is cluster_bench.py; this file holds what is particular to Grid Engine.

Usage: python bench/bench_sge.py [--jobs 200] [--runs 3] [--quick] [--skip-original]
                                 [--skip-gridmap] [--venv PATH] [--json PATH]
                                 [--multinode [--kill-node NODE]] [--job-seconds S]
(--multinode: on the three-node cluster of scripts/multinode; bench/README.md)
"""

# Only the standard library at module level: the same file runs as the child of the
# original GridMap inside its venv, where this project's packages must not be imported.
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.metadata
import os
import re
import shlex
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import fmt_ratio, load_env_file, table, tail  # sibling modules
from cluster_adapter import Benchmark, Outcome, Peer
from cluster_bench import busy_note, main, ratios
from cluster_child import ContenderFailed, ContenderUnavailable
from cluster_queue import Cluster, QueuedJob
from cluster_runs import Context, run_process

if TYPE_CHECKING:
    from cluster_multinode import Setup

SGE_ENV_FILE = Path(os.environ.get("GRIDMAP_SGE_ENV_FILE", "/etc/gridmap-sge.env"))
ORIGINAL_VERSION = "0.15.0"
TARGET_RATIO = 1.3
# The original's workers sleep random.randint(0, 5) seconds before fetching their input.
ORIGINAL_MEAN_SLEEP = 2.5
RAW_CODE = 'import os; print(2 * (int(os.environ["SGE_TASK_ID"]) - 1))'
RAW_NAP = "import time; time.sleep({seconds!r}); "  # before RAW_CODE, with --job-seconds
RATIOS = (("gridmap/raw", "gridmap", "raw"), ("gridmap/original", "gridmap", "original"),
          ("original/raw", "original", "raw"))


def double(x: int) -> int:
    return 2 * x


class SgeCluster(Cluster):
    """qstat and qdel; the cluster's queues and their slots for the report."""

    delete_tool, delete_verb = "qdel", "deleting"

    def jobs(self) -> list[QueuedJob]:
        # One entry per running task, one per pending job or array.
        done = self.run("qstat", "-u", "*", "-xml")
        if done.returncode != 0:
            raise RuntimeError(f"qstat failed ({done.returncode}): {tail(done.stderr, 3)}")
        try:
            root = ElementTree.fromstring(done.stdout)
        except ElementTree.ParseError as error:
            raise RuntimeError(f"qstat -xml printed something that is not XML: {error}") \
                from error
        # A running task's queue instance is "all.q@host".
        return [QueuedJob(item.findtext("JB_job_number", ""), item.findtext("JB_name", ""),
                          "q" in item.findtext("state", ""),
                          item.findtext("queue_name", "").partition("@")[2])
                for item in root.iter("job_list")]

    def describe(self) -> dict[str, Any]:
        """Used and total slots per cluster queue (``qstat -g c``); empty if unknown."""
        queues: dict[str, dict[str, int]] = {}
        with contextlib.suppress(Exception):
            for line in self.run("qstat", "-g", "c").stdout.splitlines()[2:]:
                cells = line.split()
                if len(cells) >= 6 and cells[2].isdigit() and cells[5].isdigit():
                    queues[cells[0]] = {"used": int(cells[2]), "total": int(cells[5])}
        return {"queues": queues, "slots": sum(q["total"] for q in queues.values()) or None}


class SgeBenchmark(Benchmark):
    title, backend = "SGE", "sge"
    contenders = ("raw", "original", "gridmap")
    labels: ClassVar[Mapping[str, str]] = {
        "raw": "raw qsub array", "original": f"GridMap {ORIGINAL_VERSION}",
        "gridmap": 'gridmap, backend "sge"'}
    peer = Peer("original", "the original GridMap", "gridmap015-sge",
                (f"gridmap=={ORIGINAL_VERSION}", "drmaa"),
                "import importlib.metadata as m; print(m.version('gridmap'), m.version('drmaa'))",
                ORIGINAL_VERSION)
    skips: ClassVar[Mapping[str, str]] = {"original": "do not install or time the original GridMap",
             "gridmap": "do not time this project's sge backend"}
    rounds_word, rounds_flags = "run", ("--runs",)
    rounds_help = "timed runs per contender (default 3; --quick: 1)"
    default_timeout = 900.0
    temp_dir_help = ("where the jobs' working and log directories go; must be visible to the "
                     "execution hosts (default: the system temp dir)")
    others_text = "{running} task(s) running and {pending} job(s) pending"
    cluster_type = SgeCluster
    multinode_kind = "sge"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--queue", help="cluster queue for every contender (default: "
                                            "each one's default; the original's is all.q)")
        parser.add_argument("--sge-env", type=Path, default=SGE_ENV_FILE,
                            help=f"the cluster's client environment file (default "
                                 f"{SGE_ENV_FILE})")

    def use_multinode(self, args: argparse.Namespace, setup: Setup) -> None:
        args.sge_env = setup.env_file
        args.queue = args.queue or setup.queue

    def environment(self, args: argparse.Namespace,
                    log: Callable[[str], None]) -> dict[str, str]:
        env = dict(os.environ)
        sge_env = load_env_file(args.sge_env)
        if sge_env:
            env.update(sge_env)
        else:
            log(f"{args.sge_env} not found: using this process's environment for the cluster")
        return env

    def unreachable(self, error: BaseException) -> str:
        return (f"cannot talk to the Grid Engine cluster ({error}); is it running "
                "(scripts/sge/start.sh) and is its environment loaded?")

    def job_name(self, prefix: str, contender: str) -> str:
        return f"{prefix}{contender[0]}"

    def run_raw(self, ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
        queue = ["-q", ctx.args.queue] if ctx.args.queue else []
        code = (RAW_NAP.format(seconds=ctx.args.job_seconds) if ctx.args.job_seconds
                else "") + RAW_CODE
        # -b y jobs run through the queue's shell, which joins the arguments into one
        # command line: the code must be quoted for it. $TASK_ID is expanded by SGE.
        command = ["qsub", "-sync", "y", "-t", f"1-{jobs}", "-b", "y", "-N",
                   ctx.job_name(contender), "-wd", str(workdir), "-j", "y",
                   "-o", f"{workdir}/raw.$TASK_ID", *queue,
                   sys.executable, "-c", shlex.quote(code)]
        returncode, elapsed, out, err = run_process(command, env=ctx.base_env, cwd=workdir,
                                                    timeout=ctx.args.timeout, log_name="qsub")
        text = out.read_text(errors="replace") + err.read_text(errors="replace")
        if returncode != 0:
            raise ContenderFailed(f"qsub -sync y exited with status {returncode}:\n{tail(text)}")
        codes = re.findall(r"Job \d+\.(\d+) exited with exit code (\d+)\.", text)
        bad = [task for task, code in codes if code != "0"]
        if len(codes) != jobs or bad:
            raise ContenderFailed(f"{len(codes)} of {jobs} tasks reported an exit code; "
                                  f"non-zero for tasks {bad[:10]}:\n{tail(text)}")
        for task in range(1, jobs + 1):
            path = workdir / f"raw.{task}"
            value = path.read_text().strip() if path.exists() else "<missing>"
            if value != str(2 * (task - 1)):
                raise ContenderFailed(f"raw task {task} printed {value[:200]!r}, "
                                      f"not {2 * (task - 1)}")
        return Outcome(elapsed, elapsed)

    def child_peer(self, args: argparse.Namespace) -> dict[str, Any]:
        try:
            gridmap = importlib.import_module("gridmap")
            version = importlib.metadata.version("gridmap")
        except Exception as error:
            raise ContenderUnavailable(f"cannot import the original gridmap: {error!r}") \
                from error
        location = Path(gridmap.__file__ or ".").resolve()
        if not location.is_relative_to(Path(sys.prefix).resolve()):
            # This project's own gridmap leaked onto sys.path: timing it would report the
            # new code as the original.
            raise ContenderUnavailable(f"imported gridmap from {location}, not from {sys.prefix}")
        if version != ORIGINAL_VERSION:
            raise ContenderUnavailable(f"{sys.prefix} has gridmap {version}, "
                                       f"not {ORIGINAL_VERSION}")
        if not gridmap.conf.DRMAA_PRESENT:
            # The original would silently run everything locally; say why drmaa is missing.
            try:
                importlib.import_module("drmaa")
                why = "drmaa imports now but did not when gridmap was imported"
            except Exception as error:
                why = f"{type(error).__name__}: {error}"
            raise ContenderUnavailable(
                f"the original cannot load drmaa ({why}); it needs SGE_ROOT, "
                "DRMAA_LIBRARY_PATH and GLIBC_TUNABLES in its environment (see --sge-env)")
        inputs = list(range(args.jobs))
        gc.collect()  # so garbage from the imports is not collected on the clock
        start = time.perf_counter()
        try:
            results = gridmap.grid_map(double, inputs, quiet=True, require_cluster=True,
                                       temp_dir=args.child_temp_dir, name=args.child_name,
                                       **self.gridmap_options(args))
        except gridmap.DRMAANotPresentException as error:
            raise ContenderUnavailable(f"{type(error).__name__}: {error}") from error
        return {"seconds": time.perf_counter() - start, "results": results,
                "version": version, "file": str(location)}

    def gridmap_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"queue": args.queue} if args.queue else {}

    def child_arguments(self, args: argparse.Namespace, contender: str) -> list[str]:
        return ["--queue", args.queue] if args.queue else []

    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"queue": args.queue}

    def summarize(self, medians: Mapping[str, float | None]) -> dict[str, Any]:
        return {"ratios": ratios(medians, RATIOS)}

    def describe_lines(self, results: Mapping[str, Any], runs: str) -> list[str]:
        queues = results["cluster"]["queues"]
        return [f"{runs}; cluster queues: "
                + (", ".join(f"{q} {v['total']} slots" for q, v in queues.items())
                   or "unknown")]

    def ratio_lines(self, results: Mapping[str, Any]) -> list[str]:
        found = results["ratios"]
        value = found["gridmap/raw"]
        verdict = ("not measured" if value is None
                   else f"{fmt_ratio(value)}, {'met' if value <= TARGET_RATIO else 'NOT met'}")
        return ["", table(["ratio of medians", "value"],
                          [[key, fmt_ratio(v)] for key, v in found.items()], "lr"),
                "", f"Target: gridmap within {TARGET_RATIO}x of raw: {verdict}"]

    def notes(self, results: Mapping[str, Any]) -> list[str]:
        jobs, slots = results["settings"]["jobs"], results["cluster"]["slots"]
        notes = []
        if results["contenders"]["original"]["status"] == "ok" and slots:
            notes.append(
                f"GridMap {ORIGINAL_VERSION}'s workers each sleep a random 0-5 s (mean "
                f"{ORIGINAL_MEAN_SLEEP} s) before fetching their input, by design: that adds "
                f"about {jobs * ORIGINAL_MEAN_SLEEP / slots:.0f} s to a run of {jobs} jobs "
                f"on {slots} slots.")
        return notes + busy_note(results, self.labels, "slots")


if __name__ == "__main__":
    sys.exit(main(SgeBenchmark(__file__, __doc__, double)))
