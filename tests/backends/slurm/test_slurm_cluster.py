"""The Slurm backend against the real single-node cluster: what Slurm granted, how
jobs end, refusals, a controller that goes away, and nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from gridmap_core import GridMapExecutor, Job, JobException, process_jobs
from gridmap_core.model.config import SETTINGS
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import ResourceError, Resources
from tests import PROJECT_ROOT
from tests.support.cluster_mail import check_out_of_memory_mail, grow_then_exceed, mailing_errors
from tests.support.interrupted import interrupt_a_running_map
from tests.support.watched import HeldMap

QUICK = {"CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 1, "MAX_IDLE_HEARTBEATS": 0,
         "NUM_RESUBMITS": 1}
SCRIPTS = PROJECT_ROOT / "scripts" / "slurm"


@pytest.fixture(autouse=True)
def quick(slurm_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick polls and heartbeats, through the settings' environment variables (as
    grid_map and process_jobs read them)."""
    for name, value in QUICK.items():
        monkeypatch.setenv(SETTINGS[name].env_var, str(value))


def show_job(job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (values without spaces are enough here)."""
    line = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                          text=True, check=True).stdout
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def granted() -> dict[str, Any]:
    """What Slurm gave this job: its environment, its controller record, its cgroup."""
    job = os.environ["SLURM_JOB_ID"]
    limit = None
    for path in Path("/sys/fs/cgroup/memory").glob(f"slurm*/uid_*/job_{job}/memory.limit_in_bytes"):
        limit = int(path.read_text())
    return {
        "environment": {k: v for k, v in os.environ.items() if k.startswith("SLURM_")},
        "record": show_job(job),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_limit": limit,
    }


def allocate(megabytes: int) -> int:
    block = b"\1" * (megabytes * 2**20)  # written, so the pages count against the cgroup
    return len(block)


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def write_id_then_sleep(marker: str, seconds: float) -> None:
    Path(marker).write_text(f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}")
    time.sleep(seconds)


def array_id(_: int) -> str:
    return os.environ["SLURM_ARRAY_JOB_ID"]


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def squeue_names() -> str:
    """Every job name and id squeue lists (unfinished jobs only)."""
    return subprocess.run(["squeue", "-h", "-r", "-t", "PD,R,CG,CF,S", "-O", "Name:|,JobArrayID:|"],
                          capture_output=True, text=True, check=True).stdout


def test_cpus_memory_time_and_partition_are_granted(tmp_path: Path) -> None:
    job = Job(granted, [], num_slots=2, h_vmem="300M", h_rt="0:10:00", queue="debug",
              name="granted")
    process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    seen = job.ret
    record, environment = seen["record"], seen["environment"]
    assert record["Partition"] == "debug" and record["TimeLimit"] == "00:10:00"
    assert record["NumCPUs"] == "2" and record["MinMemoryCPU"] == "300M"
    assert environment["SLURM_CPUS_PER_TASK"] == "2"
    assert environment["SLURM_MEM_PER_CPU"] == "300"
    assert seen["cpus"] == 2  # pinned to two CPUs by the cpuset cgroup
    # --mem-per-cpu is per CPU, as h_vmem is per slot: the cgroup holds 2 x 300M.
    assert seen["memory_limit"] == 2 * 300 * 2**20


def test_a_white_listed_host_and_mem_free_reach_slurm(tmp_path: Path, slurm_cluster: str) -> None:
    job = Job(granted, [], mem_free="150M", name="placed")
    job.white_list = [slurm_cluster]  # an attribute, as in the original
    process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    assert job.ret["record"]["ReqNodeList"] == slurm_cluster
    assert job.ret["record"]["MinMemoryCPU"] == "150M"


def test_an_unknown_host_or_partition_is_refused_before_anything_runs(
        tmp_path: Path, slurm_cluster: str) -> None:
    job = Job(granted, [], name="nowhere")
    job.white_list = [slurm_cluster, "no-such-node"]
    with pytest.raises(ResourceError, match=rf"no-such-node.*its nodes are: {slurm_cluster}"):
        process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    with pytest.raises(ResourceError, match=r"no partition 'gpu_xl'; its partitions are: debug"):
        process_jobs([Job(granted, [], queue="gpu_xl")], backend="slurm",
                     require_cluster=True, temp_dir=str(tmp_path))


def test_a_request_slurm_cannot_satisfy_is_refused_clearly(tmp_path: Path) -> None:
    name = f"huge{uuid.uuid4().hex[:8]}"
    job = Job(granted, [], h_vmem="4000G", name=name)
    with pytest.raises(RuntimeError, match=rf"refused 1 job\(s\) named '{name}'.*"
                       r"Memory specification.*--mem-per-cpu=4096000"):
        process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    assert name not in squeue_names()


def test_array_throttle_and_splitting_at_max_array_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import gridmap_slurm.backend

    real = gridmap_slurm.backend.read_cluster
    monkeypatch.setattr(gridmap_slurm.backend, "read_cluster",
                        lambda commands: dataclasses.replace(real(commands), max_array_size=5))
    with GridMapExecutor(backend="slurm", require_cluster=True, temp_dir=str(tmp_path),
                         settings=QUICK, backend_options={"max_running": 2}) as executor:
        records = list(executor.map(lambda _: granted()["record"], range(10)))
    # Ten jobs in arrays of at most four elements (indices stay below MaxArraySize).
    arrays = {r["ArrayJobId"] for r in records}
    assert len(arrays) == 3, arrays
    assert all(r["ArrayTaskThrottle"] == "2" for r in records), records[0]


def test_a_job_over_its_memory_is_reported_out_of_memory(tmp_path: Path) -> None:
    job = Job(allocate, [600], h_vmem="200M", name="hungry")
    with pytest.raises(JobException):
        process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    assert job.cause_of_death is not None and "out of memory" in job.cause_of_death, \
        job.cause_of_death
    assert job.death_kind is DeathKind.OUT_OF_MEMORY
    assert job.num_resubmits == 0  # it would only run out again


def test_a_job_over_its_time_limit_is_reported_as_runtime_exceeded(tmp_path: Path) -> None:
    # Slurm's smallest limit is a minute and it checks about every 30 s: 60-90 s.
    job = Job(sleep_for, [300], h_rt=20, name="slow")
    started = time.monotonic()
    with pytest.raises(JobException):
        process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    assert 55 < time.monotonic() - started < 150
    assert job.cause_of_death is not None
    assert "runtime limit exceeded" in job.cause_of_death, job.cause_of_death
    assert job.death_kind is DeathKind.TIME_LIMIT
    assert job.num_resubmits == 0


def test_a_job_cancelled_with_scancel_is_reported_and_not_resubmitted(tmp_path: Path) -> None:
    marker = tmp_path / "job_id"
    job = Job(write_id_then_sleep, [str(marker), 120], name="cancelled")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
        except BaseException as error:
            errors.append(error)

    os.environ[SETTINGS["NUM_RESUBMITS"].env_var] = "3"  # undone by the fixture
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the job never started"
    subprocess.run(["scancel", marker.read_text()], check=True, capture_output=True)
    thread.join(60)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], JobException)
    assert job.cause_of_death is not None and "cancelled" in job.cause_of_death
    assert job.death_kind is DeathKind.CANCELLED
    assert job.num_resubmits == 0


def test_ctrl_c_cancels_every_job_it_submitted(tmp_path: Path) -> None:
    interrupt_a_running_map(tmp_path, "slurm", f"ctrlc{uuid.uuid4().hex[:8]}", squeue_names,
                            ["scancel", "--name"], extra=', mem_free="100M"')


def test_final_states_are_read_from_accounting_and_the_completion_log(tmp_path: Path) -> None:
    from gridmap_slurm.cluster import Cluster, read_cluster
    from gridmap_slurm.commands import Commands
    from gridmap_slurm.options import SlurmOptions
    from gridmap_slurm.scheduler import SlurmScheduler
    from gridmap_slurm.states import QUEUED_STATES, RUNNING_STATES, Record, describe

    job_id = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "exit 3"],
                            capture_output=True, text=True, check=True).stdout.strip()
    cluster = read_cluster(Commands())
    sources = []
    if cluster.accounting:
        sources.append(Cluster(accounting=True))
    if cluster.jobcomp_log:
        sources.append(Cluster(jobcomp_log=cluster.jobcomp_log))
    assert sources, "the test cluster records finished jobs nowhere"
    for source in sources:
        scheduler = SlurmScheduler(source, SlurmOptions())
        deadline = time.monotonic() + 30
        # sacct lists the job from its submission on: wait for its end to be recorded.
        while (found := scheduler.jobs.finished([job_id])).get(job_id, Record(job_id, "")).state \
                in ("", *QUEUED_STATES, *RUNNING_STATES):
            assert time.monotonic() < deadline, f"no record of job {job_id} in {source}"
            time.sleep(0.3)
        assert found[job_id].state == "FAILED" and found[job_id].exit_code == 3, found
        ended = describe(found[job_id], Resources())
        assert ended.kind is DeathKind.UNREACHABLE, ended  # what the runner's status 3 means


def _slurm(script: str, *args: str) -> None:
    subprocess.run(["bash", str(SCRIPTS / script), *args], check=True, capture_output=True,
                   timeout=180)


@pytest.mark.skipif(os.geteuid() != 0, reason="stopping slurmctld needs root")
def test_a_controller_that_goes_away_is_waited_for(tmp_path: Path) -> None:
    """Submitting while slurmctld is down, and polling while it restarts, are retried:
    the map completes with every result."""
    with GridMapExecutor(backend="slurm", require_cluster=True, temp_dir=str(tmp_path),
                         settings=QUICK) as executor:
        _slurm("stop.sh", "--slurm-only")
        try:
            starter = threading.Timer(4.0, _slurm, ["start.sh"])
            starter.start()
            futures = [executor.submit(sleep_for, 6) for _ in range(4)]
            starter.join()
            deadline = time.monotonic() + 60
            while "RUNNING" not in subprocess.run(["squeue", "-h", "-o", "%T"],
                                                  capture_output=True, text=True).stdout:
                assert time.monotonic() < deadline, "the jobs never started"
                time.sleep(0.2)
            _slurm("stop.sh", "--slurm-only")  # running jobs survive a restart
            time.sleep(3)
            _slurm("start.sh")
            assert [f.result(120) for f in futures] == [6] * 4
        finally:
            _slurm("start.sh")


def environment_of_job() -> dict[str, str]:
    return dict(os.environ)


def test_without_copy_env_the_job_gets_only_add_env(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDMAP_SUBMITTER_ONLY", "1")
    job = Job(environment_of_job, [], copy_env=False, add_env={"ONLY_THIS": "a=b c"})
    process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    seen = job.ret
    assert seen["ONLY_THIS"] == "a=b c" and "SLURM_ARRAY_JOB_ID" in seen
    assert "GRIDMAP_SUBMITTER_ONLY" not in seen and "PATH" not in seen


def test_the_status_page_shows_slurms_job_ids_and_node(tmp_path: Path, slurm_cluster: str) -> None:
    with HeldMap(tmp_path, count=2, backend="slurm") as held:
        rows = held.wait(lambda r: len(r) == 2 and all(
            row["state"] == "running" and row["memory"] is not None for row in r.values()), 60)
        ids = [rows[i]["id"] for i in range(2)]
        array = ids[0].split("_")[0]
        assert ids == [f"{array}_1", f"{array}_2"], ids
        assert {row["host"] for row in rows.values()} == {slurm_cluster}
        assert "held" in squeue_names()
        held.release(0)
        held.wait(lambda r: r[0]["state"] == "done" and r[1]["state"] == "running", 60)
        held.release(1)
        held.wait(lambda r: r[1]["state"] == "done", 60)
    assert held.results == [0, 10]


def test_an_observed_executor_map_goes_to_slurm_as_one_array(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The status page observes every job; map still submits one array, not one per call.
    monkeypatch.setenv(SETTINGS["REUSE_RUNNERS"].env_var, "0")  # so element i runs job i
    with GridMapExecutor("slurm", require_cluster=True, temp_dir=str(tmp_path),
                         mem_free="100M", status_page=True) as executor:
        assert list(executor.map(abs, [-1, -2, -3])) == [1, 2, 3]
        assert executor.status is not None
        rows = executor.status.board.snapshot()["jobs"]
    ids = [row["id"] for row in rows]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in (1, 2, 3)], ids
    assert [row["state"] for row in rows] == ["done"] * 3
    assert [row["name"] for row in rows] == ["gridmap_job0", "gridmap_job1", "gridmap_job2"]


def test_a_job_killed_for_its_memory_is_mailed_with_slurms_id_and_plots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mailing_errors(tmp_path, monkeypatch) as server:
        job = Job(grow_then_exceed, [20, 30], h_vmem="200M", name="grower")
        with pytest.raises(JobException):
            process_jobs([job], backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
        [mail] = server.wait_for(1, timeout=30)
    assert re.fullmatch(r"\d+_1", str(job.id)), job.id
    assert mail.message["Subject"].startswith("gridmap: job grower died: out of memory"), \
        mail.message["Subject"]
    check_out_of_memory_mail(mail, job, "slurm")


def element_and_square(x: int) -> tuple[int, str]:
    return x * x, f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"


def test_runners_take_on_queued_jobs_and_their_elements_are_cancelled(tmp_path: Path) -> None:
    name = f"reuse{uuid.uuid4().hex[:8]}"
    jobs = [Job(element_and_square, [x], name=name) for x in range(40)]
    process_jobs(jobs, backend="slurm", require_cluster=True, temp_dir=str(tmp_path))
    assert [job.ret[0] for job in jobs] == [x * x for x in range(40)]
    # Each job's id is the array element it ran in, as the job itself saw it.
    assert all(job.id == job.ret[1] for job in jobs), [(job.id, job.ret[1]) for job in jobs]
    elements = {job.ret[1] for job in jobs}
    assert len(elements) < len(jobs), "no runner took on a second job"
    deadline = time.monotonic() + 30  # runners exiting, and cancelled elements completing
    while name in squeue_names():
        assert time.monotonic() < deadline, squeue_names()
        time.sleep(0.2)
    # Every other element was cancelled, or, had it started first, was told to stop
    # (exit status 4); none ran a job.
    array = next(iter(elements)).split("_")[0]
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", array, "-o", "JobID,State,ExitCode"],
                             capture_output=True, text=True, check=True).stdout
        rows = [line.split("|") for line in out.splitlines() if line]
        if {element for element, _, _ in rows} >= elements and all(
                state not in ("PENDING", "RUNNING") for _, state, _ in rows):
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    others = [(element, state, code) for element, state, code in rows if element not in elements]
    assert others, rows  # (accounting lists pending elements cancelled together as one row)
    assert all(state.startswith("CANCELLED") or code == "4:0" for _, state, code in others), others
