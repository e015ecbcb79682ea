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
checked. Progress goes to stderr, the table to stdout.

Usage: python bench/bench_slurm.py [--jobs 200] [--rounds 3] [--quick] [--skip-raw]
                                   [--skip-submitit] [--skip-gridmap] [--skip-variants]
                                   [--json PATH]
"""

# Only the standard library at module level: the same file runs as submitit's child
# inside its venv, where this project's packages must not be imported.
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
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

SCRIPT = Path(__file__).resolve()
BENCH_DIR = SCRIPT.parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venvs" / "submitit"
SUBMITIT_REQUIREMENTS = ("submitit",)
MARK = "@@BENCH "
CONTENDERS = ("raw", "raw-python", "submitit", "submitit-poll", "gridmap", "gridmap-fresh")
VARIANTS = ("raw-python", "submitit-poll", "gridmap-fresh")
LABELS = {
    "raw": "raw sbatch array (true)",
    "raw-python": "raw sbatch array (python -c pass)",
    "submitit": "submitit, job.result()",
    "submitit-poll": "submitit, poll_interval 0.1 s",
    "gridmap": 'gridmap, backend "slurm"',
    "gridmap-fresh": "gridmap, a runner per job (REUSE_RUNNERS off)",
}
DEFAULT_JOBS = 200
DEFAULT_ROUNDS = 3
QUICK_JOBS = 20
WARMUP_JOBS = 2
TARGET_RAW_RATIO = 1.3
RAW_POLL = 0.2  # seconds between squeue calls while a raw array runs
TUNED_POLL = 0.1  # submitit-poll's poll_interval
# How long leftover jobs may take to leave the queue before they are cancelled.
CLEAR_TIMEOUT = 120.0
# A child that was interrupted gets this long to stop before its process group is killed.
STOP_GRACE = 20.0
EXIT_UNAVAILABLE = 3  # Slurm is not running or its tools are missing
# Variables that would let the submitit venv's interpreter import this checkout.
_LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
                    "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
# gridmap's settings from the environment (gridmap_core.config): removed so that it runs
# with its defaults, whatever the calling shell has set.
_TUNING_VARIABLES = ("GRIDMAP_BACKEND", "GRIDMAP_CONFIG", "GRIDMAP_TRANSPORT",
                     "GRIDMAP_MONITOR_ADDRESS", "GRIDMAP_MONITOR_INTERFACE",
                     "GRIDMAP_MONITOR_PORTS", "USE_MEM_FREE", "DEFAULT_QUEUE",
                     "DEFAULT_TEMP_DIR", "DEFAULT_PAR_ENV", "MAX_TIME_BETWEEN_HEARTBEATS",
                     "IDLE_THRESHOLD", "MAX_IDLE_HEARTBEATS", "NUM_RESUBMITS",
                     "CHECK_FREQUENCY", "HEARTBEAT_FREQUENCY", "SMTP_SERVER",
                     "ERROR_MAIL_SENDER", "ERROR_MAIL_RECIPIENT", "GRIDMAP_REUSE_RUNNERS")
# A failing job would otherwise try to mail; plots need matplotlib. Neither changes a
# successful run.
_QUIET_SETTINGS = {"SEND_ERROR_MAIL": "False", "CREATE_PLOTS": "False"}
_SLURM_TOOLS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")

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


class ContenderUnavailable(Unavailable):
    """The contender cannot run here at all (not installed, no backend): it is skipped."""


class ContenderFailed(RuntimeError):
    """The contender ran but failed, timed out or returned wrong results."""


# -- the child: one timed map, in a subprocess ------------------------------------------

def reply(payload: Mapping[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(payload, default=repr) + "\n")
    sys.stdout.flush()


def child_submitit(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import submitit
        version = importlib.metadata.version("submitit")
    except Exception as error:
        raise ContenderUnavailable(f"cannot import submitit: {error!r}") from error
    location = Path(submitit.__file__ or ".").resolve()
    if not location.is_relative_to(Path(sys.prefix).resolve()):
        raise ContenderUnavailable(f"imported submitit from {location}, not from {sys.prefix}")
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
            "file": str(location), "array": jobs[0].job_id.split("_")[0] if jobs else None}


def child_gridmap(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import gridmap
        from gridmap import grid_map
        from gridmap_core import BackendUnavailableError, UnknownPluginError
    except ImportError as error:
        raise ContenderUnavailable(f"cannot import this project's gridmap: {error!r}") from error
    inputs = range(args.jobs)
    gc.collect()
    start = time.perf_counter()
    try:
        results = grid_map(square, inputs, backend="slurm", temp_dir=args.child_temp_dir,
                           quiet=True, name=args.child_name, require_cluster=True)
    except (UnknownPluginError, BackendUnavailableError) as error:
        raise ContenderUnavailable(f"{type(error).__name__}: {error}") from error
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "results": results, "version": gridmap.__version__,
            "file": str(Path(gridmap.__file__ or ".").resolve())}


def child_main(args: argparse.Namespace) -> int:
    run = child_submitit if args.child == "submitit" else child_gridmap
    start = time.perf_counter()
    try:
        answer = run(args)
    except Unavailable as error:
        reply({"status": "unavailable", "reason": str(error)})
        return 0
    except Exception as error:
        traceback.print_exc()
        reply({"status": "failed", "reason": f"{type(error).__name__}: {error}",
               "seconds": time.perf_counter() - start})
        return 1
    reply({"status": "ok", "python": sys.version.split()[0], **answer})
    return 0


# -- the cluster: availability, queue state, cleaning up --------------------------------

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


@dataclass(frozen=True)
class QueuedJob:
    array: str  # the array's job id (the job's own id when it is not in an array)
    job_id: str
    name: str
    state: str


@dataclass
class Cluster:
    """squeue/scancel for this benchmark's jobs, whose names all start with ``prefix``."""

    env: dict[str, str]
    prefix: str
    log: Callable[[str], None]

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def jobs(self) -> list[QueuedJob]:
        """Every job not yet ended (pending, running, completing...), one per array task."""
        done = self.run("squeue", "-h", "-r", "-o", "%F|%i|%T|%j")
        if done.returncode != 0:
            raise RuntimeError(f"squeue failed ({done.returncode}): {tail(done.stderr, 3)}")
        found = []
        for line in done.stdout.splitlines():
            cells = line.split("|", 3)
            if len(cells) == 4:
                found.append(QueuedJob(cells[0], cells[1], cells[3], cells[2]))
        return found

    def ours(self, jobs: Sequence[QueuedJob] | None = None) -> list[QueuedJob]:
        return [j for j in (self.jobs() if jobs is None else jobs)
                if j.name.startswith(self.prefix)]

    def delete_ours(self) -> int:
        """scancel every job of this benchmark still queued; never anyone else's."""
        arrays = sorted({j.array for j in self.ours()}, key=lambda a: int(a) if a.isdigit() else 0)
        if arrays:
            self.log(f"cancelling this benchmark's leftover jobs: {' '.join(arrays)}")
            self.run("scancel", *arrays)
        return len(arrays)

    def wait_until_clear(self, idle_wait: float = 0.0) -> dict[str, int]:
        """Wait until none of our jobs is queued or running, and up to ``idle_wait``
        seconds more for other users' jobs to go; return what others have left then."""
        start = time.monotonic()
        deadline = start + CLEAR_TIMEOUT
        cancelled = told = False
        while True:
            jobs = self.jobs()
            if not self.ours(jobs):
                if jobs and time.monotonic() < start + idle_wait:
                    if not told:
                        self.log(f"  waiting up to {idle_wait:.0f} s for {len(jobs)} job(s) "
                                 "of others to leave the cluster")
                        told = True
                    time.sleep(0.5)
                    continue
                return {"running": sum(1 for j in jobs if j.state != "PENDING"),
                        "pending": sum(1 for j in jobs if j.state == "PENDING")}
            if time.monotonic() > deadline:
                if cancelled:
                    raise RuntimeError(f"jobs named {self.prefix}* are still on the cluster "
                                       f"{CLEAR_TIMEOUT:.0f} s after scancel")
                self.delete_ours()
                cancelled, deadline = True, time.monotonic() + CLEAR_TIMEOUT
            time.sleep(0.25)

    def describe(self) -> dict[str, Any]:
        """Version, scheduler settings and partitions, for the report; best effort."""
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


# -- running contenders --------------------------------------------------------------------

@dataclass
class Outcome:
    seconds: float          # the contender's end-to-end time
    process_seconds: float  # the whole subprocess, start-up and imports included
    info: dict[str, Any] = field(default_factory=dict)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Interrupt a child's whole process group, give it time to stop, then kill it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_process(command: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str],
                cwd: Path, timeout: float, log_name: str) -> tuple[int, float, Path, Path]:
    out, err = cwd / f"{log_name}.out", cwd / f"{log_name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        # Its own session: a Ctrl-C reaches only this process, which then stops the
        # child in order (interrupt, grace, kill) and cancels the jobs left behind.
        process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=dict(env),
                                   stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(process)
            raise ContenderFailed(f"no result within {timeout:.0f} s (--timeout)") from None
        except BaseException:
            stop_process(process)
            raise
        elapsed = time.perf_counter() - start
    return returncode, elapsed, out, err


def _file_tail(path: Path, lines: int = 8) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


@dataclass
class Context:
    args: argparse.Namespace
    cluster: Cluster
    base_env: dict[str, str]
    work_root: Path
    log: Callable[[str], None]
    submitit_python: Path | None = None

    def job_name(self, contender: str) -> str:
        return f"{self.cluster.prefix}-{contender}"


def run_raw(ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
    # The interpreter running this script: `python3` on PATH may be a wrapper (a pyenv
    # shim is a shell script) that costs more to start than the interpreter itself.
    wrap = "true" if contender == "raw" else f"{shlex.quote(sys.executable)} -c pass"
    partition = [f"--partition={ctx.args.partition}"] if ctx.args.partition else []
    command = ["sbatch", "--parsable", f"--array=1-{jobs}", "-o", "/dev/null",
               f"--job-name={ctx.job_name(contender)}", *partition, f"--wrap={wrap}"]
    deadline = time.monotonic() + ctx.args.timeout
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=ctx.base_env, capture_output=True,
                          text=True, timeout=ctx.args.timeout, check=False)
    array = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not array.isdigit():
        raise ContenderFailed(f"sbatch exited with status {done.returncode}: "
                              f"{tail(done.stderr or done.stdout)}")
    polls = 0
    while True:
        polls += 1
        queued = subprocess.run(["squeue", "-h", "-j", array], env=ctx.base_env,
                                capture_output=True, text=True, timeout=60, check=False)
        if queued.returncode == 0 and not queued.stdout.strip():
            break
        if queued.returncode != 0 and "Invalid job id" not in queued.stderr:
            raise ContenderFailed(f"squeue -j {array} failed: {tail(queued.stderr)}")
        if queued.returncode != 0:
            break  # slurmctld has already forgotten the array
        if time.monotonic() > deadline:
            ctx.cluster.run("scancel", array)
            raise ContenderFailed(f"array {array} still queued after {ctx.args.timeout:.0f} s")
        time.sleep(RAW_POLL)
    elapsed = time.perf_counter() - start
    # Outside the clock: every element must have ended COMPLETED (exit code 0).
    states = ctx.cluster.run("squeue", "-h", "-r", "-t", "all", "-j", array, "-o", "%i|%T")
    ended = dict(line.split("|", 1) for line in states.stdout.split() if "|" in line)
    bad = {task: state for task, state in ended.items() if state != "COMPLETED"}
    if len(ended) != jobs or bad:
        raise ContenderFailed(f"array {array}: squeue lists {len(ended)} of {jobs} elements; "
                              f"not COMPLETED: {dict(list(bad.items())[:10])}")
    return Outcome(elapsed, elapsed, {"squeue_polls": polls, "wrap": wrap})


def child_environment(ctx: Context, contender: str) -> dict[str, str]:
    env = {k: v for k, v in ctx.base_env.items()
           if k not in _LEAKY_VARIABLES and k not in _TUNING_VARIABLES}
    env.update(_QUIET_SETTINGS)
    if contender == "gridmap-fresh":
        env["GRIDMAP_REUSE_RUNNERS"] = "0"
    if contender.startswith("gridmap"):
        # This checkout's gridmap; its backends are found through their entry points.
        existing = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([existing] if existing else [])])
    return env


def run_python(ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
    files = workdir / "files"  # the jobs' logs, pickles and results; on /tmp by default,
    files.mkdir()              # which the single node sees
    if contender.startswith("gridmap"):
        interpreter, child = [sys.executable], "gridmap"
    else:
        assert ctx.submitit_python is not None
        # -I: neither the script's directory, the working directory nor PYTHONPATH
        # reaches sys.path, so only the venv's packages can be imported.
        interpreter, child = [str(ctx.submitit_python), "-I"], "submitit"
    command = [*interpreter, str(SCRIPT), "--child", child, "--jobs", str(jobs),
               "--child-temp-dir", str(files), "--child-name", ctx.job_name(contender)]
    if contender == "submitit-poll":
        command += ["--child-poll", str(ctx.args.submitit_poll)]
    if ctx.args.partition:
        command += ["--partition", ctx.args.partition]
    returncode, wall, out, err = run_process(
        command, env=child_environment(ctx, contender), cwd=workdir,
        timeout=ctx.args.timeout, log_name="child")
    answer: dict[str, Any] | None = None
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(MARK):
            answer = json.loads(line[len(MARK):])
    if answer is None:
        raise ContenderFailed(f"exited with status {returncode} without an answer:\n"
                              f"{_file_tail(err)}")
    if answer["status"] == "unavailable":
        raise ContenderUnavailable(answer["reason"])
    if answer["status"] != "ok":
        raise ContenderFailed(f"{answer['reason']}\n{_file_tail(err)}")
    results = answer.pop("results")
    expected = [x * x for x in range(jobs)]
    if results != expected:
        wrong = next((i for i, (a, b) in enumerate(zip(results, expected, strict=False))
                      if a != b), min(len(results), len(expected)))
        raise ContenderFailed(f"wrong results: {len(results)} values, first difference at "
                              f"index {wrong}")
    answer.pop("status")
    return Outcome(float(answer.pop("seconds")), wall, answer)


def run_contender(ctx: Context, contender: str, jobs: int, label: str) -> Outcome:
    workdir = ctx.work_root / f"{label.replace(' ', '')}-{contender}"
    workdir.mkdir()
    if contender.startswith("raw"):
        return run_raw(ctx, contender, jobs, workdir)
    return run_python(ctx, contender, jobs, workdir)


# -- submitit's virtual environment -----------------------------------------------------

def venv_has_submitit(python: Path, cwd: str, env: Mapping[str, str]) -> bool:
    if not python.exists():
        return False
    probe = run_quiet([python, "-I", "-c", "import submitit"], 60, cwd, env)
    return probe.returncode == 0


def ensure_submitit_venv(venv: Path, log: Callable[[str], None]) -> Path:
    """The venv's interpreter, after installing submitit there if needed."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES}
    return ensure_venv(venv, SUBMITIT_REQUIREMENTS,
                       lambda python, cwd: venv_has_submitit(python, cwd, env), log, env)


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
            series.status, series.reason = "failed", f"{label}: became unavailable: {error}"
            ctx.log(f"  {series.name}: FAILED in {label}, dropping it: {series.reason}")
    except (ContenderFailed, OSError, ValueError, subprocess.TimeoutExpired) as error:
        series.status, series.reason = "failed", f"{label}: {error}"
        ctx.log(f"  {series.name}: FAILED in {label}, dropping it: {error}")
    with contextlib.suppress(Exception):
        ctx.cluster.delete_ours()
    return None


def bench(ctx: Context, series: dict[str, Series]) -> None:
    args = ctx.args
    # An untimed round first: it fills the page cache with each interpreter's and
    # package's files, and finds a contender that cannot run before any timing starts.
    ctx.log(f"warm-up: {WARMUP_JOBS} jobs per contender, untimed")
    for name in CONTENDERS:
        if series[name].status == "pending":
            ctx.cluster.wait_until_clear()
            attempt(ctx, series[name], WARMUP_JOBS, "warm-up")
    count = len(CONTENDERS)
    for round_ in range(args.rounds):
        # Rotating the order moves every contender through the positions in turn.
        shift = round_ % count
        order = CONTENDERS[shift:] + CONTENDERS[:shift]
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
                           "others_pending_before": others["pending"],
                           **{k: v for k, v in outcome.info.items()
                              if k.endswith("_seconds") or k in ("squeue_polls", "array")}})
            s.info.update({k: v for k, v in outcome.info.items()
                           if k in ("version", "file", "python", "wrap")})
            busy = (f"; at its start others had {others['running']} job(s) running and "
                    f"{others['pending']} pending" if any(others.values()) else "")
            ctx.log(f"  {label}/{args.rounds}: {name:13} {outcome.seconds:7.2f} s "
                    f"(its jobs left the queue {drain:.1f} s later{busy})")
    for s in series.values():
        if s.status == "pending":
            s.status = "ok"
    ctx.cluster.wait_until_clear()


HEADLINE_RATIOS = (("gridmap/raw", "gridmap", "raw"),
                   ("gridmap/submitit", "gridmap", "submitit"),
                   ("submitit/raw", "submitit", "raw"))
VARIANT_RATIOS = (("gridmap/raw-python", "gridmap", "raw-python"),
                  ("raw-python/raw", "raw-python", "raw"),
                  ("submitit-poll/submitit", "submitit-poll", "submitit"),
                  ("gridmap/submitit-poll", "gridmap", "submitit-poll"),
                  ("gridmap-fresh/raw", "gridmap-fresh", "raw"),
                  ("gridmap/gridmap-fresh", "gridmap", "gridmap-fresh"))


def summarize(series: dict[str, Series]) -> dict[str, Any]:
    medians = {name: s.median for name, s in series.items()}
    return {
        "medians": medians,
        "ratios": {key: ratio(medians[a], medians[b]) for key, a, b in HEADLINE_RATIOS},
        "variant_ratios": {key: ratio(medians[a], medians[b]) for key, a, b in VARIANT_RATIOS},
    }


# -- reporting -----------------------------------------------------------------------------

def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def verdicts(ratios: Mapping[str, float | None]) -> dict[str, str]:
    def verdict(value: float | None, met: bool) -> str:
        return "not measured" if value is None else ("met" if met else "NOT met")

    to_raw, to_submitit = ratios["gridmap/raw"], ratios["gridmap/submitit"]
    return {
        "gridmap/raw": (f"<= {TARGET_RAW_RATIO}x: "
                        + verdict(to_raw, to_raw is not None and to_raw <= TARGET_RAW_RATIO)),
        "gridmap/submitit": ("< 1.00x (gridmap faster): "
                             + verdict(to_submitit, to_submitit is not None
                                       and to_submitit < 1.0)),
        "submitit/raw": "",
    }


def report(results: dict[str, Any]) -> str:
    settings, machine, cluster = results["settings"], results["machine"], results["cluster"]
    jobs, rounds = settings["jobs"], settings["rounds"]
    parts = cluster.get("partitions") or {}
    out = [
        f"gridmap Slurm benchmark, {results['date']}",
        f"{machine['platform']}, Python {machine['python']}, {machine['cpus']} CPUs; "
        f"load average {machine['load_before']} before, {machine['load_after']} after",
        f"{cluster.get('version', 'Slurm')}; partitions: "
        + (", ".join(f"{name} {p.get('TotalCPUs')} CPUs OverSubscribe={p.get('OverSubscribe')}"
                     for name, p in parts.items()) or "unknown")
        + f"; SchedulerParameters={cluster.get('SchedulerParameters', '?')}",
        f"{jobs} trivial jobs per run, median of {rounds} interleaved round"
        f"{'s' if rounds != 1 else ''}",
        "",
    ]
    rows = []
    for name in CONTENDERS:
        s = results["contenders"][name]
        times = ", ".join(f"{t:.2f}" for t in s["times"]) or "-"
        if s["status"] in ("skipped", "failed"):
            times = f"{s['status']}: {s['reason'].splitlines()[0][:110]}"
        rows.append([LABELS[name], fmt_seconds(s["median"]), times])
    out.append(table(["contender", "median", "every run (s)"], rows, "lrl"))
    ratios, notes_of = results["ratios"], verdicts(results["ratios"])
    out += ["", table(["ratio of medians", "value", "target"],
                      [[key, fmt_ratio(value), notes_of[key]] for key, value in ratios.items()],
                      "lrl")]
    variants = {k: v for k, v in results["variant_ratios"].items() if v is not None}
    if variants:
        out += ["", table(["variant ratio", "value"],
                          [[key, fmt_ratio(value)] for key, value in variants.items()], "lr")]
    notes = []
    if results["contenders"]["submitit"]["status"] == "ok":
        notes.append("submitit's job.result() checks for its result file once a second (a "
                     "fixed time.sleep(1)); submitit-poll uses the documented asyncio "
                     f"poll_interval ({settings['submitit_poll']} s). The headline ratios "
                     "use the default.")
    busy = sorted(f"{name} round {run['round']}"
                  for name, s in results["contenders"].items() for run in s["runs"]
                  if run["others_running_before"] or run["others_pending_before"])
    if busy:
        notes.append("Other users' jobs were running or pending at the start of "
                     f"{len(busy)} timed run(s), competing for the CPUs: {', '.join(busy)} "
                     "(others_*_before in the JSON; --idle-wait waits for them).")
    if notes:
        out += ["", "Notes:"] + [f"  - {note}" for note in notes]
    return "\n".join(out)


# -- command line --------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int,
                        help=f"jobs per run (default {DEFAULT_JOBS}; --quick: {QUICK_JOBS})")
    parser.add_argument("--rounds", "--runs", dest="rounds", type=int,
                        help=f"interleaved rounds, one run of every contender each "
                             f"(default {DEFAULT_ROUNDS}; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_JOBS} jobs and 1 round, as a smoke test")
    parser.add_argument("--skip-raw", action="store_true",
                        help="do not time the raw sbatch arrays (both raw contenders)")
    parser.add_argument("--skip-submitit", action="store_true",
                        help="do not install or time submitit (both submitit contenders)")
    parser.add_argument("--skip-gridmap", action="store_true",
                        help="do not time this project's slurm backend")
    parser.add_argument("--skip-variants", action="store_true",
                        help="leave out raw-python, submitit-poll and gridmap-fresh")
    parser.add_argument("--submitit-poll", type=float, default=TUNED_POLL, metavar="S",
                        help=f"submitit-poll's poll_interval (default {TUNED_POLL})")
    parser.add_argument("--venv", type=Path, default=VENV_DIR,
                        help=f"submitit's virtual environment (default {VENV_DIR})")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write every run's time, the medians and ratios to PATH")
    parser.add_argument("--partition",
                        help="partition for every contender (default: the cluster's default "
                             "partition; submitit is given 'debug' unless this is set)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds one run may take before it is stopped (default 600)")
    parser.add_argument("--temp-dir", type=Path,
                        help="where the jobs' working directories go; must be visible to "
                             "the compute nodes (default: the system temp dir)")
    parser.add_argument("--idle-wait", type=float, default=0.0, metavar="S",
                        help="before each timed run, wait up to S seconds for other users' "
                             "jobs to leave the cluster (default 0)")
    parser.add_argument("--keep-files", action="store_true",
                        help="keep the jobs' working directories and logs")
    # The subprocess side of a Python contender.
    parser.add_argument("--child", choices=("submitit", "gridmap"), help=argparse.SUPPRESS)
    parser.add_argument("--child-temp-dir", help=argparse.SUPPRESS)
    parser.add_argument("--child-name", help=argparse.SUPPRESS)
    parser.add_argument("--child-poll", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = QUICK_JOBS if args.quick else DEFAULT_JOBS
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.jobs < 1 or args.rounds < 1:
        parser.error("--jobs and --rounds must be at least 1")
    if args.submitit_poll <= 0:
        parser.error("--submitit-poll must be positive")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        problem = slurm_problem()
        if problem:
            raise Unavailable(problem)
    except Unavailable as error:
        log(f"Slurm is not available here: {error}")
        return EXIT_UNAVAILABLE

    # Variables Slurm sets inside a job would mislead sbatch if this runs inside one.
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    prefix = f"gmbench{uuid.uuid4().hex[:8]}"
    cluster = Cluster(base_env, prefix, log)
    try:
        cluster.jobs()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        log(f"Slurm is not available here: {error}")
        return EXIT_UNAVAILABLE

    series = {name: Series(name) for name in CONTENDERS}
    skips = {"raw": args.skip_raw, "raw-python": args.skip_raw,
             "submitit": args.skip_submitit, "submitit-poll": args.skip_submitit,
             "gridmap": args.skip_gridmap, "gridmap-fresh": args.skip_gridmap}
    for name, skip in skips.items():
        if skip:
            series[name].status, series[name].reason = "skipped", f"--skip-{name.split('-')[0]}"
        elif args.skip_variants and name in VARIANTS:
            series[name].status, series[name].reason = "skipped", "--skip-variants"
    ctx = Context(args, cluster, base_env, Path(), log)
    if any(series[n].status == "pending" for n in ("submitit", "submitit-poll")):
        try:
            ctx.submitit_python = ensure_submitit_venv(args.venv, log)
        except Unavailable as error:
            for name in ("submitit", "submitit-poll"):
                series[name].status, series[name].reason = "skipped", str(error)
            log(f"skipping submitit: {error}")

    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_before": load_average()},
        "settings": {"jobs": args.jobs, "rounds": args.rounds, "warmup_jobs": WARMUP_JOBS,
                     "raw_poll": RAW_POLL, "submitit_poll": args.submitit_poll,
                     "idle_wait": args.idle_wait, "timeout": args.timeout,
                     "partition": args.partition, "job_name_prefix": prefix,
                     "interpreter": sys.executable, "submitit_venv": str(args.venv)},
        "cluster": cluster.describe(),
    }
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ctx.work_root = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=args.temp_dir))
    log(f"job names start with {prefix}; working directories in {ctx.work_root}")
    try:
        bench(ctx, series)
    except KeyboardInterrupt:
        log("interrupted: cancelling this benchmark's jobs")
        with contextlib.suppress(Exception):
            cluster.delete_ours()
        return 130
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        log(f"benchmark aborted: {error}")
        with contextlib.suppress(Exception):
            cluster.delete_ours()
        return 1
    finally:
        if args.keep_files:
            log(f"kept {ctx.work_root}")
        else:
            shutil.rmtree(ctx.work_root, ignore_errors=True)

    results["machine"]["load_after"] = load_average()
    results["contenders"] = {
        name: {"label": LABELS[name], "status": s.status, "reason": s.reason,
               "times": s.times, "median": s.median, "runs": s.runs, **s.info}
        for name, s in series.items()}
    results.update(summarize(series))
    results["targets"] = {key: text for key, text in verdicts(results["ratios"]).items() if text}
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"figures written to {args.json}")
    return 1 if any(s.status == "failed" for s in series.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
