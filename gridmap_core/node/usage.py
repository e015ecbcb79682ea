"""What a running job uses: CPU percent and memory of its whole process tree.

A job's CPU percent is measured between two samples, from the CPU time the tree
spent in that interval. The original GridMap built a fresh ``psutil.Process`` for
each reading, so its first-call ``cpu_percent()`` was always 0 and idle detection
never had real data; here the sampler keeps its processes between samples, and
counts the CPU time of children that ended in between through their parent's
``children_*`` times (less what earlier samples already counted of them).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import psutil

# tail lives with describe_exit, which reads the end of a runner's log with it.
from gridmap_core.wire.exits import tail

__all__ = ["Usage", "UsageSampler", "tail"]


@dataclass(frozen=True)
class Usage:
    """One sample: CPU percent since the previous sample (100 = one core busy),
    resident memory of the tree in bytes, and how many processes it has."""

    cpu_percent: float
    rss_bytes: int
    processes: int
    status: str


def _cpu_seconds(times: Any) -> float:
    # children_* hold the CPU time of children that ended and were waited for.
    return float(
        times.user
        + times.system
        + getattr(times, "children_user", 0.0)
        + getattr(times, "children_system", 0.0)
    )


class UsageSampler:
    """Samples a process and all its descendants; create once, call :meth:`sample`.

    With ``unique_root``, the root counts only the memory no other process maps
    (USS): for a root whose children were forked from it (the runner and its job's
    process), the pages they still share are counted once, in the child's RSS.
    """

    def __init__(self, pid: int | None = None, *, unique_root: bool = False) -> None:
        self.root = psutil.Process(pid or os.getpid())
        self.unique_root = unique_root
        self._last_cpu: dict[int, float] = {}
        self._parents: dict[int, int] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._last_time = time.monotonic()
        self._baseline()

    def _tree(self) -> list[psutil.Process]:
        try:
            found = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []
        tree = []
        for proc in found:
            # Reuse the Process object we already have, so psutil's view of it (and
            # its identity check against PID reuse) stays the same across samples.
            known = self._procs.get(proc.pid)
            tree.append(known if known is not None and known.is_running() else proc)
        return tree

    def _cpu_by_pid(self, tree: list[psutil.Process]) -> dict[int, float]:
        cpu = {}
        for proc in tree:
            try:
                cpu[proc.pid] = _cpu_seconds(proc.cpu_times())
            except psutil.Error:
                continue
        return cpu

    @staticmethod
    def _parents_of(tree: list[psutil.Process]) -> dict[int, int]:
        parents = {}
        for proc in tree:
            try:
                parents[proc.pid] = proc.ppid()
            except psutil.Error:
                continue
        return parents

    def _baseline(self) -> None:
        tree = self._tree()
        self._procs = {p.pid: p for p in tree}
        self._last_cpu = self._cpu_by_pid(tree)
        self._parents = self._parents_of(tree)
        self._last_time = time.monotonic()

    def _counted_twice(self, cpu: dict[int, float]) -> float:
        """CPU seconds of processes gone since the last sample that earlier samples
        counted and that now show again in an ancestor's ``children_*`` times (it
        waited for them). One whose ancestors left the tree too was not waited for
        by the tree: its time is lost, not counted twice."""
        twice = 0.0
        for pid, seconds in self._last_cpu.items():
            if pid in cpu:
                continue
            ancestor = self._parents.get(pid)
            while ancestor is not None and ancestor not in cpu:
                ancestor = self._parents.get(ancestor)
            if ancestor is not None:
                twice += seconds
        return twice

    def _memory(self, tree: list[psutil.Process]) -> int:
        total = 0
        for proc in tree:
            try:
                if self.unique_root and proc.pid == self.root.pid and len(tree) > 1:
                    total += proc.memory_full_info().uss
                else:
                    total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def sample(self, status_of: int | None = None) -> Usage:
        """CPU percent since the last sample, and memory now, of the whole tree; the
        status is that of process ``status_of`` (one of the tree) or of the root."""
        tree = self._tree()
        now = time.monotonic()
        cpu = self._cpu_by_pid(tree)
        spent = -self._counted_twice(cpu)
        for pid, seconds in cpu.items():
            # A process new since the last sample counts from zero: its whole life
            # fell inside the interval (or nearly so).
            spent += max(0.0, seconds - self._last_cpu.get(pid, 0.0))
        elapsed = max(now - self._last_time, 1e-6)
        watched = next((p for p in tree if p.pid == status_of), self.root)
        try:
            status = watched.status()
        except psutil.Error:
            status = "gone"
        self._procs = {p.pid: p for p in tree}
        self._last_cpu = cpu
        self._parents = self._parents_of(tree)
        self._last_time = now
        return Usage(100.0 * max(0.0, spent) / elapsed, self._memory(tree), len(tree), status)

