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
    cases.killed_and_left(_map(tmp_path, GRIDMAP_MONITOR_GRACE="10"), _nothing_listed,
                          seconds=0.5, grace=10, runners_outlive=False)


def test_gridmap_cancel_from_another_shell_ends_the_map(tmp_path: Path) -> None:
    cases.cancelled_from_another_shell(_map(tmp_path), _nothing_listed, seconds=0.5)


def test_attach_refuses_while_the_submitter_lives_and_force_stops_it(tmp_path: Path) -> None:
    map_ = _map(tmp_path)
    map_.start(0.3)
    map_.wait_for("3 results", lambda: map_.has_results(3))
    refused = map_.gridmap("attach", map_.name, "--temp-dir", str(map_.temp_dir))
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "--force" in said and "two monitors" in said, said
    assert map_.process is not None and map_.process.poll() is None  # left alone
    forced = map_.gridmap("attach", map_.name, "--force", "--temp-dir", str(map_.temp_dir))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert map_.process.wait(30) != 0  # stopped, not finished by itself
    assert map_.results() == {x: x * x for x in range(map_.count)}
