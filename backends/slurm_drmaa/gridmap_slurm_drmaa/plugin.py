"""Registers the slurm-drmaa backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, hookimpl


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
            options=("python", "gpu_resource", "native_specification", "retry_for"),
        )
    ]
