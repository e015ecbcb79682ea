"""Which of the map's scheduler jobs is the runner's own, so that the runner that gives
the map up leaves it out of its one cancel (it ends by itself right after)."""

from __future__ import annotations

from gridmap_core.node.giving_up import own_job_ids


def test_a_slurm_array_element_knows_itself_by_array_and_index_and_by_its_own_id() -> None:
    env = {"SLURM_ARRAY_JOB_ID": "500", "SLURM_ARRAY_TASK_ID": "2", "SLURM_JOB_ID": "502"}
    assert own_job_ids(env) == {"500_2", "502"}


def test_a_plain_slurm_job_knows_itself_by_its_id() -> None:
    assert own_job_ids({"SLURM_JOB_ID": "77"}) == {"77"}


def test_a_grid_engine_array_task_knows_itself_as_job_dot_task() -> None:
    assert own_job_ids({"JOB_ID": "31", "SGE_TASK_ID": "4"}) == {"31.4"}


def test_a_grid_engine_job_that_is_no_array_knows_itself_by_its_id() -> None:
    # Grid Engine sets SGE_TASK_ID to "undefined" outside arrays.
    assert own_job_ids({"JOB_ID": "31", "SGE_TASK_ID": "undefined"}) == {"31"}


def test_a_runner_no_scheduler_started_cannot_tell() -> None:
    assert own_job_ids({}) == set()
