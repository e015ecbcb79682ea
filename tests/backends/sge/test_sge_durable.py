"""Maps that outlive their submitter, on the real Grid Engine cluster: a killed submitter's
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
    return Submitter(tmp_path, f"durable-{uuid.uuid4().hex[:8]}", "sge", cases.COUNT, env)


def listed(name: str) -> bool:
    """Whether qstat lists a job of this name, in any state."""
    done = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True,
                          check=True)
    return f"<JB_name>{name}</JB_name>" in done.stdout


def test_a_killed_submitters_map_is_finished_by_attach(sge_cluster: str,
                                                       tmp_path: Path) -> None:
    cases.killed_then_attached(_map(tmp_path), listed, seconds=1)


def test_a_killed_submitters_map_is_given_up_within_the_grace(sge_cluster: str,
                                                              tmp_path: Path) -> None:
    cases.killed_and_left(_map(tmp_path, GRIDMAP_MONITOR_GRACE="15"), listed, seconds=1,
                          grace=15)


def test_gridmap_cancel_from_another_shell_ends_the_map(sge_cluster: str,
                                                        tmp_path: Path) -> None:
    cases.cancelled_from_another_shell(_map(tmp_path), listed, seconds=1)
