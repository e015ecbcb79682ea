"""The harness of the cluster benchmarks (bench_sge.py, bench_slurm.py): trivial jobs timed
end to end on a real cluster, contender by contender, in interleaved rounds.

A scheduler's script is a ``Benchmark`` adapter (cluster_adapter.py): its contenders and
their labels, how a raw array is submitted and waited for, which peer (the original
GridMap, submitit) runs from which virtual environment, its options, environment and
report lines. The rest is shared: the untimed warm-up, rounds whose order rotates, a
clear queue before every run (cluster_queue.py), each Python contender in a fresh
subprocess of the script (cluster_runs.py, cluster_child.py) with its results checked,
cleaning up on errors and interrupts, the table of medians and the JSON. Only the
standard library at module level: the scripts run as children inside a peer's venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cluster_multinode as multinode
from bench_common import Unavailable, ratio, table
from cluster_adapter import Benchmark, Outcome
from cluster_child import ContenderFailed, child_main
from cluster_runs import Context, ensure_peer_venv, run_contender

__all__ = ["busy_note", "main", "ratios"]

DEFAULT_JOBS = 200
DEFAULT_ROUNDS = 3
QUICK_JOBS = 20
WARMUP_JOBS = 2


# -- the benchmark -------------------------------------------------------------------------

@dataclass
class Series:
    name: str
    status: str = "pending"  # pending, ok, skipped, failed
    reason: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def times(self) -> list[float]:
        return [run["seconds"] for run in self.runs]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.status == "ok" and self.runs else None


def load_average() -> float | None:
    with contextlib.suppress(OSError, AttributeError):
        return round(os.getloadavg()[0], 2)
    return None


def attempt(ctx: Context, series: Series, jobs: int, label: str) -> Outcome | None:
    """One run of a contender; on failure the contender is dropped with its reason."""
    try:
        return run_contender(ctx, series.name, jobs, label)
    except Unavailable as error:
        if label == "warm-up":
            series.status, series.reason = "skipped", str(error)
            ctx.log(f"  {series.name}: not available, skipping it: {error}")
        else:
            # It ran in the warm-up, so this is a failure, not something to skip quietly.
            series.status, series.reason = "failed", f"{label}: became unavailable: {error}"
            ctx.log(f"  {series.name}: FAILED in {label}, dropping it: {series.reason}")
    except (ContenderFailed, OSError, ValueError, subprocess.TimeoutExpired) as error:
        series.status, series.reason = "failed", f"{label}: {error}"
        ctx.log(f"  {series.name}: FAILED in {label}, dropping it: {error}")
    with contextlib.suppress(Exception):
        ctx.cluster.delete_ours()
    return None


def run_rounds(ctx: Context, series: dict[str, Series]) -> None:
    args, contenders = ctx.args, ctx.bench.contenders
    # An untimed round first: it fills the page cache with each interpreter's and
    # package's files, and finds a contender that cannot run before any timing starts.
    ctx.log(f"warm-up: {WARMUP_JOBS} jobs per contender, untimed")
    for name in contenders:
        if series[name].status == "pending":
            ctx.cluster.wait_until_clear()
            attempt(ctx, series[name], WARMUP_JOBS, "warm-up")
    width = max(len(name) for name in contenders)
    for round_ in range(args.rounds):
        # Rotating the order moves every contender through the positions in turn.
        shift = round_ % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        for position, name in enumerate(order):
            s = series[name]
            if s.status != "pending":
                continue
            others = ctx.cluster.wait_until_clear(args.idle_wait)
            time.sleep(1.0)  # about one scheduling pass, so the last run's end is settled
            load = load_average()
            label = f"round {round_ + 1}"
            outcome = attempt(ctx, s, args.jobs, label)
            if outcome is None:
                continue
            # The Python contenders return once they have every result, possibly while
            # their jobs are still exiting; that is not part of their time, but shows here.
            returned = time.perf_counter()
            ctx.cluster.wait_until_clear()
            drain = time.perf_counter() - returned
            s.runs.append({"round": round_ + 1, "position": position + 1,
                           "seconds": outcome.seconds,
                           "process_seconds": outcome.process_seconds,
                           "jobs_left_seconds": drain,
                           "load_average_before": load,
                           "others_running_before": others["running"],
                           "others_pending_before": others["pending"], **outcome.details})
            s.info.update(outcome.info)
            busy = ("; at its start others had " + ctx.bench.others_text.format(**others)
                    if any(others.values()) else "")
            ctx.log(f"  {label}/{args.rounds}: {name:{width}} {outcome.seconds:7.2f} s "
                    f"(its jobs left the queue {drain:.1f} s later{busy})")
    for s in series.values():
        if s.status == "pending":
            s.status = "ok"
    ctx.cluster.wait_until_clear()


def ratios(medians: Mapping[str, float | None],
           pairs: Sequence[tuple[str, str, str]]) -> dict[str, float | None]:
    """``{"a/b": median of a / median of b}`` for every (key, a, b) in ``pairs``."""
    return {key: ratio(medians[a], medians[b]) for key, a, b in pairs}


# -- reporting -----------------------------------------------------------------------------

def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def busy_note(results: Mapping[str, Any], names: Mapping[str, str],
              competing_for: str) -> list[str]:
    """A note naming the timed runs at whose start other users' jobs were on the cluster
    (``names``: how to call a contender there), or none."""
    busy = sorted(f"{names.get(name, name)} round {run['round']}"
                  for name, s in results["contenders"].items() for run in s["runs"]
                  if run["others_running_before"] or run["others_pending_before"])
    if not busy:
        return []
    return ["Other users' jobs were running or pending at the start of "
            f"{len(busy)} timed run(s), competing for {competing_for}: {', '.join(busy)} "
            "(others_*_before in the JSON; --idle-wait waits for them)."]


def report(bench: Benchmark, results: dict[str, Any]) -> str:
    settings, machine = results["settings"], results["machine"]
    word = bench.rounds_word
    rounds = settings[f"{word}s"]
    runs = (f"{settings['jobs']} trivial jobs per run, median of {rounds} interleaved "
            f"{word}{'s' if rounds != 1 else ''}")
    if settings["job_seconds"]:
        runs += f"; each job sleeps {settings['job_seconds']:g} s"
    where = settings["multinode"]
    if where:
        runs += (f"; on the three-node cluster ({', '.join(where['nodes'])}, "
                 f"{where['queue']})")
    out = [
        f"gridmap {bench.title} benchmark, {results['date']}",
        f"{machine['platform']}, Python {machine['python']}, {machine['cpus']} CPUs; "
        f"load average {machine['load_before']} before, {machine['load_after']} after",
        *bench.describe_lines(results, runs),
        "",
    ]
    rows = []
    for name in bench.contenders:
        s = results["contenders"][name]
        times = ", ".join(f"{t:.2f}" for t in s["times"]) or "-"
        if s["status"] in ("skipped", "failed"):
            times = f"{s['status']}: {s['reason'].splitlines()[0][:110]}"
        rows.append([bench.labels[name], fmt_seconds(s["median"]), times])
    out.append(table(["contender", "median", "every run (s)"], rows, "lrl"))
    out += bench.ratio_lines(results)
    out += multinode.report_lines(results)
    notes = bench.notes(results)
    if notes:
        out += ["", "Notes:"] + [f"  - {note}" for note in notes]
    return "\n".join(out)


# -- command line --------------------------------------------------------------------------

def parse_args(bench: Benchmark, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=bench.doc.split("\n\n")[0])
    word, venv = bench.rounds_word, bench.script.parent / ".venvs" / bench.peer.venv
    parser.add_argument("--jobs", type=int,
                        help=f"jobs per run (default {DEFAULT_JOBS}; --quick: {QUICK_JOBS})")
    parser.add_argument(*bench.rounds_flags, dest="rounds", type=int, help=bench.rounds_help,
                        metavar=bench.rounds_flags[0].lstrip("-").upper())
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_JOBS} jobs and 1 {word}, as a smoke test")
    for family, text in bench.skips.items():
        parser.add_argument(f"--skip-{family}", action="store_true", help=text)
    if bench.variants:
        parser.add_argument("--skip-variants", action="store_true",
                            help=f"leave out {', '.join(bench.variants[:-1])} and "
                                 f"{bench.variants[-1]}")
    parser.add_argument("--venv", type=Path, default=venv,
                        help=f"the virtual environment of {bench.peer.title} (default {venv})")
    bench.add_arguments(parser)
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write every run's time, the medians and ratios to PATH")
    parser.add_argument("--timeout", type=float, default=bench.default_timeout,
                        help="seconds one run may take before it is stopped "
                             f"(default {bench.default_timeout:.0f})")
    parser.add_argument("--temp-dir", type=Path, help=bench.temp_dir_help)
    parser.add_argument("--idle-wait", type=float, default=0.0, metavar="S",
                        help="before each timed run, wait up to S seconds for other users' "
                             "jobs to leave the cluster (default 0: only this benchmark's "
                             "own jobs are waited for)")
    parser.add_argument("--keep-files", action="store_true",
                        help="keep the jobs' working directories and logs")
    parser.add_argument("--job-seconds", type=float, default=0.0, metavar="S",
                        help="each job sleeps S seconds before it returns (default 0; raw "
                             "and gridmap only)")
    multinode.add_arguments(parser)
    # The subprocess side of a Python contender.
    parser.add_argument("--child", choices=tuple(bench.children()), help=argparse.SUPPRESS)
    parser.add_argument("--child-temp-dir", help=argparse.SUPPRESS)
    parser.add_argument("--child-name", help=argparse.SUPPRESS)
    parser.add_argument("--child-on-failure", default="raise", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = QUICK_JOBS if args.quick else DEFAULT_JOBS
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.jobs < 1 or args.rounds < 1:
        parser.error(f"--jobs and {bench.rounds_flags[0]} must be at least 1")
    if args.job_seconds < 0:
        parser.error("--job-seconds must be 0 or more")
    multinode.check_arguments(parser, args)
    bench.check_arguments(parser, args)
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _series(bench: Benchmark, args: argparse.Namespace) -> dict[str, Series]:
    """A series per contender, those left out by a --skip option already skipped."""
    series = {name: Series(name) for name in bench.contenders}
    left_out = multinode.skipped(bench, args)
    for name, s in series.items():
        family = name.split("-")[0]
        if family in bench.skips and getattr(args, f"skip_{family}"):
            s.status, s.reason = "skipped", f"--skip-{family}"
        elif name in bench.variants and args.skip_variants:
            s.status, s.reason = "skipped", "--skip-variants"
        elif name in left_out:
            s.status, s.reason = "skipped", left_out[name]
    return series


def main(bench: Benchmark, argv: Sequence[str] | None = None) -> int:
    args = parse_args(bench, argv)
    if args.child:
        return child_main(args, bench.children())

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    prefix = f"gmbench{uuid.uuid4().hex[:8]}"
    try:
        setup = multinode.set_up(bench, args)
        base_env = bench.environment(args, log)
        cluster = bench.cluster_type(base_env, prefix, log)
        cluster.jobs()
    except (Unavailable, OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        log(bench.unreachable(error))
        return bench.unavailable_status

    series = _series(bench, args)
    ctx = Context(bench, args, cluster, base_env, Path(), log)
    if args.kill_node:
        def kill_during(contender: str, label: str) -> Any:
            if label == "warm-up":
                return contextlib.nullcontext({})
            return multinode.killing(cluster, args.kill_node, args.kill_after, log)

        ctx.during = kill_during
    peer = bench.peer
    if any(s.status == "pending" for n, s in series.items() if n.startswith(peer.family)):
        try:
            ctx.peer_python = ensure_peer_venv(peer, args.venv, log)
        except Unavailable as error:
            for name, s in series.items():
                if name.startswith(peer.family):
                    s.status, s.reason = "skipped", str(error)
            log(f"skipping {peer.title}: {error}")

    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_before": load_average()},
        "settings": {"jobs": args.jobs, f"{bench.rounds_word}s": args.rounds,
                     "warmup_jobs": WARMUP_JOBS, "job_seconds": args.job_seconds,
                     "multinode": None if setup is None else {
                         "env_file": str(setup.env_file), "nodes": list(setup.nodes),
                         "queue": setup.queue, "kill_node": args.kill_node,
                         "kill_after": args.kill_after if args.kill_node else None},
                     **bench.settings(args),
                     "idle_wait": args.idle_wait, "timeout": args.timeout,
                     "job_name_prefix": prefix, "interpreter": sys.executable,
                     f"{peer.family}_venv": str(args.venv)},
        "cluster": cluster.describe(),
    }
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ctx.work_root = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=args.temp_dir))
    log(f"job names start with {prefix}; working directories in {ctx.work_root}")
    try:
        stopped = run_guarded(ctx, series)
    finally:
        if args.keep_files:
            log(f"kept {ctx.work_root}")
        else:
            shutil.rmtree(ctx.work_root, ignore_errors=True)
    if stopped is not None:
        return stopped

    results["machine"]["load_after"] = load_average()
    results["contenders"] = {
        name: {"label": bench.labels[name], "status": s.status, "reason": s.reason,
               "times": s.times, "median": s.median, "runs": s.runs, **s.info}
        for name, s in series.items()}
    results["medians"] = {name: s.median for name, s in series.items()}
    results.update(bench.summarize(results["medians"]))
    print(report(bench, results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"figures written to {args.json}")
    return 1 if any(s.status == "failed" for s in series.values()) else 0


def run_guarded(ctx: Context, series: dict[str, Series]) -> int | None:
    """Run the benchmark; on an interrupt or error, delete its jobs and return the exit
    status (130 or 1), else None."""
    verb = ctx.cluster.delete_verb
    try:
        run_rounds(ctx, series)
    except KeyboardInterrupt:
        ctx.log(f"interrupted: {verb} this benchmark's jobs")
        status = 130
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        ctx.log(f"benchmark aborted: {error}")
        status = 1
    else:
        return None
    with contextlib.suppress(Exception):
        ctx.cluster.delete_ours()
    return status
