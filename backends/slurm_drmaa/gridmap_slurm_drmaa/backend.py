"""The slurm-drmaa backend: each job runs as a runner that Slurm starts through a DRMAA
library, watched by the monitor (:class:`~gridmap_core.map.monitor.MonitoredSession`)."""

from __future__ import annotations

import os
import re

from gridmap_slurm.backend import SlurmBackend, check_partitions, controller_problem, slurm_options
from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import Commands
from gridmap_slurm.options import SlurmOptions

from gridmap_core.backend import Availability, JobSpec, SessionOptions
from gridmap_core.backend.drmaa import DrmaaConnection, library_problem
from gridmap_core.map.monitor import MonitoredSession, open_monitored

from .native import check_job, check_options, native_specification
from .scheduler import SlurmDrmaaScheduler

__all__ = ["SlurmDrmaaBackend", "slurm_library_problem"]

INSTALL = ("install slurm-drmaa (build a release from "
           "https://github.com/natefoo/slurm-drmaa/releases: ./configure && make && make "
           "install), then set DRMAA_LIBRARY_PATH=/path/to/libdrmaa.so (by default "
           "/usr/local/lib/libdrmaa.so) before starting Python")
# Where Grid Engine installs its libdrmaa: refused by name, without loading it (loading
# it may need GLIBC_TUNABLES, and would bind this process's drmaa package to it).
_GRID_ENGINE_PATH = re.compile(r"grid.?engine|(^|/)(sge|uge|ogs|soge)([-_.]?\d[^/]*)?/",
                               re.IGNORECASE)


def slurm_library_problem() -> str | None:
    """Why the DRMAA library at ``DRMAA_LIBRARY_PATH`` cannot be used to reach Slurm, in
    words a user can act on; None when it is slurm-drmaa and loads."""
    path = os.environ.get("DRMAA_LIBRARY_PATH")
    if not path:
        return f"DRMAA_LIBRARY_PATH is not set: {INSTALL}"
    if not os.path.exists(path):
        return f"DRMAA_LIBRARY_PATH={path} does not exist: {INSTALL}"
    if _GRID_ENGINE_PATH.search(os.path.realpath(path)):
        return (f"DRMAA_LIBRARY_PATH={path} is Grid Engine's libdrmaa, which cannot reach "
                f"Slurm (backend 'sge' uses it): {INSTALL}")
    problem = library_problem()  # loads the library: the drmaa package binds to it
    if problem:
        return problem
    import drmaa

    loaded = str(drmaa.wrappers.libpath)
    if os.path.realpath(loaded) != os.path.realpath(path):
        return (f"this process already loaded the DRMAA library {loaded}, and the drmaa "
                f"package cannot load a second one; start a new Python with "
                f"DRMAA_LIBRARY_PATH={path}")
    try:
        system = str(drmaa.Session.drmsInfo)
    except Exception as error:  # whatever the library raises, availability never does
        return f"the DRMAA library {path} does not say which scheduler it serves: {error}"
    if not system.upper().startswith("SLURM"):
        return (f"the DRMAA library {path} serves {system or 'an unknown scheduler'!r}, not "
                f"Slurm: {INSTALL}")
    return None


class SlurmDrmaaBackend:
    """Slurm through slurm-drmaa: submitting and cancelling through DRMAA, watching with
    squeue (and sacct or the completion log), as the sbatch backend does."""

    def __init__(self) -> None:
        # The sbatch backend reads the cluster's configuration (nodes, partitions,
        # where ended jobs are recorded) once: this backend needs the same.
        self._sbatch = SlurmBackend()

    def cluster(self, commands: Commands | None = None) -> Cluster:
        """The cluster's configuration, read once (with ``commands`` if given)."""
        return self._sbatch.cluster(commands)

    def availability(self) -> Availability:
        # The library first: without it this backend is of no use, whatever Slurm says.
        problem = slurm_library_problem() or controller_problem()
        if problem:
            return Availability(False, problem)
        try:
            import drmaa

            implementation = f" ({drmaa.Session.drmaaImplementation})"
        except Exception:  # a detail of the description: availability never raises
            implementation = ""
        return Availability(True, f"slurm-drmaa{implementation} at "
                            f"{os.environ['DRMAA_LIBRARY_PATH']}; slurmctld answers")

    def check(self, spec: JobSpec) -> None:
        check_job(spec)
        cluster = self.cluster()
        native_specification(spec, SlurmOptions(nodes=cluster.nodes,
                                                partitions=cluster.partitions))
        check_partitions(spec, cluster)

    def open(self, options: SessionOptions) -> MonitoredSession:
        # The options are declared in gridmap_slurm_drmaa.plugin and checked by the core.
        settings = options.options
        commands = Commands(retry_for=float(settings.get("retry_for", 120)))
        cluster = self.cluster(commands)
        slurm = slurm_options(settings, cluster, extra_key="native_specification")
        # A site option slurm-drmaa cannot read fails here, before the first submission.
        check_options(slurm.extra, "the backend option native_specification")
        python = settings.get("python")
        connection = DrmaaConnection.acquire()
        scheduler = SlurmDrmaaScheduler(connection, cluster, slurm, commands=commands)
        return open_monitored(scheduler, options, python=python, name="slurm-drmaa-monitor")

