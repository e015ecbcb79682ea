"""Registers the Slurm backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, hookimpl


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="slurm",
            factory="gridmap_slurm.backend:SlurmBackend",
            description="Slurm through its command-line tools (sbatch, squeue, sacct, scancel)",
            priority=80,
            is_cluster=True,
            options=("max_running", "python", "gpu_resource", "sbatch_options", "retry_for"),
        )
    ]
