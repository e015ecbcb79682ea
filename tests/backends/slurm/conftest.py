"""Fixtures of the Slurm backend's unit tests: an empty PATH of their own, the
scheduler harness over fake Slurm commands, and a clock for the job tracking."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from gridmap_slurm import tracking as slurm_tracking

from tests.backends.slurm.fakes import Clock, Harness


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH, where the scheduler looks for sbatch: empty unless a test puts tools in it."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


@pytest.fixture
def make_harness(tmp_path: Path, bin_dir: Path) -> Callable[..., Harness]:
    return functools.partial(Harness, tmp_path)


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(slurm_tracking, "time", fake)
    return fake
