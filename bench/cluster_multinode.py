"""The cluster benchmarks on the three-node clusters of scripts/multinode (``--multinode``),
and one of their nodes killed during every timed map (``--kill-node NODE``).

``--multinode`` takes the cluster's client environment from its env file
(``/etc/gridmap-mn-slurm.env`` or ``/etc/gridmap-mn-sge.env``, which the start scripts
write) for this process and every contender, submits to its partition or queue, and puts
the jobs' working and log directories in its shared directory, the one every node sees.
The peer (the original GridMap, submitit) is not timed there: the runs compare gridmap
with the raw scheduler array.

``--kill-node NODE`` kills NODE with ``scripts/multinode/kill-node.sh`` once the run's
jobs have run on it for ``--kill-after`` seconds, in every timed run, and restores it with
``restore-node.sh`` when the run has ended (also when it failed or was interrupted), before
the next run starts. Each run then records when the node was killed, how many results were
lost (wrong or missing: the goal is 0), and, for gridmap, how many of its jobs died and
were resubmitted. A raw array is not timed then: Grid Engine keeps the dead node's tasks
"running" until the node is back, which would hold the run until the restore, and Slurm
requeues them only about 2 minutes later.
Only the standard library: the harness imports this module in every child too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_common import Unavailable, load_env_file, table, tail

if TYPE_CHECKING:
    from cluster_adapter import Benchmark
    from cluster_queue import Cluster

__all__ = ["DEFAULT_KILL_AFTER", "Setup", "add_arguments", "check_arguments", "killing",
           "report_lines", "set_up", "skipped"]

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts" / "multinode"
ENV_FILES = {"slurm": ("GRIDMAP_MN_SLURM_ENV_FILE", "/etc/gridmap-mn-slurm.env", "start-slurm.sh"),
             "sge": ("GRIDMAP_MN_SGE_ENV_FILE", "/etc/gridmap-mn-sge.env", "start-sge.sh")}
DEFAULT_KILL_AFTER = 2.0
# How long kill-node.sh and restore-node.sh may take (a restore waits until the node takes
# jobs again: 5-6 s on Grid Engine, under 1 s on Slurm, when the machine is quiet).
SCRIPT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Setup:
    """A running three-node cluster, as its env file describes it."""

    kind: str  # "slurm" or "sge"
    env_file: Path
    env: dict[str, str]
    nodes: tuple[str, ...]
    queue: str  # the Slurm partition or Grid Engine queue of all nodes
    shared: Path  # the directory every node sees at the same path


def load(kind: str) -> Setup:
    """The cluster of ``kind`` from its env file; Unavailable when it is not there."""
    variable, default, start = ENV_FILES[kind]
    path = Path(os.environ.get(variable) or default)
    env = load_env_file(path)
    missing = [name for name in ("GRIDMAP_MN_NODES", "GRIDMAP_MN_QUEUE", "GRIDMAP_MN_SHARED")
               if name not in env]
    if missing:
        raise Unavailable(f"{path} is missing or lacks {', '.join(missing)}: start the "
                          f"three-node cluster with scripts/multinode/{start} (as root)")
    return Setup(kind, path, env, tuple(env["GRIDMAP_MN_NODES"].split()),
                 env["GRIDMAP_MN_QUEUE"], Path(env["GRIDMAP_MN_SHARED"]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--multinode", action="store_true",
                        help="run on the three-node cluster of scripts/multinode (its env "
                             "file, its partition or queue, temp dir in its shared "
                             "directory); the peer is not timed")
    parser.add_argument("--kill-node", metavar="NODE",
                        help="with --multinode: kill NODE (scripts/multinode/kill-node.sh) "
                             "during every timed run, once its jobs have run there for "
                             "--kill-after seconds, and restore it after the run; records "
                             "the results lost; raw arrays are not timed")
    parser.add_argument("--kill-after", type=float, default=DEFAULT_KILL_AFTER, metavar="S",
                        help="seconds the run's jobs run on NODE before it is killed "
                             f"(default {DEFAULT_KILL_AFTER:g})")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.kill_node and not args.multinode:
        parser.error("--kill-node needs --multinode: only the three-node clusters' nodes can "
                     "be killed")
    if args.kill_after < 0:
        parser.error("--kill-after must be 0 or more")


def set_up(bench: Benchmark, args: argparse.Namespace) -> Setup | None:
    """With --multinode: this process and its children talk to the three-node cluster,
    whose partition or queue and shared directory become the defaults."""
    if not args.multinode:
        return None
    setup = load(bench.multinode_kind)
    if args.kill_node and args.kill_node not in setup.nodes:
        raise Unavailable(f"--kill-node {args.kill_node} is not a node of the three-node "
                          f"{setup.kind} cluster ({', '.join(setup.nodes)})")
    # Every contender and scheduler command inherits it; GLIBC_TUNABLES reaches the
    # children, whose interpreters start with it (libdrmaa needs it at start).
    os.environ.update(setup.env)
    bench.use_multinode(args, setup)
    if args.temp_dir is None:
        args.temp_dir = setup.shared
    return setup


def skipped(bench: Benchmark, args: argparse.Namespace) -> dict[str, str]:
    """The contenders left out in these modes, and why."""
    found = {}
    for name in bench.contenders:
        if args.multinode and name.startswith(bench.peer.family):
            found[name] = f"--multinode: {bench.peer.title} is not timed on the three-node clusters"
        elif args.job_seconds and name.startswith(bench.peer.family):
            found[name] = f"--job-seconds: {bench.peer.title}'s jobs do not sleep"
        elif args.kill_node and name.startswith("raw"):
            found[name] = "--kill-node: raw arrays are not timed with a node killed"
    return found


def _script(name: str, node: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(["bash", str(SCRIPTS / name), node], capture_output=True,
                          text=True, timeout=SCRIPT_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/multinode/{name} {node} failed with status "
                           f"{done.returncode}: {tail(done.stderr, 5)}")
    return time.perf_counter() - started


@contextmanager
def killing(cluster: Cluster, node: str, after: float, log: Callable[[str], None],
            ) -> Iterator[dict[str, Any]]:
    """Kill ``node`` once this benchmark's jobs have run on it for ``after`` seconds, while
    the block runs; restore it when the block ends, however it ends. Yields the run's
    record of it, filled in as it happens."""
    record: dict[str, Any] = {"killed_node": node, "killed_after_seconds": None,
                              "restore_seconds": None}
    tried = threading.Event()  # kill-node.sh was started: the node must be restored
    stop = threading.Event()
    started = time.perf_counter()

    def watch() -> None:
        # The first of our jobs running there, then the wait: the kill lands mid-map.
        while not stop.is_set():
            try:
                there = [job for job in cluster.ours() if not job.pending and job.host == node]
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                there = []
            if there:
                break
            stop.wait(0.25)
        if stop.wait(after):
            return  # the run ended first: nothing was killed
        tried.set()
        _script("kill-node.sh", node)
        record["killed_after_seconds"] = round(time.perf_counter() - started, 2)
        log(f"  killed {node} {record['killed_after_seconds']:.1f} s into the run")

    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            watch()
        except BaseException as error:  # reported by the run, after the restore
            errors.append(error)

    thread = threading.Thread(target=guarded, name="node-killer", daemon=True)
    thread.start()
    try:
        yield record
    finally:
        stop.set()
        thread.join()
        if tried.is_set():
            # Whatever happened, the node comes back before anything else runs.
            record["restore_seconds"] = round(_script("restore-node.sh", node), 2)
            log(f"  restored {node} in {record['restore_seconds']:.1f} s")
    if errors:
        raise RuntimeError(f"killing {node} failed: {errors[0]}")


def report_lines(results: Mapping[str, Any]) -> list[str]:
    """The runs with a node killed: when, and what was lost or resubmitted."""
    rows = []
    for name, series in results["contenders"].items():
        for run in series["runs"]:
            if "killed_node" not in run:
                continue
            killed = run["killed_after_seconds"]
            rows.append([name, str(run["round"]), f"{run['seconds']:.2f}",
                         "not killed: the run ended first" if killed is None
                         else f"{run['killed_node']} at {killed:.1f} s",
                         str(run.get("lost", "-")), str(run.get("died", "-")),
                         str(run.get("resubmitted", "-")),
                         "-" if run["restore_seconds"] is None
                         else f"{run['restore_seconds']:.1f}",
                         ", ".join(f"{kind} {count}" for kind, count
                                   in sorted(run.get("death_kinds", {}).items())) or "-"])
    if not rows:
        return []
    return ["", "A node killed in every timed run (results lost: wrong or missing; the goal "
            "is 0):", table(["contender", "round", "seconds", "node killed", "lost", "died",
                             "resubmitted", "restore s", "resubmitted for"], rows,
                            "lrrlrrrrl")]
