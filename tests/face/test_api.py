"""The original GridMap API, run through the local backend."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gridmap_core import (
    Job,
    JobException,
    JobState,
    SerializationError,
    UnknownPluginError,
    grid_map,
    process_jobs,
)
from gridmap_core.model.job import JOB_NOT_FINISHED
from tests.support import jobs


def test_results_in_input_order() -> None:
    inputs = list(range(200))
    assert grid_map(jobs.double, inputs, local=True, max_processes=2) == [2 * x for x in inputs]


def test_default_backend_is_local_when_no_cluster(in_tmp: Path) -> None:
    assert grid_map(jobs.double, [1, 2, 3]) == [2, 4, 6]


def test_lists_are_spread_other_values_are_one_argument() -> None:
    assert grid_map(jobs.add, [[1, 2], [3, 4, 5]], local=True) == [3, 12]
    assert grid_map(len, [(1, 2, 3), "ab"], local=True) == [3, 2]


def test_lambdas_and_closures_run() -> None:
    offset = 10

    def shift(x: int) -> int:
        return x + offset

    assert grid_map(shift, range(5), local=True, max_processes=2) == [10, 11, 12, 13, 14]
    assert grid_map(lambda x: x * x, [3, 4], local=True) == [9, 16]


def test_every_failure_is_named_with_its_remote_traceback() -> None:
    with pytest.raises(JobException) as info:
        grid_map(lambda x: jobs.fail_on(x, (3, 5)), range(8), local=True, max_processes=2,
                 name="fo")
    error = info.value
    assert sorted(job.name for job in error.jobs) == ["fo3", "fo5"]
    message = str(error)
    assert "2 of 8 jobs failed" in message
    assert "ValueError: bad input 3" in message
    assert "ValueError: bad input 5" in message
    assert message.count("Remote traceback") == 2
    assert 'raise ValueError(f"bad input {x}")' in message
    for job in error.jobs:
        assert isinstance(job.ret, ValueError)
        assert job.state is JobState.FAILED
        assert "Traceback" in (job.traceback or "")


def test_process_jobs_fills_outcome_fields() -> None:
    job_list = [Job(jobs.add, [i, 1], kwlist={"c": 100}, name=f"j{i}") for i in range(4)]
    job_list.append(Job(jobs.fail_on, [3], name="boom"))
    with pytest.raises(JobException) as info:
        process_jobs(job_list, local=True, max_processes=2)
    assert [job.ret for job in job_list[:4]] == [101, 102, 103, 104]
    assert all(job.state is JobState.DONE for job in job_list[:4])
    assert all(job.host_name for job in job_list)
    boom = job_list[4]
    assert info.value.jobs == [boom]
    assert isinstance(boom.ret, ValueError)
    assert boom.state is JobState.FAILED
    assert "bad input 3" in (boom.traceback or "")


def test_process_jobs_returns_results_and_job_execute_runs_in_process() -> None:
    job_list = [Job(jobs.double, [i]) for i in range(3)]
    assert process_jobs(job_list, local=True) == [0, 2, 4]
    job = Job(jobs.fail_on, [3])
    assert job.ret == JOB_NOT_FINISHED
    job.execute()
    assert isinstance(job.ret, ValueError)
    assert job.host_name


def test_add_env_and_copy_env_reach_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDMAP_TEST_INHERITED", "yes")
    value = "a=b=c"  # values with '=' survive
    assert grid_map(jobs.env_var, ["GRIDMAP_TEST_ADDED"], local=True,
                    add_env={"GRIDMAP_TEST_ADDED": value}) == [value]
    assert grid_map(jobs.env_var, ["GRIDMAP_TEST_INHERITED"], local=True,
                    copy_env=False) == [None]
    assert grid_map(jobs.env_var, ["GRIDMAP_TEST_INHERITED"], local=True) == ["yes"]


def test_job_runs_in_the_directory_it_was_created_in(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = Job(jobs.cwd, [])
    monkeypatch.chdir("/")
    process_jobs([job], local=True)
    assert job.ret == str(tmp_path)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [(lambda: grid_map(42, [1], local=True), TypeError, "must be callable"),
     (lambda: grid_map(jobs.double, 5, local=True), TypeError, "args_list must be an iterable"),
     (lambda: grid_map(jobs.double, [1], local=True, max_processes=0), ValueError,
      "max_processes=0"),
     (lambda: grid_map(jobs.double, [1], mem_free="lots"), ValueError, "mem_free='lots'"),
     (lambda: grid_map(jobs.double, [1], h_rt="soon"), ValueError, "h_rt='soon'"),
     (lambda: grid_map(jobs.double, [1, threading.Lock()], local=True), SerializationError,
      "args_list[1] cannot be pickled"),
     (lambda: process_jobs([jobs.double], local=True), TypeError, "not a gridmap Job"),
     (lambda: grid_map(jobs.double, [1], backend="nosuch"), UnknownPluginError,
      "no backend called 'nosuch'")],
)
def test_bad_input_is_refused_before_anything_runs(call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
    if error is UnknownPluginError:
        assert "Installed backends: local" in str(info.value)


def test_unknown_backend_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch,
                                                        in_tmp: Path) -> None:
    monkeypatch.setenv("GRIDMAP_BACKEND", "pbs")
    with pytest.raises(UnknownPluginError) as info:
        grid_map(jobs.double, [1])
    assert "environment variable GRIDMAP_BACKEND" in str(info.value)
    assert "Installed backends: local" in str(info.value)


def test_unknown_backend_names_the_config_file(in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text("backend = 'lsf'\n")
    with pytest.raises(UnknownPluginError) as info:
        grid_map(jobs.double, [1])
    assert str(in_tmp / "gridmap.toml") in str(info.value)
    assert "'lsf'" in str(info.value)


def test_require_cluster_refuses_local(in_tmp: Path) -> None:
    from gridmap_core import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="no cluster backend is usable"):
        grid_map(jobs.double, [1], require_cluster=True)


def test_gridmap_import_name_is_a_drop_in(monkeypatch: pytest.MonkeyPatch) -> None:
    import gridmap
    import gridmap.conf
    import gridmap.data
    import gridmap.job
    from gridmap import HEARTBEAT_FREQUENCY, NUM_RESUBMITS

    assert HEARTBEAT_FREQUENCY == 10
    assert NUM_RESUBMITS == 3
    assert gridmap.grid_map is grid_map
    assert gridmap.Job is Job and gridmap.job.Job is Job
    assert gridmap.JobException is JobException
    assert gridmap.data.zloads(gridmap.data.zdumps([1, 2])) == [1, 2]
    assert gridmap.conf.DEFAULT_QUEUE == "all.q"
    assert gridmap.grid_map(jobs.double, [4], local=True) == [8]


def test_white_list_must_be_a_list() -> None:
    with pytest.raises(ValueError, match=r"white_list='node1' must be a list of strings"):
        grid_map(jobs.double, [1], local=True, white_list="node1")  # type: ignore[arg-type]
