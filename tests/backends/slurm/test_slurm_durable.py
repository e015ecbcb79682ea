"""Maps that outlive their submitter, on the real Slurm cluster: a killed submitter's
map finished by ``gridmap attach``, or given up by its runners; ``gridmap cancel`` (the
cases are in tests/journal/durable_cases.py)."""

from __future__ import annotations

import subprocess

import pytest

from tests.journal.durable_cases import ClusterSuite

pytestmark = pytest.mark.timeout(400)


class TestSlurm(ClusterSuite):
    backend = "slurm"

    @pytest.fixture
    def cluster(self, slurm_cluster: str) -> str:
        return slurm_cluster

    @staticmethod
    def listed(name: str) -> bool:
        """Whether squeue lists a job of this name, in any state but ended."""
        done = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"],
                              capture_output=True, text=True, check=True)
        return bool(done.stdout.strip())
