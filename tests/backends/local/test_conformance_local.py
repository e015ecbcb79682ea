"""The local backend passes the shared conformance suite, in both of its modes, and so
does a third-party backend that runs jobs on this machine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from gridmap_core import BackendSpec, get_plugin_manager, hookimpl
from gridmap_core.testing import BackendConformance


class TestLocalWorkers(BackendConformance):
    backend = "local"

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        assert job_id == -1  # no scheduler, no id: as in the original GridMap


class TestLocalRunners(BackendConformance):
    backend = "local"
    backend_options: Mapping[str, Any] = {"mode": "runner"}

    def assert_ran_on_backend(self, where: Mapping[str, Any]) -> None:
        super().assert_ran_on_backend(where)
        assert where["argv"][0].endswith("gridmap_core/node/runner.py")  # a runner, not a worker

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        assert isinstance(job_id, str) and job_id.startswith("local."), job_id


class OnHost:
    """A plugin of another name than ``local`` whose backend runs jobs on this machine
    (the local backend's implementation, registered as a third party would)."""

    @hookimpl
    def gridmap_backends(self) -> list[BackendSpec]:
        return [BackendSpec("onhost", "gridmap_local.backend:LocalBackend",
                            "worker processes on this machine, as a third party",
                            priority=-5, is_cluster=False, options=("mode",))]


class TestThirdPartyBackendOnThisMachine(BackendConformance):
    """``is_cluster=False`` in its spec: tested as a backend without a scheduler, not
    refused as a cluster backend that fell back to local."""

    backend = "onhost"

    @pytest.fixture(autouse=True)
    def registered(self) -> Iterator[None]:
        manager = get_plugin_manager()
        manager.register(OnHost(), name="onhost-plugin")
        try:
            yield
        finally:
            manager.unregister(name="onhost-plugin")

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        assert job_id == -1
