"""What the submitting process needs to know about a Slurm cluster, asked once per
session: array size limit, where finished jobs are recorded, its nodes and partitions."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .commands import Commands, SlurmError

__all__ = ["Cluster", "read_cluster"]


@dataclass(frozen=True)
class Cluster:
    max_array_size: int = 1001  # array indices must stay below this
    accounting: bool = False  # slurmdbd runs: sacct knows every finished job
    jobcomp_log: str | None = None  # jobcomp/filetxt's file, when this process can read it
    nodes: tuple[str, ...] | None = None
    partitions: tuple[str, ...] | None = None


def _config(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def read_cluster(commands: Commands) -> Cluster:
    """Ask ``scontrol show config`` and ``sinfo`` (three quick calls)."""
    config = _config(commands.run(["scontrol", "show", "config"]).stdout)
    try:
        size = int(config.get("MaxArraySize", "1001"))
    except ValueError:
        size = 1001
    log = None
    if config.get("JobCompType") == "jobcomp/filetxt":
        path = config.get("JobCompLoc", "")
        log = path if path and os.access(path, os.R_OK) else None
    nodes: tuple[str, ...] | None
    partitions: tuple[str, ...] | None
    try:
        listing = commands.run(["sinfo", "-h", "-N", "-o", "%N"]).stdout.split()
        nodes = tuple(dict.fromkeys(listing))
        listing = commands.run(["sinfo", "-h", "-o", "%R"]).stdout.split()
        partitions = tuple(dict.fromkeys(listing))
    except SlurmError:
        nodes = partitions = None
    return Cluster(
        max_array_size=max(size, 2),
        accounting=config.get("AccountingStorageType") == "accounting_storage/slurmdbd",
        jobcomp_log=log,
        nodes=nodes,
        partitions=partitions,
    )
