"""Running one contender of a cluster benchmark: a raw array through the scheduler's
adapter, or a Python contender in a fresh subprocess of the benchmark's script, whose
answer and results are checked; and the peer's virtual environment."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_common import ensure_venv, run_quiet, tail
from cluster_adapter import Benchmark, Outcome, Peer
from cluster_child import MARK, ContenderFailed, ContenderUnavailable
from cluster_queue import Cluster

__all__ = ["Context", "ensure_peer_venv", "run_contender", "run_process"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# A child that was interrupted gets this long to cancel its own jobs before SIGKILL.
STOP_GRACE = 20.0
# Variables that would let a peer's venv interpreter, or the jobs it submits, import this
# project's packages instead of the peer's.
_LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
                    "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
# Settings gridmap (gridmap_core.model.config) and the original GridMap read from the
# environment: removed so that each runs with its defaults (heartbeats, resubmission,
# queue, runner reuse) whatever the calling shell has set.
_TUNING_VARIABLES = ("GRIDMAP_BACKEND", "GRIDMAP_CONFIG", "GRIDMAP_TRANSPORT",
                     "GRIDMAP_MONITOR_ADDRESS", "GRIDMAP_MONITOR_INTERFACE",
                     "GRIDMAP_MONITOR_PORTS", "USE_MEM_FREE", "DEFAULT_QUEUE",
                     "DEFAULT_TEMP_DIR", "DEFAULT_PAR_ENV", "MAX_TIME_BETWEEN_HEARTBEATS",
                     "IDLE_THRESHOLD", "MAX_IDLE_HEARTBEATS", "NUM_RESUBMITS",
                     "CHECK_FREQUENCY", "HEARTBEAT_FREQUENCY", "SMTP_SERVER",
                     "ERROR_MAIL_SENDER", "ERROR_MAIL_RECIPIENT", "GRIDMAP_REUSE_RUNNERS")
# With mail on, a failing job makes the original connect to an SMTP server named after the
# host, and the connection error then hides the job's own exception; plots need
# matplotlib. Every Python contender gets the same values; neither changes a good run.
_QUIET_SETTINGS = {"SEND_ERROR_MAIL": "False", "CREATE_PLOTS": "False"}


# -- running contenders --------------------------------------------------------------------

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


def _file_tail(path: Path, lines: int = 8) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return ""


@dataclass
class Context:
    bench: Benchmark
    args: argparse.Namespace
    cluster: Cluster
    base_env: dict[str, str]  # this process's environment plus the cluster's client settings
    work_root: Path
    log: Callable[[str], None]
    peer_python: Path | None = None
    # What else happens during a run (contender, label): a node killed, with --kill-node.
    # It yields a dict of what it did, added to the run's details.
    during: Callable[[str, str], AbstractContextManager[dict[str, Any]]] | None = None

    def job_name(self, contender: str) -> str:
        return self.bench.job_name(self.cluster.prefix, contender)


def child_environment(ctx: Context, contender: str) -> dict[str, str]:
    env = {k: v for k, v in ctx.base_env.items()
           if k not in _LEAKY_VARIABLES and k not in _TUNING_VARIABLES}
    env.update(_QUIET_SETTINGS)
    env.update(ctx.bench.child_settings(contender))
    if contender.startswith("gridmap"):
        # This checkout's gridmap, even when the project is not installed (or is
        # installed from another path); backends are still found by their entry points.
        existing = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([existing] if existing else [])])
    return env


def run_python(ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
    logs = workdir / "logs"  # temp_dir: the jobs' logs, on a directory the nodes can see
    logs.mkdir()
    child = contender.split("-")[0]
    if child == "gridmap":
        interpreter = [sys.executable]
    else:
        assert ctx.peer_python is not None
        # -I: neither the script's directory, the working directory nor PYTHONPATH
        # reaches sys.path, so only the venv's packages can be imported.
        interpreter = [str(ctx.peer_python), "-I"]
    # A map that loses results (with a node killed) returns them in place; they are
    # counted, not a failure.
    count_lost = bool(getattr(ctx.args, "kill_node", None))
    seconds = getattr(ctx.args, "job_seconds", 0.0)
    command = [*interpreter, str(ctx.bench.script), "--child", child, "--jobs", str(jobs),
               "--child-temp-dir", str(logs), "--child-name", ctx.job_name(contender),
               *(["--job-seconds", str(seconds)] if seconds else []),
               *(["--child-on-failure", "return"] if count_lost else []),
               *ctx.bench.child_arguments(ctx.args, contender)]
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
    expected = [ctx.bench.function(x) for x in range(jobs)]
    if count_lost:
        answer["lost"] = sum(1 for i, value in enumerate(expected)
                             if i >= len(results) or results[i] != value)
    elif results != expected:
        wrong = next((i for i, (a, b) in enumerate(zip(results, expected, strict=False))
                      if a != b), min(len(results), len(expected)))
        raise ContenderFailed(f"wrong results: {len(results)} values, first difference at "
                              f"index {wrong}")
    answer.pop("status")
    seconds = float(answer.pop("seconds"))
    info: dict[str, Any] = {key: answer.pop(key) for key in ("version", "file", "python")
                            if key in answer}
    return Outcome(seconds, wall, info, answer)


def run_contender(ctx: Context, contender: str, jobs: int, label: str) -> Outcome:
    workdir = ctx.work_root / f"{label.replace(' ', '')}-{contender}"
    workdir.mkdir()
    during = ctx.during(contender, label) if ctx.during else contextlib.nullcontext({})
    with during as happened:
        if contender.startswith("raw"):
            outcome = ctx.bench.run_raw(ctx, contender, jobs, workdir)
        else:
            outcome = run_python(ctx, contender, jobs, workdir)
    outcome.details.update(happened)
    return outcome


def ensure_peer_venv(peer: Peer, venv: Path, log: Callable[[str], None]) -> Path:
    """The venv's interpreter, after installing the peer's requirements there if needed."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES}

    def ready(python: Path, cwd: str) -> bool:
        if not python.exists():
            return False
        probe = run_quiet([python, "-I", "-c", peer.probe], 60, cwd, env)
        return probe.returncode == 0 and (peer.expect is None
                                          or probe.stdout.split()[:1] == [peer.expect])

    return ensure_venv(venv, peer.requirements, ready, log, env)
