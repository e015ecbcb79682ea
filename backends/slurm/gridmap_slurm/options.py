"""Job fields into Slurm job options (``--name=value``), shared by both Slurm backends.

The ``slurm`` backend passes these to ``sbatch``; ``slurm_drmaa`` joins them into a
DRMAA native specification. Only options that both read the same way are emitted:
slurm-drmaa reads ``--mem-per-cpu`` as a number of MB and ``--time`` as
``hours:minutes[:seconds]``, which sbatch reads identically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import hosts_to_avoid
from gridmap_core.model.resources import ResourceError, Resources

__all__ = ["GRID_ENGINE_DEFAULT_QUEUE", "SlurmOptions", "allowed_nodes", "job_name",
           "job_options", "memory_mb", "partition", "time_limit"]

# Grid Engine-only fields of the original GridMap with no Slurm meaning. Honouring
# them silently would be wrong, so they are refused with what to write instead.
_GRID_ENGINE_ONLY = {
    "os_distribution": "a Grid Engine resource",
    "os_minor": "a Grid Engine resource",
}
_NAME_FORBIDDEN = re.compile(r"[^\w.+-]")
#: Grid Engine's default queue, and so the original GridMap's DEFAULT_QUEUE. A Slurm
#: cluster without a partition of that name reads it as "the default partition".
GRID_ENGINE_DEFAULT_QUEUE = "all.q"


@dataclass(frozen=True)
class SlurmOptions:
    """Site settings that shape the translation."""

    gpu_resource: str = "gpu"  # the generic resource (GRES) a site counts GPUs with
    extra: tuple[str, ...] = ()  # raw options appended as they are (site configuration)
    nodes: tuple[str, ...] | None = None  # every node, for a white_list of several hosts
    partitions: tuple[str, ...] | None = None  # every partition, where known


def partition(queue: str | None, partitions: Sequence[str] | None) -> str | None:
    """The partition to ask for: None for the default one."""
    if queue == GRID_ENGINE_DEFAULT_QUEUE and queue not in (partitions or ()):
        return None
    return queue


def memory_mb(size: int) -> int:
    """Bytes as whole MB (MiB, Slurm's unit), rounded up so a request is never cut."""
    return max(1, math.ceil(size / 2**20))


def time_limit(seconds: int) -> str:
    """A runtime limit as ``H:MM:00``: Slurm counts whole minutes (rounded up here),
    and ``H:MM:SS`` means the same to sbatch and to slurm-drmaa (``MM:SS`` does not)."""
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def _white_list(hosts: Sequence[str], nodes: Sequence[str] | None) -> list[str]:
    unknown = sorted(set(hosts) - set(nodes)) if nodes is not None else []
    if unknown:
        raise ResourceError(
            f"white_list names hosts Slurm does not know: {', '.join(unknown)}; its nodes "
            f"are: {', '.join(nodes or ()) or 'none'} (sinfo -N)."
        )
    if len(hosts) == 1:
        return [f"--nodelist={hosts[0]}"]
    # --nodelist=a,b asks for all of them at once; "any one of these hosts" is said by
    # excluding every other node.
    if nodes is None:
        raise ResourceError(
            f"white_list={list(hosts)!r}: Slurm can only be asked for any one of several "
            "hosts by excluding all other nodes, and the node list is unknown (sinfo failed)."
        )
    others = [node for node in nodes if node not in hosts]
    return [f"--exclude={','.join(others)}"] if others else []


# Options by which a job names its nodes itself: a resubmission's nodes to avoid are
# then left to them.
_NODE_OPTIONS = ("--nodelist", "-w", "--exclude", "-x")


def _names_nodes(tokens: Sequence[str]) -> bool:
    return any(token == name or token.startswith(f"{name}=")
               for token in tokens for name in _NODE_OPTIONS)


def allowed_nodes(resources: Resources, options: SlurmOptions,
                  avoid: Sequence[str] = ()) -> tuple[str, ...] | None:
    """The nodes a job may run on: its white_list, or every node where it has none,
    less those in ``avoid`` (see :func:`~gridmap_core.backend.scheduler.hosts_to_avoid`:
    never all of them); None when that is not known (no node list, or the job names
    its nodes with raw options)."""
    raw = [word for entry in resources.extra for word in entry.split()]
    if _names_nodes(raw) or _names_nodes(options.extra):
        return None
    hosts = resources.white_list or options.nodes
    if hosts is None:
        return None
    excluded = hosts_to_avoid(hosts, avoid)
    return tuple(host for host in hosts if host not in excluded)


def _avoided(resources: Resources, options: SlurmOptions, avoid: Sequence[str]) -> list[str]:
    """The options that keep a job (without a white_list) off the nodes in ``avoid``."""
    if not avoid or options.nodes is None:
        return []
    allowed = allowed_nodes(resources, options, avoid)
    if allowed is None:
        return []
    excluded = [node for node in options.nodes if node not in allowed]
    return [f"--exclude={','.join(excluded)}"] if excluded else []


def _raw(entry: str) -> list[str]:
    if not entry.lstrip().startswith("-"):
        raise ResourceError(
            f"resources=[{entry!r}]: Slurm has no Grid Engine style resource requests; "
            "give sbatch options instead, e.g. '--constraint=avx2' or '--gres=tmp:10G'."
        )
    return entry.split()


def job_options(spec: JobSpec, options: SlurmOptions = SlurmOptions(),
                avoid: Sequence[str] = ()) -> list[str]:
    """The Slurm options for ``spec``'s jobs, each one ``--name=value`` token.

    ``avoid`` names hosts whose nodes failed (a resubmission's
    :attr:`~gridmap_core.backend.scheduler.Launch.avoid`): they are taken off the
    white_list, or excluded, unless that would leave no node at all, or the job names
    its nodes with raw options of its own.

    Memory is per CPU, as Grid Engine's h_vmem is per slot: ``--mem-per-cpu`` from
    h_vmem (the limit), else from mem_free (the request); Slurm allocates and enforces
    it times the CPUs. ``num_slots`` CPUs on one node (``--cpus-per-task``) is what a
    Grid Engine shared-memory parallel environment gives; ``par_env`` has no Slurm
    counterpart and is not needed.
    """
    for field, what in _GRID_ENGINE_ONLY.items():
        if spec.extra.get(field):
            raise ResourceError(
                f"{field}={spec.extra[field]!r} is {what} with no Slurm counterpart; ask "
                "for the nodes you need with resources=['--constraint=FEATURE'] instead."
            )
    resources = spec.resources
    parts: list[str] = []
    memory = resources.h_vmem or resources.mem_free
    if memory:
        parts.append(f"--mem-per-cpu={memory_mb(memory)}")
    if resources.num_slots > 1:
        parts.append(f"--cpus-per-task={resources.num_slots}")
    if resources.h_rt is not None:
        parts.append(f"--time={time_limit(resources.h_rt)}")
    queue = partition(resources.queue, options.partitions)
    if queue:
        parts.append(f"--partition={queue}")
    if resources.white_list:
        hosts = resources.white_list
        if avoid:
            hosts = allowed_nodes(resources, options, avoid) or hosts
        parts += _white_list(hosts, options.nodes)
    else:
        parts += _avoided(resources, options, avoid)
    if resources.gpu:
        parts.append(f"--gres={options.gpu_resource}:{resources.gpu}")
    if spec.extra.get("project"):
        parts.append(f"--account={spec.extra['project']}")
    for entry in resources.extra:
        parts += _raw(entry)
    parts += options.extra
    for part in parts:
        if any(c.isspace() for c in part):
            raise ResourceError(f"{part!r}: Slurm options may not contain spaces.")
    return parts


def job_name(name: str) -> str:
    """``name`` with only characters every Slurm tool shows unquoted."""
    return _NAME_FORBIDDEN.sub("_", name) or "gridmap_job"
