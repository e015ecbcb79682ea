"""Choosing a backend: a backend named by argument, environment or config file that
cannot run here is an error before anything is submitted; only a map that names no
backend (and does not require a cluster) falls back to the local one."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from gridmap_core import GridMapExecutor, grid_map
from gridmap_core.plugins.selection import BackendUnavailableError


def touch(path: str) -> str:
    Path(path).write_text("ran")
    return path


def _no_job_ran(marker: Path) -> None:
    assert not marker.exists(), "a job ran although the backend was refused"


@pytest.mark.parametrize("where", ["argument", "environment", "config file"])
def test_a_named_cluster_backend_that_cannot_run_is_an_error(
        where: str, monkeypatch: pytest.MonkeyPatch, in_tmp: Path) -> None:
    marker = in_tmp / "ran"
    arguments = {}
    if where == "argument":
        arguments["backend"] = "sge"
    elif where == "environment":
        monkeypatch.setenv("GRIDMAP_BACKEND", "sge")
    else:
        (in_tmp / "gridmap.toml").write_text('backend = "sge"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no falling back with a mere warning
        with pytest.raises(BackendUnavailableError) as info:
            grid_map(touch, [str(marker)], **arguments)  # type: ignore[arg-type]
    message = str(info.value)
    assert "backend 'sge'" in message and "SGE_ROOT is not set" in message  # why
    named_by = {"argument": "argument backend",
                "environment": "environment variable GRIDMAP_BACKEND",
                "config file": str(in_tmp / "gridmap.toml")}[where]
    assert named_by in message  # where it was named
    assert "gridmap backends" in message  # what to do
    _no_job_ran(marker)


def test_the_executor_refuses_it_before_anything_is_submitted() -> None:
    with pytest.raises(BackendUnavailableError, match="slurm"):
        GridMapExecutor(backend="slurm")


def test_without_a_backend_named_a_map_runs_locally(in_tmp: Path) -> None:
    with GridMapExecutor() as executor:
        assert executor.backend_name == "local"
        assert list(executor.map(abs, [-1, -2])) == [1, 2]
