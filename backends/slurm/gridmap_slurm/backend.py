"""The Slurm backend: each job runs as a runner that sbatch submits, watched by the
monitor (:class:`~gridmap_core.map.monitor.MonitoredSession`)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from gridmap_core.backend import Availability, JobSpec, SessionOptions
from gridmap_core.map.monitor import MonitoredSession, open_monitored
from gridmap_core.model.resources import ResourceError

from .cluster import Cluster, read_cluster
from .commands import Commands
from .options import SlurmOptions, job_options, partition
from .scheduler import SlurmScheduler

__all__ = ["SlurmBackend", "check_partitions", "controller_problem", "slurm_options"]

_TOOLS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")


def controller_problem() -> str | None:
    """Why Slurm's tools cannot be used from here, in words a user can act on."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH: "
                "install Slurm's client tools (Debian: slurm-client) or load your site's "
                "Slurm module")
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.exists(conf):
        return f"SLURM_CONF={conf} does not exist: point it at slurm.conf, or unset it"
    try:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"scontrol ping failed: {error}"
    if " is UP" not in done.stdout:
        text = (done.stdout + done.stderr).strip().splitlines()
        return ("slurmctld does not answer (scontrol ping: "
                f"{text[0] if text else 'no output'}): start Slurm or check slurm.conf")
    return None


def slurm_options(options: Mapping[str, Any], cluster: Cluster | None = None,
                  extra_key: str = "sbatch_options") -> SlurmOptions:
    """The translation settings from ``[backends.slurm]`` options."""
    return SlurmOptions(
        gpu_resource=str(options.get("gpu_resource") or "gpu"),
        extra=tuple(shlex.split(str(options.get(extra_key) or ""))),
        nodes=cluster.nodes if cluster else None,
        partitions=cluster.partitions if cluster else None,
    )


def check_partitions(spec: JobSpec, cluster: Cluster) -> None:
    """Refuse a partition the cluster does not have, naming the ones it has."""
    queue = partition(spec.resources.queue, cluster.partitions)
    if not queue or cluster.partitions is None:
        return
    unknown = [name for name in queue.split(",") if name not in cluster.partitions]
    if unknown:
        raise ResourceError(
            f"queue={queue!r}: Slurm has no partition {', '.join(map(repr, unknown))}; its "
            f"partitions are: {', '.join(cluster.partitions) or 'none'} (sinfo -s). Set "
            "queue= or DEFAULT_QUEUE."
        )


class SlurmBackend:
    """Slurm through sbatch, squeue, sacct and scancel."""

    def __init__(self) -> None:
        self._cluster: Cluster | None = None

    def availability(self) -> Availability:
        problem = controller_problem()
        if problem:
            return Availability(False, problem)
        return Availability(True, f"slurmctld answers; sbatch at {shutil.which('sbatch')}")

    def cluster(self, commands: Commands | None = None) -> Cluster:
        if self._cluster is None:
            self._cluster = read_cluster(commands or Commands())
        return self._cluster

    def check(self, spec: JobSpec) -> None:
        cluster = self.cluster()
        job_options(spec, SlurmOptions(nodes=cluster.nodes, partitions=cluster.partitions))
        check_partitions(spec, cluster)

    def open(self, options: SessionOptions) -> MonitoredSession:
        # The options are declared in gridmap_slurm.plugin and checked by the core.
        settings = options.options
        commands = Commands(retry_for=float(settings.get("retry_for", 120)))
        cluster = self.cluster(commands)
        scheduler = SlurmScheduler(cluster, slurm_options(settings, cluster),
                                   max_running=settings.get("max_running"),
                                   commands=commands)
        python = settings.get("python")
        return open_monitored(scheduler, options, python=python, name="slurm-monitor")
