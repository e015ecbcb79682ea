"""Registers the Slurm backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, Option, hookimpl
from gridmap_core.model.setting import count, duration, optional, path, text

#: Options the sbatch backend shares with the slurm-drmaa one.
PYTHON = Option("python", optional(path), None,
                "the Python interpreter of the compute nodes; unset: the submitting one")
GPU_RESOURCE = Option("gpu_resource", text, "gpu", "the generic resource (GRES) that counts GPUs")
RETRY_FOR = Option("retry_for", duration, 120,
                   "seconds to keep retrying while slurmctld does not answer")

SLURM_OPTIONS = (
    Option("max_running", optional(count), None,
           "the most elements of one array that run at once (--array=…%N); unset: no limit"),
    PYTHON,
    GPU_RESOURCE,
    Option("sbatch_options", text, "", "raw sbatch options added to every job"),
    RETRY_FOR,
)


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="slurm",
            factory="gridmap_slurm.backend:SlurmBackend",
            description="Slurm through its command-line tools (sbatch, squeue, sacct, scancel)",
            priority=80,
            is_cluster=True,
            options=SLURM_OPTIONS,
        )
    ]
