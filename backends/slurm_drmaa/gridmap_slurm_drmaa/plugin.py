"""Registers the slurm-drmaa backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_slurm.plugin import GPU_RESOURCE, PYTHON, RETRY_FOR

from gridmap_core import BackendSpec, Option, hookimpl
from gridmap_core.model.setting import text

SLURM_DRMAA_OPTIONS = (
    PYTHON,
    GPU_RESOURCE,
    Option("native_specification", text, "",
           "raw Slurm options added to every job's native specification"),
    RETRY_FOR,
)


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="slurm_drmaa",
            factory="gridmap_slurm_drmaa.backend:SlurmDrmaaBackend",
            description="Slurm through a DRMAA library (slurm-drmaa)",
            # Below the sbatch backend (80): with both usable, the command-line one,
            # tested on every run against a real cluster, is the better default.
            priority=70,
            is_cluster=True,
            options=SLURM_DRMAA_OPTIONS,
        )
    ]
