"""Maps that outlive their submitter, on the local backend in runner mode: each job a
runner process of its own, through the monitor, as on a cluster."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.journal import durable_cases as cases
from tests.support.durable import Submitter, environment

pytestmark = pytest.mark.timeout(300)
RUNNER_MODE = '[backends.local]\nmode = "runner"\n'


def _map(tmp_path: Path, **settings: str) -> Submitter:
    env = environment(tmp_path, settings, config=RUNNER_MODE)
    return Submitter(tmp_path, f"durable-{uuid.uuid4().hex[:8]}", "local", cases.COUNT, env)


def _nothing_listed(name: str) -> bool:
    return False  # the local backend's queue lives in the submitting process


def test_a_killed_submitters_map_is_finished_by_attach(tmp_path: Path) -> None:
    cases.killed_then_attached(_map(tmp_path), _nothing_listed, seconds=0.2)


def test_a_killed_submitter_leaves_no_runner_behind(tmp_path: Path) -> None:
    cases.killed_and_left(_map(tmp_path, MONITOR_GRACE="10"), _nothing_listed, seconds=0.5,
                          grace=10)


def test_gridmap_cancel_from_another_shell_ends_the_map(tmp_path: Path) -> None:
    cases.cancelled_from_another_shell(_map(tmp_path), _nothing_listed, seconds=0.5)
