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
checked. Progress goes to stderr, the table to stdout.

Usage: python bench/bench_sge.py [--jobs 200] [--runs 3] [--quick] [--skip-original]
                                 [--skip-gridmap] [--venv PATH] [--json PATH]
"""

# Only the standard library at module level: the same file runs as the child of the
# original GridMap inside its venv, where this project's packages must not be imported.
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import re
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
import xml.etree.ElementTree as ElementTree
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
VENV_DIR = BENCH_DIR / ".venvs" / "gridmap015-sge"
SGE_ENV_FILE = Path(os.environ.get("GRIDMAP_SGE_ENV_FILE", "/etc/gridmap-sge.env"))
ORIGINAL_VERSION = "0.15.0"
ORIGINAL_REQUIREMENTS = (f"gridmap=={ORIGINAL_VERSION}", "drmaa")
MARK = "@@BENCH "
CONTENDERS = ("raw", "original", "gridmap")
LABELS = {
    "raw": "raw qsub array",
    "original": f"GridMap {ORIGINAL_VERSION}",
    "gridmap": 'gridmap, backend "sge"',
}
DEFAULT_JOBS = 200
DEFAULT_RUNS = 3
QUICK_JOBS = 20
WARMUP_JOBS = 2
TARGET_RATIO = 1.3
# The original's workers sleep random.randint(0, 5) seconds before fetching their input.
ORIGINAL_MEAN_SLEEP = 2.5
# How long leftover jobs may take to leave the queue before they are deleted.
CLEAR_TIMEOUT = 120.0
# A child that was interrupted gets this long to cancel its own jobs before SIGKILL.
STOP_GRACE = 20.0
RAW_CODE = 'import os; print(2 * (int(os.environ["SGE_TASK_ID"]) - 1))'
# Variables that would let the venv's interpreter, or the jobs it submits, import this
# project's packages instead of the original's.
_LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
                    "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
# Both GridMaps read these from the environment; removed so that each runs with its
# defaults (heartbeats, resubmission, queue) whatever the calling shell has set.
_TUNING_VARIABLES = ("USE_MEM_FREE", "DEFAULT_QUEUE", "DEFAULT_TEMP_DIR", "DEFAULT_PAR_ENV",
                     "MAX_TIME_BETWEEN_HEARTBEATS", "IDLE_THRESHOLD", "MAX_IDLE_HEARTBEATS",
                     "NUM_RESUBMITS", "CHECK_FREQUENCY", "HEARTBEAT_FREQUENCY",
                     "SMTP_SERVER", "ERROR_MAIL_SENDER", "ERROR_MAIL_RECIPIENT")
# With mail on, a failing job makes the original connect to an SMTP server named after the
# host, and the connection error then hides the job's own exception. Plots need
# matplotlib. Both GridMaps get the same values.
_QUIET_SETTINGS = {"SEND_ERROR_MAIL": "False", "CREATE_PLOTS": "False"}


def double(x: int) -> int:
    return 2 * x


class ContenderUnavailable(Unavailable):
    """The contender cannot run here at all (not installed, no backend): it is skipped."""


class ContenderFailed(RuntimeError):
    """The contender ran but failed, timed out or returned wrong results."""


# -- the child: one timed grid_map call, in a subprocess ---------------------------------

def reply(payload: Mapping[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(payload, default=repr) + "\n")
    sys.stdout.flush()


def prepare_original(args: argparse.Namespace) -> tuple[Callable[[list[int]], Any],
                                                          tuple[type[BaseException], ...],
                                                          dict[str, Any]]:
    try:
        gridmap = importlib.import_module("gridmap")
        version = importlib.metadata.version("gridmap")
    except Exception as error:
        raise ContenderUnavailable(f"cannot import the original gridmap: {error!r}") from error
    location = Path(gridmap.__file__ or ".").resolve()
    if not location.is_relative_to(Path(sys.prefix).resolve()):
        # This project's own gridmap leaked onto sys.path: timing it would report the
        # new code as the original.
        raise ContenderUnavailable(f"imported gridmap from {location}, not from {sys.prefix}")
    if version != ORIGINAL_VERSION:
        raise ContenderUnavailable(f"{sys.prefix} has gridmap {version}, not {ORIGINAL_VERSION}")
    if not gridmap.conf.DRMAA_PRESENT:
        # The original would silently run everything locally; say why drmaa is missing.
        try:
            importlib.import_module("drmaa")
            why = "drmaa imports now but did not when gridmap was imported"
        except Exception as error:
            why = f"{type(error).__name__}: {error}"
        raise ContenderUnavailable(
            f"the original cannot load drmaa ({why}); it needs SGE_ROOT, DRMAA_LIBRARY_PATH "
            "and GLIBC_TUNABLES in its environment (see --sge-env)")
    options: dict[str, Any] = {"quiet": True, "temp_dir": args.child_temp_dir,
                               "name": args.child_name, "require_cluster": True}
    if args.queue:
        options["queue"] = args.queue

    def call(inputs: list[int]) -> Any:
        return gridmap.grid_map(double, inputs, **options)

    return call, (gridmap.DRMAANotPresentException,), {"version": version,
                                                       "file": str(location)}


def prepare_gridmap(args: argparse.Namespace) -> tuple[Callable[[list[int]], Any],
                                                         tuple[type[BaseException], ...],
                                                         dict[str, Any]]:
    try:
        import gridmap
        from gridmap import grid_map
        from gridmap_core import BackendUnavailableError, UnknownPluginError
    except ImportError as error:
        raise ContenderUnavailable(f"cannot import this project's gridmap: {error!r}") from error
    queue = {"queue": args.queue} if args.queue else {}

    def call(inputs: list[int]) -> Any:
        return grid_map(double, inputs, backend="sge", quiet=True,
                        temp_dir=args.child_temp_dir, name=args.child_name,
                        require_cluster=True, **queue)

    return call, (UnknownPluginError, BackendUnavailableError), {
        "version": gridmap.__version__, "file": str(Path(gridmap.__file__ or ".").resolve())}


def child_main(args: argparse.Namespace) -> int:
    prepare = prepare_original if args.child == "original" else prepare_gridmap
    try:
        call, unavailable, info = prepare(args)
    except Unavailable as error:
        reply({"status": "unavailable", "reason": str(error)})
        return 0
    info["python"] = sys.version.split()[0]
    inputs = list(range(args.jobs))
    gc.collect()  # so garbage from the imports is not collected on the clock
    start = time.perf_counter()
    try:
        result = call(inputs)
    except unavailable as error:
        reply({"status": "unavailable", "reason": f"{type(error).__name__}: {error}", **info})
        return 0
    except Exception as error:
        traceback.print_exc()
        reply({"status": "failed", "reason": f"{type(error).__name__}: {error}",
               "seconds": time.perf_counter() - start, **info})
        return 1
    elapsed = time.perf_counter() - start
    reply({"status": "ok", "seconds": elapsed, "results": result, **info})
    return 0


# -- the cluster: environment, queue state, cleaning up ----------------------------------

def _file_tail(path: Path, lines: int = 8) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


def load_env_file(path: Path | None) -> dict[str, str]:
    """``export NAME=VALUE`` lines of the cluster's client environment file."""
    if path is None or not path.is_file():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match and not line.lstrip().startswith("#"):
            words = shlex.split(match.group(2))
            found[match.group(1)] = words[0] if words else ""
    return found


@dataclass(frozen=True)
class QueuedJob:
    number: str
    name: str
    owner: str
    state: str


@dataclass
class Cluster:
    """qstat/qdel for this benchmark's jobs, which all have names starting with ``prefix``."""

    env: dict[str, str]
    prefix: str
    log: Callable[[str], None]

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def jobs(self) -> list[QueuedJob]:
        done = self._run("qstat", "-u", "*", "-xml")
        if done.returncode != 0:
            raise RuntimeError(f"qstat failed ({done.returncode}): {tail(done.stderr, 3)}")
        root = ElementTree.fromstring(done.stdout)
        return [QueuedJob(item.findtext("JB_job_number", ""), item.findtext("JB_name", ""),
                          item.findtext("JB_owner", ""), item.findtext("state", ""))
                for item in root.iter("job_list")]

    def ours(self, jobs: Sequence[QueuedJob] | None = None) -> list[QueuedJob]:
        return [j for j in (self.jobs() if jobs is None else jobs)
                if j.name.startswith(self.prefix)]

    def delete_ours(self) -> int:
        """qdel every job of this benchmark still known to the cluster; never anyone else's."""
        numbers = sorted({j.number for j in self.ours()}, key=int)
        if numbers:
            self.log(f"deleting this benchmark's leftover jobs: {' '.join(numbers)}")
            self._run("qdel", *numbers)
        return len(numbers)

    def wait_until_clear(self, idle_wait: float = 0.0) -> dict[str, int]:
        """Wait until none of our jobs is queued or running, and up to ``idle_wait``
        seconds more for other users' jobs to go; return what others have left then."""
        start = time.monotonic()
        deadline = start + CLEAR_TIMEOUT
        deleted = told = False
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
                # One entry per running task, one per pending job or array.
                return {"running": sum(1 for j in jobs if "q" not in j.state),
                        "pending": sum(1 for j in jobs if "q" in j.state)}
            if time.monotonic() > deadline:
                if deleted:
                    raise RuntimeError(f"jobs named {self.prefix}* are still on the cluster "
                                       f"{CLEAR_TIMEOUT:.0f} s after qdel")
                self.delete_ours()
                deleted, deadline = True, time.monotonic() + CLEAR_TIMEOUT
            time.sleep(0.25)

    def queues(self) -> dict[str, dict[str, int]]:
        """Used and total slots per cluster queue (``qstat -g c``); empty if unknown."""
        with contextlib.suppress(Exception):
            done = self._run("qstat", "-g", "c")
            found = {}
            for line in done.stdout.splitlines()[2:]:
                cells = line.split()
                if len(cells) >= 6 and cells[2].isdigit() and cells[5].isdigit():
                    found[cells[0]] = {"used": int(cells[2]), "total": int(cells[5])}
            return found
        return {}


# -- running contenders --------------------------------------------------------------------

@dataclass
class Outcome:
    seconds: float          # the contender's end-to-end time
    process_seconds: float  # the whole subprocess, start-up and imports included
    info: dict[str, Any] = field(default_factory=dict)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Interrupt a child's whole process group, so it can cancel its jobs, then kill it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)
    # Also whatever the child started (the original's local heartbeat process) and left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_process(command: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str],
                cwd: Path, timeout: float, log_name: str) -> tuple[int, float, Path, Path]:
    out, err = cwd / f"{log_name}.out", cwd / f"{log_name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        # Its own session: a Ctrl-C reaches only this process, which then stops the
        # child in order (interrupt, grace, kill) and deletes the jobs left behind.
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


@dataclass
class Context:
    args: argparse.Namespace
    cluster: Cluster
    base_env: dict[str, str]  # this process's environment plus the cluster's client settings
    work_root: Path
    log: Callable[[str], None]
    original_python: Path | None = None

    def job_name(self, contender: str) -> str:
        return f"{self.cluster.prefix}{contender[0]}"


def run_raw(ctx: Context, jobs: int, workdir: Path) -> Outcome:
    queue = ["-q", ctx.args.queue] if ctx.args.queue else []
    # -b y jobs run through the queue's shell, which joins the arguments into one
    # command line: the code must be quoted for it. $TASK_ID is expanded by SGE.
    command = ["qsub", "-sync", "y", "-t", f"1-{jobs}", "-b", "y", "-N", ctx.job_name("raw"),
               "-wd", str(workdir), "-j", "y", "-o", f"{workdir}/raw.$TASK_ID", *queue,
               sys.executable, "-c", shlex.quote(RAW_CODE)]
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


def child_environment(ctx: Context, contender: str) -> dict[str, str]:
    env = {k: v for k, v in ctx.base_env.items()
           if k not in _LEAKY_VARIABLES and k not in _TUNING_VARIABLES}
    env.update(_QUIET_SETTINGS)
    if contender == "gridmap":
        # This checkout's gridmap, even when the project is not installed (or is
        # installed from another path); backends are still found by their entry points.
        existing = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([existing] if existing else [])])
    return env


def run_python(ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
    logs = workdir / "logs"  # temp_dir: the jobs' logs, on a directory the node can see
    logs.mkdir()
    if contender == "original":
        assert ctx.original_python is not None
        # -I: neither the script's directory, the working directory nor PYTHONPATH
        # reaches sys.path, so only the venv's gridmap can be imported.
        interpreter = [str(ctx.original_python), "-I"]
    else:
        interpreter = [sys.executable]
    command = [*interpreter, str(SCRIPT), "--child", contender, "--jobs", str(jobs),
               "--child-temp-dir", str(logs), "--child-name", ctx.job_name(contender)]
    if ctx.args.queue:
        command += ["--queue", ctx.args.queue]
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
    expected = [2 * x for x in range(jobs)]
    if results != expected:
        wrong = next((i for i, (a, b) in enumerate(zip(results, expected, strict=False))
                      if a != b), min(len(results), len(expected)))
        raise ContenderFailed(f"wrong results: {len(results)} values, first difference at "
                              f"index {wrong}")
    return Outcome(float(answer.pop("seconds")), wall, answer)


def run_contender(ctx: Context, contender: str, jobs: int, label: str) -> Outcome:
    workdir = ctx.work_root / f"{label.replace(' ', '')}-{contender}"
    workdir.mkdir()
    if contender == "raw":
        return run_raw(ctx, jobs, workdir)
    return run_python(ctx, contender, jobs, workdir)


# -- the original GridMap's virtual environment --------------------------------------------

def venv_has_original(python: Path, cwd: str, env: Mapping[str, str]) -> bool:
    if not python.exists():
        return False
    probe = run_quiet([python, "-I", "-c",
                        "import importlib.metadata as m; "
                        "print(m.version('gridmap'), m.version('drmaa'))"], 60, cwd, env)
    return probe.returncode == 0 and probe.stdout.split()[:1] == [ORIGINAL_VERSION]


def ensure_original_venv(venv: Path, log: Callable[[str], None]) -> Path:
    """The venv's interpreter, after installing the original GridMap and drmaa if needed."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES}
    return ensure_venv(venv, ORIGINAL_REQUIREMENTS,
                       lambda python, cwd: venv_has_original(python, cwd, env), log, env)


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
    except (ContenderFailed, OSError, ValueError) as error:
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
    for round_ in range(args.runs):
        # Rotating the order puts every contender first, second and third in turn.
        order = CONTENDERS[round_ % 3:] + CONTENDERS[:round_ % 3]
        for position, name in enumerate(order):
            s = series[name]
            if s.status != "pending":
                continue
            others = ctx.cluster.wait_until_clear(args.idle_wait)
            time.sleep(1.0)  # one scheduling interval, so the last run's finish is flushed
            load = load_average()
            label = f"round {round_ + 1}"
            outcome = attempt(ctx, s, args.jobs, label)
            if outcome is None:
                continue
            # A GridMap returns once it has every result, possibly while its jobs are
            # still exiting; how long they linger is not part of its time, but shows here.
            returned = time.perf_counter()
            ctx.cluster.wait_until_clear()
            drain = time.perf_counter() - returned
            s.runs.append({"round": round_ + 1, "position": position + 1,
                           "seconds": outcome.seconds,
                           "process_seconds": outcome.process_seconds,
                           "jobs_left_seconds": drain,
                           "load_average_before": load,
                           "others_running_before": others["running"],
                           "others_pending_before": others["pending"]})
            s.info.update(outcome.info)
            busy = (f"; at its start others had {others['running']} task(s) running and "
                    f"{others['pending']} job(s) pending" if any(others.values()) else "")
            ctx.log(f"  {label}/{args.runs}: {name:8} {outcome.seconds:7.2f} s "
                    f"(its jobs left the queue {drain:.1f} s later{busy})")
    for s in series.values():
        if s.status == "pending":
            s.status = "ok"
    ctx.cluster.wait_until_clear()


def summarize(series: dict[str, Series]) -> dict[str, Any]:
    medians = {name: s.median for name, s in series.items()}
    return {
        "medians": medians,
        "ratios": {
            "gridmap/raw": ratio(medians["gridmap"], medians["raw"]),
            "gridmap/original": ratio(medians["gridmap"], medians["original"]),
            "original/raw": ratio(medians["original"], medians["raw"]),
        },
    }


# -- reporting -----------------------------------------------------------------------------

def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(results: dict[str, Any]) -> str:
    settings, machine, cluster = results["settings"], results["machine"], results["cluster"]
    jobs, runs = settings["jobs"], settings["runs"]
    slots = cluster.get("slots")
    out = [
        f"gridmap SGE benchmark, {results['date']}",
        f"{machine['platform']}, Python {machine['python']}, {machine['cpus']} CPUs; "
        f"load average {machine['load_before']} before, {machine['load_after']} after",
        f"{jobs} trivial jobs per run, median of {runs} interleaved run"
        f"{'s' if runs != 1 else ''}; cluster queues: "
        + (", ".join(f"{q} {v['total']} slots" for q, v in cluster["queues"].items())
           or "unknown"),
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
    ratios = results["ratios"]
    out += ["", table(["ratio of medians", "value"],
                      [[key, fmt_ratio(value)] for key, value in ratios.items()], "lr")]
    value = ratios["gridmap/raw"]
    verdict = ("not measured" if value is None
               else f"{fmt_ratio(value)}, {'met' if value <= TARGET_RATIO else 'NOT met'}")
    out += ["", f"Target: gridmap within {TARGET_RATIO}x of raw: {verdict}"]
    notes = []
    if results["contenders"]["original"]["status"] == "ok" and slots:
        notes.append(
            f"GridMap {ORIGINAL_VERSION}'s workers each sleep a random 0-5 s (mean "
            f"{ORIGINAL_MEAN_SLEEP} s) before fetching their input, by design: that adds "
            f"about {jobs * ORIGINAL_MEAN_SLEEP / slots:.0f} s to a run of {jobs} jobs on "
            f"{slots} slots.")
    busy = sorted(f"{LABELS[name]} round {run['round']}"
                  for name, s in results["contenders"].items() for run in s["runs"]
                  if run["others_running_before"] or run["others_pending_before"])
    if busy:
        notes.append("Other users' jobs were running or pending at the start of "
                     f"{len(busy)} timed run(s), competing for slots: {', '.join(busy)} "
                     "(others_*_before in the JSON; --idle-wait waits for them).")
    if notes:
        out += ["", "Notes:"] + [f"  - {note}" for note in notes]
    return "\n".join(out)


# -- command line --------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int,
                        help=f"jobs per run (default {DEFAULT_JOBS}; --quick: {QUICK_JOBS})")
    parser.add_argument("--runs", type=int,
                        help=f"timed runs per contender (default {DEFAULT_RUNS}; --quick: 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_JOBS} jobs and 1 run, as a smoke test")
    parser.add_argument("--skip-original", action="store_true",
                        help="do not install or time the original GridMap")
    parser.add_argument("--skip-gridmap", action="store_true",
                        help="do not time this project's sge backend")
    parser.add_argument("--venv", type=Path, default=VENV_DIR,
                        help=f"virtual environment of the original GridMap (default {VENV_DIR})")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write every run's time, the medians and ratios to PATH")
    parser.add_argument("--queue", help="cluster queue for every contender (default: each "
                                        "one's default; the original's is all.q)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds one run may take before it is stopped (default 900)")
    parser.add_argument("--temp-dir", type=Path,
                        help="where the jobs' working and log directories go; must be "
                             "visible to the execution hosts (default: the system temp dir)")
    parser.add_argument("--sge-env", type=Path, default=SGE_ENV_FILE,
                        help=f"the cluster's client environment file (default {SGE_ENV_FILE})")
    parser.add_argument("--idle-wait", type=float, default=0.0, metavar="S",
                        help="before each timed run, wait up to S seconds for other users' "
                             "jobs to leave the cluster (default 0: only this benchmark's "
                             "own jobs are waited for)")
    parser.add_argument("--keep-files", action="store_true",
                        help="keep the jobs' working directories and logs")
    # The subprocess side of a Python contender.
    parser.add_argument("--child", choices=("original", "gridmap"), help=argparse.SUPPRESS)
    parser.add_argument("--child-temp-dir", help=argparse.SUPPRESS)
    parser.add_argument("--child-name", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = QUICK_JOBS if args.quick else DEFAULT_JOBS
    if args.runs is None:
        args.runs = 1 if args.quick else DEFAULT_RUNS
    if args.jobs < 1 or args.runs < 1:
        parser.error("--jobs and --runs must be at least 1")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    base_env = dict(os.environ)
    sge_env = load_env_file(args.sge_env)
    if sge_env:
        base_env.update(sge_env)
    else:
        log(f"{args.sge_env} not found: using this process's environment for the cluster")
    prefix = f"gmbench{uuid.uuid4().hex[:8]}"
    cluster = Cluster(base_env, prefix, log)
    try:
        cluster.jobs()
    except (OSError, RuntimeError, subprocess.TimeoutExpired,
            ElementTree.ParseError) as error:
        log(f"cannot talk to the Grid Engine cluster ({error}); is it running "
            "(scripts/sge/start.sh) and is its environment loaded?")
        return 1

    series = {name: Series(name) for name in CONTENDERS}
    if args.skip_original:
        series["original"].status, series["original"].reason = "skipped", "--skip-original"
    if args.skip_gridmap:
        series["gridmap"].status, series["gridmap"].reason = "skipped", "--skip-gridmap"
    ctx = Context(args, cluster, base_env, Path(), log)
    if series["original"].status == "pending":
        try:
            ctx.original_python = ensure_original_venv(args.venv, log)
        except Unavailable as error:
            series["original"].status, series["original"].reason = "skipped", str(error)
            log(f"skipping the original GridMap: {error}")

    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_before": load_average()},
        "settings": {"jobs": args.jobs, "runs": args.runs, "warmup_jobs": WARMUP_JOBS,
                     "idle_wait": args.idle_wait, "timeout": args.timeout,
                     "queue": args.queue, "job_name_prefix": prefix,
                     "interpreter": sys.executable,
                     "original_venv": str(args.venv)},
    }
    queues = cluster.queues()
    results["cluster"] = {"queues": queues,
                          "slots": sum(q["total"] for q in queues.values()) or None}
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ctx.work_root = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=args.temp_dir))
    log(f"job names start with {prefix}; working directories in {ctx.work_root}")
    try:
        bench(ctx, series)
    except KeyboardInterrupt:
        log("interrupted: deleting this benchmark's jobs")
        with contextlib.suppress(Exception):
            cluster.delete_ours()
        return 130
    except (OSError, RuntimeError, subprocess.TimeoutExpired,
            ElementTree.ParseError) as error:
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
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"figures written to {args.json}")
    return 1 if any(s.status == "failed" for s in series.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
