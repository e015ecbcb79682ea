"""A cancel that Slurm refused (its controller away for longer than the retries) is
asked again by the next cancel of the same jobs, not counted done."""

from __future__ import annotations

import pytest
from gridmap_slurm.commands import SlurmError

from tests.backends.slurm.fakes import Harness

pytestmark = pytest.mark.timeout(30)


def test_a_refused_scancel_is_made_again(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.slurm.replies["scancel"] = [(1, "", "scancel: error: Invalid user for SlurmUser")]
    with pytest.raises(SlurmError):
        harness.scheduler.cancel(ids[1:])
    harness.scheduler.cancel(ids[1:])
    assert harness.slurm.of("scancel") == [["scancel", "878_2", "878_3"]] * 2
    harness.scheduler.cancel(ids[1:])  # this time it was done: not asked again
    assert len(harness.slurm.of("scancel")) == 2
