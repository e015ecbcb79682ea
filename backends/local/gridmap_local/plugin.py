"""Registers the local backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, hookimpl


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="local",
            factory="gridmap_local.backend:LocalBackend",
            description="worker processes on this machine (max_processes of them)",
            priority=0,
            is_cluster=False,
            options=("start_method", "mode", "python"),
        )
    ]
