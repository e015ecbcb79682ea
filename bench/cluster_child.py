"""The child side of a cluster benchmark: one timed map in a fresh subprocess.

A cluster benchmark's script runs itself again with ``--child NAME`` for every Python
contender; that process makes one timed map and prints its answer on a line starting
with ``MARK``. Only the standard library at module level: the same code runs inside a
peer's virtual environment (the original GridMap's, submitit's), where this project's
packages must not be imported.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench_common import Unavailable  # a sibling module

__all__ = ["MARK", "Child", "ContenderFailed", "ContenderUnavailable", "child_gridmap",
           "child_main", "reply"]

MARK = "@@BENCH "

# Makes one timed map and returns at least "seconds" and "results"; raises
# ContenderUnavailable when it cannot run here at all.
Child = Callable[[argparse.Namespace], dict[str, Any]]


class ContenderUnavailable(Unavailable):
    """The contender cannot run here at all (not installed, no backend): it is skipped."""


class ContenderFailed(RuntimeError):
    """The contender ran but failed, timed out or returned wrong results."""


def reply(payload: Mapping[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(payload, default=repr) + "\n")
    sys.stdout.flush()


def napping(function: Callable[[int], int], seconds: float) -> Callable[[int], int]:
    """``function`` after a sleep of ``seconds`` (--job-seconds), or ``function`` itself."""
    if not seconds:
        return function

    def nap_then(x: int) -> int:  # a closure: pickled by value, the nodes need not import us
        time.sleep(seconds)
        return function(x)

    return nap_then


def child_gridmap(args: argparse.Namespace, function: Callable[[int], int], backend: str,
                  options: Mapping[str, Any]) -> dict[str, Any]:
    """This project's ``grid_map(function, range(jobs), backend=backend, ...)``, timed;
    with the deaths and resubmissions of its jobs that observers heard."""
    try:
        import gridmap
        from gridmap import grid_map
        from gridmap_core import BackendUnavailableError, UnknownPluginError
        from gridmap_core.plugins.manager import get_plugin_manager, hookimpl
    except ImportError as error:
        raise ContenderUnavailable(f"cannot import this project's gridmap: {error!r}") from error

    class Deaths:
        """Counts the jobs that died and were resubmitted, by the kind of death."""

        def __init__(self) -> None:
            self.counts = {"died": 0, "resubmitted": 0}
            self.kinds: dict[str, int] = {}

        @hookimpl
        def gridmap_job_died(self, job: Any) -> None:
            self.counts["died"] += 1

        @hookimpl
        def gridmap_job_resubmitted(self, job: Any) -> None:
            self.counts["resubmitted"] += 1
            kind = getattr(job, "death_kind", None)
            kind = str(getattr(kind, "value", kind) or "unknown")  # DeathKind's words
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    deaths = Deaths()
    get_plugin_manager().register(deaths, name="bench-deaths")
    inputs = list(range(args.jobs))
    work = napping(function, args.job_seconds)
    gc.collect()  # so garbage from the imports is not collected on the clock
    start = time.perf_counter()
    try:
        results = grid_map(work, inputs, backend=backend, quiet=True,
                           temp_dir=args.child_temp_dir, name=args.child_name,
                           require_cluster=True, on_failure=args.child_on_failure, **options)
    except (UnknownPluginError, BackendUnavailableError) as error:
        raise ContenderUnavailable(f"{type(error).__name__}: {error}") from error
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "results": results, "version": gridmap.__version__,
            "file": str(Path(gridmap.__file__ or ".").resolve()), **deaths.counts,
            "death_kinds": deaths.kinds}


def child_main(args: argparse.Namespace, children: Mapping[str, Child]) -> int:
    """Run the child named by ``--child`` and print its answer for the parent."""
    start = time.perf_counter()
    try:
        answer = children[args.child](args)
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
