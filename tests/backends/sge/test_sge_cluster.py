"""The Grid Engine backend against the real single-node cluster: what Grid Engine
granted, how jobs end, waits explained, and nothing left behind."""

from __future__ import annotations

import logging
import os
import re
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from gridmap_sge.plugin import SGE_SETTINGS

from gridmap_core import GridMapExecutor, Job, JobException, process_jobs
from gridmap_core.backend import JobSpec
from gridmap_core.backend.drmaa import DrmaaConnection, DrmaaError
from gridmap_core.backend.scheduler import Launch, Status, runner_prefix
from gridmap_core.model.config import SETTINGS
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from tests.support.cluster_mail import check_out_of_memory_mail, grow_then_exceed, mailing_errors
from tests.support.durable import ENDED_SESSION
from tests.support.interrupted import interrupt_a_running_map

QUICK = {"CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 1, "MAX_IDLE_HEARTBEATS": 0,
         "NUM_RESUBMITS": 1}


@pytest.fixture(autouse=True)
def quick(sge_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick polls and heartbeats, through the settings' environment variables (as
    grid_map and process_jobs read them)."""
    for name, value in QUICK.items():
        monkeypatch.setenv(SETTINGS[name].env_var, str(value))


def granted() -> dict[str, Any]:
    """What Grid Engine gave this job: its own view and the qmaster's (qstat -j)."""
    job = os.environ["JOB_ID"]
    details = subprocess.run(["qstat", "-j", job], capture_output=True, text=True).stdout
    return {
        "job_id": job,
        "nslots": os.environ.get("NSLOTS"),
        "queue": os.environ.get("QUEUE"),
        "pe": os.environ.get("PE"),
        "vmem_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
        "qstat": details,
    }


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    return len(block)


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def write_pid_then_sleep(marker: str, seconds: float) -> None:
    Path(marker).write_text(os.environ["JOB_ID"])
    time.sleep(seconds)


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def qstat_names() -> str:
    """Every job name and number qstat lists, whole (its table cuts names at 10)."""
    from gridmap_sge.qstat import parse_qstat

    xml = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True).stdout
    names = re.findall(r"<JB_name>([^<]*)</JB_name>", xml)
    numbers = {number for number, _ in parse_qstat(xml).jobs}
    return " ".join([*names, *numbers])


def test_slots_memory_runtime_and_queue_are_granted(tmp_path: Path) -> None:
    job = Job(granted, [], num_slots=2, par_env="smp", h_vmem="300M", h_rt="0:10:00",
              queue="all.q", name="granted")
    process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path))
    seen = job.ret
    assert seen["nslots"] == "2" and seen["pe"] == "smp" and seen["queue"] == "all.q"
    # h_vmem is per slot: the job's address-space limit is 2 x 300M.
    assert seen["vmem_limit"] == 2 * 300 * 2**20
    assert "h_vmem=300M" in seen["qstat"] and "h_rt=600" in seen["qstat"]
    assert "parallel environment:  smp range: 2" in seen["qstat"]


def test_white_list_and_mem_free_reach_the_scheduler(tmp_path: Path, sge_cluster: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    [use_mem_free] = SGE_SETTINGS  # the sge backend declares it
    monkeypatch.setenv(use_mem_free.env_var, "true")
    job = Job(granted, [], mem_free="100M", name="placed")
    job.white_list = [sge_cluster]  # an attribute, as in the original
    process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path),
                 )
    details = job.ret["qstat"]
    assert f"all.q@{sge_cluster}" in details  # the queue list narrowed to the host
    assert "mem_free=100M" in details


def test_array_throttle_is_passed_on(tmp_path: Path) -> None:
    with GridMapExecutor(backend="sge", require_cluster=True, temp_dir=str(tmp_path),
                         settings=QUICK, backend_options={"max_running": 2}) as executor:
        results = list(executor.map(lambda _: granted()["qstat"], range(3)))
    assert all("maximum concurrency:        2" in r for r in results), results[0]


def test_a_job_over_its_h_vmem_is_reported_out_of_memory(tmp_path: Path) -> None:
    job = Job(allocate, [400], h_vmem="200M", name="hungry")
    with pytest.raises(JobException):
        process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path))
    assert job.cause_of_death is not None and "out of memory" in job.cause_of_death
    assert "h_vmem=200M" in job.cause_of_death
    assert job.death_kind is DeathKind.OUT_OF_MEMORY
    assert isinstance(job.ret, MemoryError)
    assert job.num_resubmits == 0  # it would only run out again


def test_a_job_over_its_h_rt_is_reported_as_runtime_exceeded(tmp_path: Path) -> None:
    job = Job(sleep_for, [60], h_rt=3, name="slow")
    started = time.monotonic()
    with pytest.raises(JobException):
        process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path))
    assert time.monotonic() - started < 45
    assert job.cause_of_death is not None and "runtime limit exceeded" in job.cause_of_death
    assert job.death_kind is DeathKind.TIME_LIMIT
    assert job.num_resubmits == 0


def test_a_job_deleted_with_qdel_is_reported_and_not_resubmitted(tmp_path: Path) -> None:
    marker = tmp_path / "job_id"
    job = Job(write_pid_then_sleep, [str(marker), 120], name="deleted")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path),
                         )
        except BaseException as error:
            errors.append(error)

    os.environ[SETTINGS["NUM_RESUBMITS"].env_var] = "3"  # undone by the fixture
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the job never started"
    subprocess.run(["qdel", marker.read_text()], check=True, capture_output=True)
    thread.join(60)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], JobException)
    assert job.cause_of_death is not None and "deleted while running (qdel)" in job.cause_of_death
    assert job.death_kind is DeathKind.CANCELLED
    assert job.num_resubmits == 0


def test_an_impossible_request_is_refused_before_anything_runs(tmp_path: Path) -> None:
    job = Job(granted, [], queue="no_such.q", name="nowhere")
    with pytest.raises(DrmaaError, match=r"refused 1 job\(s\) named 'nowhere'.*unknown queue"):
        process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path))
    assert "nowhere" not in qstat_names()


def test_an_unknown_parallel_environment_is_refused_with_the_known_ones() -> None:
    job = Job(granted, [], num_slots=2, par_env="mpi_nowhere")
    with pytest.raises(ValueError, match=r"mpi_nowhere.*it has: .*smp"):
        process_jobs([job], backend="sge", require_cluster=True, temp_dir="/tmp")


def _scheduler_launch(tmp_path: Path, log_dir: str) -> Launch:
    spec = JobSpec(function=print, resources=Resources(), name="stuck",
                   working_dir=str(tmp_path), copy_env=False)
    return Launch(spec=spec, tasks=[0], attempt=0, log_dir=log_dir,
                  runner=[*runner_prefix(), "--address", "tcp://127.0.0.1:1"], name="stuck")


def test_a_job_grid_engine_cannot_start_is_a_clear_failure(tmp_path: Path) -> None:
    """An output directory that does not exist: the job ends before it runs."""
    from gridmap_sge.native import NativeOptions
    from gridmap_sge.scheduler import SgeScheduler

    scheduler = SgeScheduler(DrmaaConnection.acquire(), NativeOptions())
    try:
        [job_id] = scheduler.launch(_scheduler_launch(tmp_path, "/nonexistent/gridmap"))
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            status = scheduler.poll([job_id]).get(job_id)
            if status is not None and status.status in (Status.ERROR, Status.ENDED):
                break
            time.sleep(0.5)
        assert status is not None and status.status is Status.ENDED, status
        assert "could not start it" in status.cause and "input/output file" in status.cause
        assert status.kind is DeathKind.SCHEDULER_ERROR
        assert job_id not in qstat_names().split()
    finally:
        scheduler.close()


def test_a_wait_on_a_disabled_queue_is_explained(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    subprocess.run(["qmod", "-d", "all.q"], check=True, capture_output=True)
    try:
        with GridMapExecutor(backend="sge", require_cluster=True, temp_dir=str(tmp_path),
                             settings=QUICK) as executor, caplog.at_level(logging.WARNING):
            future = executor.submit(sleep_for, 0)
            deadline = time.monotonic() + 30
            while "no queue instance can run them" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.2)
            assert "is in state d (it is disabled)" in caplog.text
            subprocess.run(["qmod", "-e", "all.q"], check=True, capture_output=True)
            assert future.result(60) == 0
    finally:
        subprocess.run(["qmod", "-e", "all.q"], capture_output=True)


def test_ctrl_c_deletes_every_job_it_submitted(tmp_path: Path) -> None:
    interrupt_a_running_map(tmp_path, "sge", f"ctrlc{uuid.uuid4().hex[:8]}", qstat_names,
                            ["qdel"])


def test_logs_are_kept_when_a_job_fails_and_removed_otherwise(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    process_jobs([Job(sleep_for, [0])], backend="sge", require_cluster=True,
                 temp_dir=str(good))
    (session,) = good.iterdir()  # the journal is kept, the logs are not
    assert {path.name for path in session.iterdir()} == ENDED_SESSION
    job = Job(allocate, [400], h_vmem="200M", name="logged")
    with pytest.raises(JobException):
        process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(bad))
    logs = list(bad.glob("gridmap-*/logs/logged.*.err"))
    assert logs, list(bad.rglob("*"))
    assert not list(bad.glob("gridmap-*/key"))  # the key never outlives its map


def test_drmaa_refusals_are_clear(tmp_path: Path) -> None:
    connection = DrmaaConnection.acquire()
    try:
        with pytest.raises(DrmaaError, match=r"no_such\.q"):
            connection.submit(command=["/bin/true"], environment={}, working_dir=str(tmp_path),
                              output="/dev/null", error="/dev/null", native="-q no_such.q",
                              name="refused", count=1)
    finally:
        connection.release()


def test_a_job_out_of_memory_is_mailed_with_grid_engines_id_and_plots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mailing_errors(tmp_path, monkeypatch) as server:
        job = Job(grow_then_exceed, [20, 30], h_vmem="300M", name="grower")
        with pytest.raises(JobException):
            process_jobs([job], backend="sge", require_cluster=True, temp_dir=str(tmp_path))
        [mail] = server.wait_for(1, timeout=30)
    assert str(job.id).isdigit(), job.id
    assert mail.message["Subject"] == f"gridmap: job grower died: {job.cause_of_death}"
    check_out_of_memory_mail(mail, job, "sge")


def task_and_square(x: int) -> tuple[int, str]:
    return x * x, f"{os.environ['JOB_ID']}.{os.environ['SGE_TASK_ID']}"


def test_runners_take_on_queued_jobs_and_their_tasks_are_deleted(tmp_path: Path) -> None:
    name = f"reuse{uuid.uuid4().hex[:8]}"
    jobs = [Job(task_and_square, [x], name=name) for x in range(30)]
    process_jobs(jobs, backend="sge", require_cluster=True, temp_dir=str(tmp_path))
    assert [job.ret[0] for job in jobs] == [x * x for x in range(30)]
    # Each job's id is the array task it ran in, as the job itself saw it.
    assert all(job.id == job.ret[1] for job in jobs), [(job.id, job.ret[1]) for job in jobs]
    assert len({job.ret[1] for job in jobs}) < len(jobs), "no runner took on a second job"
    deadline = time.monotonic() + 30  # runners exiting, deleted tasks going
    while name in qstat_names():
        assert time.monotonic() < deadline, qstat_names()
        time.sleep(0.2)
