"""Registers the local backend through the ``gridmap`` entry-point group."""

from __future__ import annotations

from gridmap_core import BackendSpec, Option, hookimpl
from gridmap_core.model.setting import choice, optional, path

#: The ways multiprocessing can start a worker process.
START_METHODS = ("fork", "forkserver", "spawn")

LOCAL_OPTIONS = (
    Option("start_method", optional(choice(*START_METHODS)), None,
           "how worker processes start (multiprocessing); unset: the platform's default"),
    Option("mode", choice("workers", "runner"), "workers",
           "workers: worker processes fed directly; runner: a runner process per job, "
           "through the monitor protocol, as on a cluster"),
    Option("python", optional(path), None,
           "the Python interpreter of runner processes; unset: this one"),
)


@hookimpl
def gridmap_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="local",
            factory="gridmap_local.backend:LocalBackend",
            description="worker processes on this machine (max_processes of them)",
            priority=0,
            is_cluster=False,
            options=LOCAL_OPTIONS,
        )
    ]
