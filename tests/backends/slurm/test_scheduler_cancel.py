"""Cancelling and closing with fake Slurm commands: scancel requests per array."""

from __future__ import annotations

import pytest

from gridmap_core.backend.scheduler import JobStatus, Status
from tests.backends.slurm.fakes import Harness

pytestmark = pytest.mark.timeout(30)


def test_cancelling_a_whole_array_is_one_request(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.scheduler.cancel(ids)
    assert harness.slurm.of("scancel") == [["scancel", "878"]]
    harness.scheduler.cancel(ids)  # already cancelled
    assert len(harness.slurm.of("scancel")) == 1


def test_cancelling_part_of_an_array_names_the_elements(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.scheduler.cancel([ids[0], ids[2]])
    assert harness.slurm.of("scancel") == [["scancel", "878_1", "878_3"]]
    harness.scheduler.cancel(ids)
    assert harness.slurm.of("scancel")[-1] == ["scancel", "878_2"]


def test_cancelling_several_arrays_is_one_request(harness: Harness) -> None:
    first = harness.launch([0, 1])
    second = harness.launch([2, 3, 4])
    harness.scheduler.cancel([*first, second[1], "12345_1"])
    assert harness.slurm.of("scancel") == [["scancel", "878", "879_2"]]


def test_cancelling_the_rest_of_an_array_is_one_request(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.slurm.squeue_lines = ["878_1|COMPLETED|None|0|", "878_2|RUNNING|None|0|",
                                  "878_3|PENDING|Priority|0|"]
    harness.poll(ids)
    harness.scheduler.cancel(ids)
    assert harness.slurm.of("scancel") == [["scancel", "878"]]


def test_cancel_of_unknown_ids_asks_nothing(harness: Harness) -> None:
    harness.scheduler.cancel(["5_1", "6"])
    assert harness.slurm.calls == []


def test_cancelled_jobs_are_not_reported(harness: Harness) -> None:
    ids = harness.launch([0, 1])
    harness.scheduler.cancel([ids[0]])
    harness.slurm.squeue_lines = ["878_1|CANCELLED|None|15|", "878_2|RUNNING|None|0|"]
    assert harness.poll(ids) == {"878_2": JobStatus(Status.RUNNING)}
    harness.slurm.squeue_lines = ["878_1|CANCELLED|None|15|", "878_2|COMPLETED|None|0|"]
    assert set(harness.poll(ids)) == {"878_2"}
    calls = len(harness.slurm.calls)
    assert harness.poll(ids) == {}
    assert len(harness.slurm.calls) == calls


def test_close_forgets_every_job(harness: Harness) -> None:
    ids = harness.launch([0, 1])
    harness.scheduler.close()
    assert harness.poll(ids) == {}
    harness.scheduler.cancel(ids)
    assert harness.slurm.calls == [harness.slurm.calls[0]]  # the sbatch only
