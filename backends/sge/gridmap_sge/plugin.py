"""Registers the Grid Engine backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, hookimpl


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="sge",
            factory="gridmap_sge.backend:SgeBackend",
            description="Grid Engine (SGE, Son of Grid Engine, UGE) through DRMAA",
            priority=100,
            is_cluster=True,
            options=("max_running", "python", "gpu_resource", "native_specification"),
        )
    ]
