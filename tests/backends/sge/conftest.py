"""Fixtures of the Grid Engine backend's unit tests: the scheduler harness over a
fake DRMAA connection and a fake qstat, and a clock for the scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_sge import scheduler as sge_scheduler

from tests.backends.sge.fakes import Clock, Harness


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sge_scheduler, "time", fake)
    return fake
