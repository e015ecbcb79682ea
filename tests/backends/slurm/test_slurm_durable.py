"""Maps that outlive their submitter, on the real Slurm cluster: a killed submitter's
map finished by ``gridmap attach``, or given up by its runners; ``gridmap cancel``."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.journal import durable_cases as cases
from tests.support.durable import Submitter, environment

pytestmark = pytest.mark.timeout(400)


def _map(tmp_path: Path, **settings: str) -> Submitter:
    env = environment(tmp_path, settings)
    return Submitter(tmp_path, f"durable-{uuid.uuid4().hex[:8]}", "slurm", cases.COUNT, env)


def listed(name: str) -> bool:
    """Whether squeue lists a job of this name, in any state but ended."""
    done = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"], capture_output=True,
                          text=True, check=True)
    return bool(done.stdout.strip())


def test_a_killed_submitters_map_is_finished_by_attach(slurm_cluster: str,
                                                       tmp_path: Path) -> None:
    cases.killed_then_attached(_map(tmp_path), listed, seconds=1)


def test_a_killed_submitters_map_is_given_up_within_the_grace(slurm_cluster: str,
                                                              tmp_path: Path) -> None:
    cases.killed_and_left(_map(tmp_path, GRIDMAP_MONITOR_GRACE="15"), listed, seconds=1,
                          grace=15)


def test_gridmap_cancel_from_another_shell_ends_the_map(slurm_cluster: str,
                                                        tmp_path: Path) -> None:
    cases.cancelled_from_another_shell(_map(tmp_path), listed, seconds=1)
