"""Maps that outlive their submitter, on the real Grid Engine cluster: a killed
submitter's map finished by ``gridmap attach``, or given up by its runners; ``gridmap
cancel`` (the cases are in tests/journal/durable_cases.py)."""

from __future__ import annotations

import subprocess

import pytest

from tests.journal.durable_cases import ClusterSuite

pytestmark = pytest.mark.timeout(400)


class TestGridEngine(ClusterSuite):
    backend = "sge"

    @pytest.fixture
    def cluster(self, sge_cluster: str) -> str:
        return sge_cluster

    @staticmethod
    def listed(name: str) -> bool:
        """Whether qstat lists a job of this name, in any state."""
        done = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True,
                              check=True)
        return f"<JB_name>{name}</JB_name>" in done.stdout
