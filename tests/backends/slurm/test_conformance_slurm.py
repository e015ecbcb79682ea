"""The Slurm (sbatch) backend passes the shared conformance suite on the real cluster."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from gridmap_core.testing import BackendConformance


@pytest.mark.usefixtures("slurm_cluster")
class TestSlurmConformance(BackendConformance):
    backend = "slurm"
    settings: ClassVar[dict[str, Any]] = {"DEFAULT_TEMP_DIR": tempfile.gettempdir()}

    def assert_ran_on_backend(self, where: Mapping[str, Any]) -> None:
        super().assert_ran_on_backend(where)
        # Slurm sets these for each array element it starts; a local run has none.
        environment = where["environment"]
        assert environment.get("SLURM_ARRAY_JOB_ID", "").isdigit(), environment.get(
            "SLURM_ARRAY_JOB_ID")
        assert environment.get("SLURM_JOB_PARTITION") == "debug"
        assert "gridmap_core/node/runner.py" in where["argv"][0]

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        environment = where["environment"]
        assert job_id == (f"{environment['SLURM_ARRAY_JOB_ID']}_"
                          f"{environment['SLURM_ARRAY_TASK_ID']}")

    def assert_resources_honoured(self, where: Mapping[str, Any],
                                  request: Mapping[str, Any]) -> None:
        environment = where["environment"]
        assert environment["SLURM_CPUS_PER_TASK"] == str(request["num_slots"])
        # h_vmem is per slot, as --mem-per-cpu is per CPU.
        assert environment["SLURM_MEM_PER_CPU"] == "600"
        assert environment["SLURM_CPUS_ON_NODE"] == str(request["num_slots"])
