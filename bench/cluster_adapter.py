"""What a scheduler's benchmark script supplies to the cluster benchmark harness.

bench_sge.py and bench_slurm.py each define a ``Benchmark``: the contenders and their
labels, how a raw array is submitted and waited for, the peer timed against gridmap and
its virtual environment, the scheduler's options, environment, settings and report lines.
cluster_bench.py does the rest.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cluster_child import Child, child_gridmap
from cluster_queue import Cluster

if TYPE_CHECKING:
    from cluster_multinode import Setup
    from cluster_runs import Context

__all__ = ["Benchmark", "Outcome", "Peer"]


@dataclass(frozen=True)
class Peer:
    """Another tool timed against gridmap, run by its own virtual environment."""

    family: str  # its contenders' names start with this: original, submitit
    title: str  # for the log and --help: "the original GridMap"
    venv: str  # its virtual environment's directory under bench/.venvs
    requirements: tuple[str, ...]
    probe: str  # Python code that fails, or prints ``expect`` first, when it is not there
    expect: str | None = None


@dataclass
class Outcome:
    seconds: float          # the contender's end-to-end time
    process_seconds: float  # the whole subprocess, start-up and imports included
    info: dict[str, Any] = field(default_factory=dict)  # about the contender: its version...
    details: dict[str, Any] = field(default_factory=dict)  # about this run: its array's id...


class Benchmark(ABC):
    """What one scheduler's benchmark script supplies to the harness."""

    title: ClassVar[str]  # "SGE": the report's first line
    backend: ClassVar[str]  # gridmap's backend: "sge"
    contenders: ClassVar[tuple[str, ...]]  # in the order of the first round
    variants: ClassVar[tuple[str, ...]] = ()  # left out by --skip-variants
    labels: ClassVar[Mapping[str, str]]
    peer: ClassVar[Peer]
    skips: ClassVar[Mapping[str, str]]  # contender family -> help of its --skip-FAMILY
    rounds_word: ClassVar[str]  # "run" or "round": --runs/--rounds, the JSON and the report
    rounds_flags: ClassVar[tuple[str, ...]]
    rounds_help: ClassVar[str]
    default_timeout: ClassVar[float]
    temp_dir_help: ClassVar[str]
    others_text: ClassVar[str]  # "{running} ... {pending} ...", for the progress log
    cluster_type: ClassVar[type[Cluster]]
    unavailable_status: ClassVar[int] = 1  # exit status when the cluster cannot be used
    multinode_kind: ClassVar[str]  # which three-node cluster --multinode uses: slurm, sge

    def __init__(self, script: str, doc: str | None, function: Callable[[int], int]) -> None:
        self.script, self.doc, self.function = Path(script).resolve(), doc or "", function

    def children(self) -> Mapping[str, Child]:
        """The child side of each Python contender family (``--child NAME``)."""
        return {self.peer.family: self.child_peer,
                "gridmap": lambda args: child_gridmap(args, self.function, self.backend,
                                                      self.gridmap_options(args))}

    @abstractmethod
    def child_peer(self, args: argparse.Namespace) -> dict[str, Any]:
        """In the peer's venv: one timed map by the peer (see cluster_child.Child)."""

    def gridmap_options(self, args: argparse.Namespace) -> dict[str, Any]:
        """grid_map's keyword arguments beyond those every gridmap child passes."""
        return {}

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The scheduler's own options."""

    @abstractmethod
    def use_multinode(self, args: argparse.Namespace, setup: Setup) -> None:
        """--multinode: submit to the three-node cluster's partition or queue unless the
        scheduler's own option names one, and take its client environment."""

    def check_arguments(self, parser: argparse.ArgumentParser,
                        args: argparse.Namespace) -> None:
        """Reject impossible values of the scheduler's own options with parser.error."""
        return None  # the scheduler has none to check

    @abstractmethod
    def environment(self, args: argparse.Namespace,
                    log: Callable[[str], None]) -> dict[str, str]:
        """The environment the cluster's tools and every contender get; Unavailable when
        the cluster cannot be used from here."""

    @abstractmethod
    def unreachable(self, error: BaseException) -> str:
        """What to tell the user when the cluster's queue cannot be read."""

    @abstractmethod
    def job_name(self, prefix: str, contender: str) -> str: ...

    @abstractmethod
    def run_raw(self, ctx: Context, contender: str, jobs: int, workdir: Path) -> Outcome:
        """Submit a raw array of ``jobs`` elements and time it until every one has ended."""

    def child_arguments(self, args: argparse.Namespace, contender: str) -> list[str]:
        """Options passed on to the child of a Python contender."""
        return []

    def child_settings(self, contender: str) -> dict[str, str]:
        """Environment variables set for one contender's child only."""
        return {}

    @abstractmethod
    def settings(self, args: argparse.Namespace) -> dict[str, Any]:
        """The scheduler's own settings, for the JSON."""

    @abstractmethod
    def summarize(self, medians: Mapping[str, float | None]) -> dict[str, Any]:
        """The ratios of the medians (and anything else the JSON and report need)."""

    @abstractmethod
    def describe_lines(self, results: Mapping[str, Any], runs: str) -> list[str]:
        """The report's lines about the cluster and the runs (``runs`` says how many)."""

    @abstractmethod
    def ratio_lines(self, results: Mapping[str, Any]) -> list[str]:
        """The report's tables of ratios and its verdicts."""

    @abstractmethod
    def notes(self, results: Mapping[str, Any]) -> list[str]:
        """The report's notes: how to read the figures of this run."""
