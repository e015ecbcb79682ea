"""The local backend passes the shared conformance suite, in both of its modes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from gridmap_core.testing import BackendConformance


class TestLocalWorkers(BackendConformance):
    backend = "local"

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        assert job_id == -1  # no scheduler, no id: as in the original GridMap


class TestLocalRunners(BackendConformance):
    backend = "local"
    backend_options: ClassVar[dict[str, Any]] = {"mode": "runner"}

    def assert_ran_on_backend(self, where: dict[str, Any]) -> None:
        super().assert_ran_on_backend(where)
        assert where["argv"][0].endswith("gridmap_core/runner.py")  # a runner, not a worker

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        assert isinstance(job_id, str) and job_id.startswith("local."), job_id
