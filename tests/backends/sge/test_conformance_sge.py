"""The Grid Engine backend passes the shared conformance suite on the real cluster."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from gridmap_core.testing import BackendConformance


@pytest.mark.usefixtures("sge_cluster")
class TestSgeConformance(BackendConformance):
    backend = "sge"
    settings: ClassVar[dict[str, Any]] = {"DEFAULT_TEMP_DIR": tempfile.gettempdir()}

    def assert_ran_on_backend(self, where: Mapping[str, Any]) -> None:
        super().assert_ran_on_backend(where)
        # Grid Engine sets these for each job it starts; a local run has neither.
        environment = where["environment"]
        assert environment.get("JOB_ID", "").isdigit(), environment.get("JOB_ID")
        assert environment.get("QUEUE") == "all.q"
        assert "gridmap_core/node/runner.py" in where["argv"][0]

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        environment = where["environment"]
        task = environment["SGE_TASK_ID"]  # "undefined" for a job that is no array
        expected = environment["JOB_ID"] + ("" if task == "undefined" else f".{task}")
        assert job_id == expected

    def assert_resources_honoured(self, where: Mapping[str, Any],
                                  request: Mapping[str, Any]) -> None:
        environment = where["environment"]
        assert environment["NSLOTS"] == str(request["num_slots"])
        assert environment["PE"] == "smp"
        # h_vmem is per slot; Grid Engine enforces it as the job's ulimit -v.
        assert where["memory_limit"] == request["num_slots"] * 600 * 2**20
