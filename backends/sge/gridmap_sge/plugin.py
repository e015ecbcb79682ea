"""Registers the Grid Engine backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, Option, Setting, hookimpl
from gridmap_core.model.setting import boolean, count, optional, path, text

#: The original GridMap's one Grid Engine setting.
SGE_SETTINGS = (
    Setting("USE_MEM_FREE", boolean, False, "does the cluster accept mem_free requests?"),
)

SGE_OPTIONS = (
    Option("max_running", optional(count), None,
           "the most elements of one array that run at once (qsub -tc); unset: no limit"),
    Option("python", optional(path), None,
           "the Python interpreter of the compute nodes; unset: the submitting one"),
    Option("gpu_resource", text, "gpu", "the consumable complex that counts GPUs"),
    Option("native_specification", text, "", "raw qsub options added to every job"),
)


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="sge",
            factory="gridmap_sge.backend:SgeBackend",
            description="Grid Engine (SGE, Son of Grid Engine, UGE) through DRMAA",
            priority=100,
            is_cluster=True,
            options=SGE_OPTIONS,
            settings=SGE_SETTINGS,
        )
    ]
