"""The Slurm backend's translation logic, without a cluster: job fields into sbatch
options, squeue / sacct / completion-log output into job states, the retrying of
Slurm's commands, and the scheduler's bookkeeping driven through fake commands that
record every call and answer as Slurm 22.05 does (see
shared/notes/slurm-single-node.md, "How job endings look")."""

from __future__ import annotations

import functools
import os
import shlex
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from gridmap_slurm import commands as slurm_commands
from gridmap_slurm import tracking as slurm_tracking
from gridmap_slurm.backend import (
    SlurmBackend,
    check_partitions,
    controller_problem,
    slurm_options,
)
from gridmap_slurm.cluster import Cluster, read_cluster
from gridmap_slurm.commands import Commands, SlurmError, is_transient, one_line
from gridmap_slurm.options import (
    GRID_ENGINE_DEFAULT_QUEUE,
    SlurmOptions,
    job_name,
    job_options,
    memory_mb,
    partition,
    time_limit,
)
from gridmap_slurm.scheduler import SlurmScheduler, job_environment
from gridmap_slurm.states import (
    Record,
    describe,
    parse_jobcomp,
    parse_sacct,
    parse_squeue,
    pending_note,
)

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.resources import ResourceError, Resources

pytestmark = pytest.mark.timeout(30)

MB = 2**20
RUNNER = ["python3", "-m", "gridmap_core.node.runner", "--address", "tcp://head:5555"]
SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,exit_code:|"
CONTROLLER_DOWN = "squeue: error: Unable to contact slurm controller (connect failure)"


# -- job options ---------------------------------------------------------------------


def make_spec(*, extra: Mapping[str, str] | None = None, **resources: Any) -> JobSpec:
    return JobSpec(function=print, resources=Resources.parse(**resources),
                   extra=dict(extra or {}))


def options_of(options: SlurmOptions | None = None, *,
               extra: Mapping[str, str] | None = None, **resources: Any) -> list[str]:
    return job_options(make_spec(extra=extra, **resources), options or SlurmOptions())


NODES = SlurmOptions(nodes=("n1", "n2", "n3"))


def test_nothing_requested_is_no_option() -> None:
    assert options_of() == []


@pytest.mark.parametrize(("resources", "expected"), [
    ({"mem_free": "100M"}, "--mem-per-cpu=100"),
    ({"h_vmem": "1G"}, "--mem-per-cpu=1024"),
    ({"h_vmem": "1.5G"}, "--mem-per-cpu=1536"),
    ({"mem_free": "100m"}, "--mem-per-cpu=96"),  # 10**8 bytes are 95.4 MiB
    ({"mem_free": "1000"}, "--mem-per-cpu=1"),  # never rounded down to nothing
    ({"mem_free": 2**20 + 1}, "--mem-per-cpu=2"),
    ({"mem_free": "100M", "h_vmem": "2G"}, "--mem-per-cpu=2048"),  # the limit wins
    ({"mem_free": "4G", "h_vmem": "1G"}, "--mem-per-cpu=1024"),
], ids=["mem_free", "h_vmem", "fraction", "decimal_unit", "tiny", "one_byte_over",
        "h_vmem_wins", "h_vmem_wins_even_when_smaller"])
def test_memory_is_per_cpu_in_mb_rounded_up(resources: dict[str, Any], expected: str) -> None:
    assert options_of(**resources) == [expected]


def test_memory_mb() -> None:
    assert memory_mb(1) == 1
    assert memory_mb(MB) == 1
    assert memory_mb(MB + 1) == 2
    assert memory_mb(3 * 2**30) == 3072


def test_slots_are_cpus_per_task() -> None:
    assert options_of(num_slots=1) == []
    assert options_of(num_slots=4) == ["--cpus-per-task=4"]
    # A Grid Engine parallel environment has no Slurm counterpart and is not needed.
    assert options_of(num_slots=2, par_env="smp") == ["--cpus-per-task=2"]


@pytest.mark.parametrize(("h_rt", "expected"), [
    (1, "--time=0:01:00"),
    (59, "--time=0:01:00"),
    (60, "--time=0:01:00"),
    (61, "--time=0:02:00"),
    (3599, "--time=1:00:00"),
    (3600, "--time=1:00:00"),
    ("1:30:00", "--time=1:30:00"),
    ("10:00", "--time=0:10:00"),
    (90061, "--time=25:02:00"),
])
def test_runtime_is_whole_minutes_as_hours_minutes_seconds(h_rt: Any, expected: str) -> None:
    assert options_of(h_rt=h_rt) == [expected]


def test_time_limit() -> None:
    assert time_limit(59) == "0:01:00"
    assert time_limit(3600) == "1:00:00"
    assert time_limit(90061) == "25:02:00"
    assert time_limit(100 * 3600) == "100:00:00"


def test_queue_is_a_partition() -> None:
    assert options_of(queue="debug") == ["--partition=debug"]
    assert options_of(queue="debug,long") == ["--partition=debug,long"]


def test_the_grid_engine_default_queue_means_the_default_partition() -> None:
    assert GRID_ENGINE_DEFAULT_QUEUE == "all.q"
    assert options_of(queue="all.q") == []
    assert options_of(SlurmOptions(partitions=("debug", "long")), queue="all.q") == []
    # ... unless the cluster really has a partition of that name.
    assert options_of(SlurmOptions(partitions=("debug", "all.q")), queue="all.q") == \
        ["--partition=all.q"]
    assert partition("all.q", None) is None
    assert partition("all.q", ["all.q"]) == "all.q"
    assert partition(None, ["debug"]) is None
    assert partition("long", None) == "long"


def test_a_white_list_of_one_host_is_a_node_list() -> None:
    assert options_of(white_list=["n2"]) == ["--nodelist=n2"]
    assert options_of(NODES, white_list=["n2"]) == ["--nodelist=n2"]


def test_a_white_list_of_several_hosts_excludes_every_other_node() -> None:
    assert options_of(NODES, white_list=["n1", "n3"]) == ["--exclude=n2"]
    assert options_of(SlurmOptions(nodes=("a", "b", "c", "d")), white_list=["b", "c"]) == \
        ["--exclude=a,d"]
    # Every node allowed: nothing to exclude.
    assert options_of(NODES, white_list=["n3", "n2", "n1"]) == []


def test_a_white_list_with_unknown_hosts_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"white_list names hosts Slurm does not know: "
                                            r"x9, zz; its nodes are: n1, n2, n3"):
        options_of(NODES, white_list=["n1", "zz", "x9"])


def test_a_white_list_of_several_hosts_needs_the_node_list() -> None:
    with pytest.raises(ResourceError, match=r"white_list=\['n1', 'n2'\].*excluding all other "
                                            r"nodes, and the node list is unknown"):
        options_of(white_list=["n1", "n2"])


def test_gpus_are_a_generic_resource() -> None:
    assert options_of(gpu=0) == []
    assert options_of(gpu=2) == ["--gres=gpu:2"]
    assert options_of(SlurmOptions(gpu_resource="tesla"), gpu=1) == ["--gres=tesla:1"]


def test_project_is_an_account() -> None:
    assert options_of(extra={"project": "genomics"}) == ["--account=genomics"]
    assert options_of(extra={"project": ""}) == []


def test_raw_resources_starting_with_a_dash_are_split_into_options() -> None:
    assert options_of(resources=["--constraint=avx2", "-C avx2", "  --qos=high ",
                                 "--exclusive"]) == \
        ["--constraint=avx2", "-C", "avx2", "--qos=high", "--exclusive"]


@pytest.mark.parametrize("entry", ["arch=lx-amd64", "h_vmem=1G", "", "gpu"])
def test_grid_engine_style_raw_resources_are_refused(entry: str) -> None:
    with pytest.raises(ResourceError) as refused:
        options_of(resources=[entry])
    message = str(refused.value)
    assert f"resources=[{entry!r}]" in message
    assert "Slurm has no Grid Engine style resource requests" in message
    assert "give sbatch options instead" in message and "--constraint=avx2" in message


@pytest.mark.parametrize("field", ["os_distribution", "os_minor"])
def test_grid_engine_only_fields_are_refused(field: str) -> None:
    with pytest.raises(ResourceError, match=rf"{field}='x' is a Grid Engine resource with no "
                                            r"Slurm counterpart.*--constraint=FEATURE"):
        options_of(extra={field: "x"})
    assert options_of(extra={field: ""}) == []  # not asked for


@pytest.mark.parametrize(("spec", "options"), [
    (make_spec(queue="my partition"), SlurmOptions()),
    (make_spec(queue="a\tb"), SlurmOptions()),
    (make_spec(white_list=["node 1"]), SlurmOptions()),
    (make_spec(extra={"project": "my project"}), SlurmOptions()),
    (make_spec(), SlurmOptions(extra=("--comment=a b",))),
], ids=["queue", "tab", "white_list", "project", "site_option"])
def test_values_with_spaces_are_refused(spec: JobSpec, options: SlurmOptions) -> None:
    with pytest.raises(ResourceError, match=r"Slurm options may not contain spaces"):
        job_options(spec, options)


def test_site_options_are_appended_as_they_are() -> None:
    site = SlurmOptions(extra=("--qos=high", "-C", "avx2"))
    assert options_of(site) == ["--qos=high", "-C", "avx2"]
    assert options_of(site, h_rt=60, resources=["--exclusive"]) == \
        ["--time=0:01:00", "--exclusive", "--qos=high", "-C", "avx2"]


def test_every_field_in_one_option_list() -> None:
    options = SlurmOptions(gpu_resource="gpu", extra=("--qos=high",), nodes=("n1", "n2", "n3"),
                           partitions=("debug", "long"))
    spec = make_spec(mem_free="1G", h_vmem="2G", num_slots=2, par_env="smp", h_rt="0:05:00",
                     queue="long", white_list=["n1", "n2"], gpu=1,
                     resources=["--constraint=avx2"], extra={"project": "p1"})
    assert job_options(spec, options) == [
        "--mem-per-cpu=2048", "--cpus-per-task=2", "--time=0:05:00", "--partition=long",
        "--exclude=n3", "--gres=gpu:1", "--account=p1", "--constraint=avx2", "--qos=high",
    ]


@pytest.mark.parametrize(("name", "expected"), [
    ("gridmap_job", "gridmap_job"),
    ("my job", "my_job"),
    ("a/b:c", "a_b_c"),
    ("x@y\\z*?", "x_y_z__"),
    ("tab\there", "tab_here"),
    ("a=b;c", "a_b_c"),
    ("run-1.2+3", "run-1.2+3"),
    ("", "gridmap_job"),
])
def test_job_name(name: str, expected: str) -> None:
    assert job_name(name) == expected


# -- squeue, sacct and the job completion log ----------------------------------------


SQUEUE_OUTPUT = """\
878_1|RUNNING|None|0|
878_2|PENDING|Priority|0|
878_3|FAILED|NonZeroExitCode|512|
878_4|FAILED|JobLaunchFailure|9|
878_5|COMPLETED|None|0|
878_6|CANCELLED|None|15|

879_10|PENDING|JobHeldUser|N/A|
"""


def test_parse_squeue_reads_array_ids_and_the_raw_wait_status() -> None:
    records = parse_squeue(SQUEUE_OUTPUT)
    assert sorted(records) == ["878_1", "878_2", "878_3", "878_4", "878_5", "878_6", "879_10"]
    assert records["878_1"] == Record("878_1", "RUNNING", "None", 0, 0)
    assert records["878_2"] == Record("878_2", "PENDING", "Priority", 0, 0)
    assert records["878_3"] == Record("878_3", "FAILED", "NonZeroExitCode", 2, 0)
    assert records["878_4"] == Record("878_4", "FAILED", "JobLaunchFailure", 0, 9)
    assert records["878_6"].signal == 15
    assert records["879_10"] == Record("879_10", "PENDING", "JobHeldUser", None, None)


def test_parse_squeue_of_nothing() -> None:
    assert parse_squeue("") == {}
    assert parse_squeue("\n\n") == {}


def test_parse_sacct_keeps_job_lines_only() -> None:
    text = (
        "878_1|FAILED|2:0|None\n"
        "878_1.batch|FAILED|2:0|\n"
        "878_1.extern|COMPLETED|0:0|\n"
        "28|CANCELLED by 0|0:0|None\n"
        "28.batch|CANCELLED|0:15|\n"
        "29|TIMEOUT|0:0|TimeLimit\n"
        "30|FAILED|0:9|JobLaunchFailure\n"
        "31|OUT_OF_MEMORY|0:125|OutOfMemory\n"
    )
    records = parse_sacct(text)
    assert sorted(records) == ["28", "29", "30", "31", "878_1"]
    assert records["878_1"] == Record("878_1", "FAILED", "None", 2, 0)
    assert records["28"] == Record("28", "CANCELLED", "None", 0, 0)
    assert records["29"] == Record("29", "TIMEOUT", "TimeLimit", 0, 0)
    assert records["30"] == Record("30", "FAILED", "JobLaunchFailure", 0, 9)
    assert records["31"].state == "OUT_OF_MEMORY"


def test_parse_sacct_without_the_reason_column() -> None:
    assert parse_sacct("6500_2|FAILED|2:0\n") == {
        "6500_2": Record("6500_2", "FAILED", "", 2, 0)}


def jobcomp_line(job_id: int, state: str, exit_code: str, *, name: str = "wrap",
                 array: tuple[int, int] | None = None) -> str:
    """A line of jobcomp/filetxt's log as Slurm 22.05 writes it."""
    line = (
        f"JobId={job_id} UserId=alice(1000) GroupId=alice(1000) Name={name} "
        f"JobState={state} Partition=debug TimeLimit=UNLIMITED "
        "StartTime=2024-05-01T10:00:00 EndTime=2024-05-01T10:00:05 NodeList=vm NodeCnt=1 "
        "ProcCnt=1 WorkDir=/home/alice ReservationName= "
        "Tres=cpu=1,mem=200M,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown "
        "SubmitTime=2024-05-01T09:59:59 EligibleTime=2024-05-01T09:59:59 "
    )
    if array:
        line += f"ArrayJobId={array[0]} ArrayTaskId={array[1]} "
    return line + f"DerivedExitCode=0:0 ExitCode={exit_code} "  # sic: a trailing space


def test_parse_jobcomp_reads_the_exit_code_not_the_derived_one() -> None:
    records = parse_jobcomp([jobcomp_line(52, "FAILED", "0:9")])
    assert records == {"52": Record("52", "FAILED", "", 0, 9)}
    assert parse_jobcomp([jobcomp_line(53, "FAILED", "3:0")])["53"].exit_code == 3


def test_parse_jobcomp_keys_array_elements_by_array_and_task() -> None:
    lines = [jobcomp_line(52, "COMPLETED", "0:0", array=(2, 47)),
             jobcomp_line(2, "FAILED", "2:0", array=(2, 50))]
    records = parse_jobcomp(lines)
    assert sorted(records) == ["2_47", "2_50"]
    assert records["2_47"] == Record("2_47", "COMPLETED", "", 0, 0)
    assert records["2_50"] == Record("2_50", "FAILED", "", 2, 0)


def test_parse_jobcomp_is_not_confused_by_a_name_with_spaces_and_equals_signs() -> None:
    line = jobcomp_line(60, "TIMEOUT", "0:0", name="a b=c x=y ExitCode=1:0",
                        array=(58, 3))
    assert parse_jobcomp([line]) == {"58_3": Record("58_3", "TIMEOUT", "", 0, 0)}


def test_parse_jobcomp_a_later_line_wins() -> None:
    lines = [jobcomp_line(70, "NODE_FAIL", "0:0", array=(70, 1)),
             jobcomp_line(71, "COMPLETED", "0:0"),
             jobcomp_line(70, "COMPLETED", "0:0", array=(70, 1))]
    records = parse_jobcomp(lines)
    assert records["70_1"].state == "COMPLETED"
    assert records["71"].state == "COMPLETED"


def test_parse_jobcomp_skips_lines_it_cannot_read() -> None:
    assert parse_jobcomp(["", "garbage", "UserId=alice JobState=FAILED"]) == {}


def test_cancelled_by_a_user_is_cancelled() -> None:
    assert parse_squeue("5_1|CANCELLED by 1000|None|0|")["5_1"].state == "CANCELLED"
    assert parse_sacct("5_1|CANCELLED by 1000|0:0|None")["5_1"].state == "CANCELLED"


# -- what a state means ----------------------------------------------------------------


def record(state: str, reason: str = "None", exit_code: int | None = 0,
           signal: int | None = 0, job_id: str = "878_1") -> Record:
    return Record(job_id, state, reason, exit_code, signal)


@pytest.mark.parametrize("reason", ["Priority", "Resources", "None", "", "BeginTime"])
def test_an_ordinary_wait_has_no_note(reason: str) -> None:
    assert describe(record("PENDING", reason), Resources()) == JobStatus(Status.QUEUED)


@pytest.mark.parametrize("reason", ["JobHeldUser", "JobHeldAdmin"])
def test_a_held_job_is_queued_with_a_note(reason: str) -> None:
    status = describe(record("PENDING", reason), Resources())
    assert status.status is Status.QUEUED and status.resubmit
    assert status.note == (f"job 878_1 is held ({reason}); release it with scontrol release "
                           "878_1")


def test_any_other_wait_is_explained() -> None:
    status = describe(record("PENDING", "PartitionConfig"), Resources())
    assert status.status is Status.QUEUED
    assert status.note == ("Slurm holds job 878_1 back: PartitionConfig (see scontrol show "
                           "job 878_1)")
    assert pending_note(record("PENDING", "QOSMaxJobsPerUserLimit")).startswith(
        "Slurm holds job 878_1 back: QOSMaxJobsPerUserLimit")


@pytest.mark.parametrize(("reason", "words"), [
    ("BadConstraints", "its constraints cannot be satisfied by any node"),
    ("DependencyNeverSatisfied", "a job it depends on failed"),
])
def test_a_wait_that_never_ends_is_an_error(reason: str, words: str) -> None:
    status = describe(record("PENDING", reason), Resources())
    assert status.status is Status.ERROR
    assert status.resubmit is False
    assert status.cause == f"Slurm will never start job 878_1: {words} ({reason})"


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETING", "CONFIGURING"])
def test_running_and_starting_states(state: str) -> None:
    expected = Status.QUEUED if state == "CONFIGURING" else Status.RUNNING
    assert describe(record(state), Resources()).status is expected


@pytest.mark.parametrize("state", ["SUSPENDED", "STOPPED"])
def test_suspended_and_stopped_jobs_are_suspended(state: str) -> None:
    # scontrol suspend, or SIGSTOP through Slurm: the job goes on when resumed.
    assert describe(record(state), Resources()).status is Status.SUSPENDED


def test_out_of_memory_names_the_limit() -> None:
    status = describe(record("OUT_OF_MEMORY", "OutOfMemory", 0, 125),
                      Resources.parse(h_vmem="1G"))
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.exit_status is None
    assert status.cause == ("out of memory: Slurm killed it over its memory limit of 1024 MB "
                            "(--mem-per-cpu=1024)")


def test_out_of_memory_of_several_cpus() -> None:
    status = describe(record("OUT_OF_MEMORY"),
                      Resources.parse(mem_free="100M", h_vmem="300M", num_slots=2))
    assert status.cause.startswith("out of memory")
    assert "limit of 600 MB (--mem-per-cpu=300 x 2 CPUs)" in status.cause


def test_out_of_memory_without_a_request() -> None:
    status = describe(record("OUT_OF_MEMORY"), Resources())
    assert status == JobStatus(Status.ENDED, "out of memory: Slurm killed it over its memory "
                               "limit", None, resubmit=False)


def test_timeout_is_not_resubmitted() -> None:
    status = describe(record("TIMEOUT", "TimeLimit", 0, 15), Resources.parse(h_rt=90))
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.cause == "runtime limit exceeded: Slurm ended it at its time limit (h_rt=90 s)"
    assert "h_rt" not in describe(record("TIMEOUT"), Resources()).cause


def test_cancelled_is_not_resubmitted() -> None:
    # scancel of a running job: squeue shows the signal, which must not count.
    for signal in (0, 15):
        status = describe(record("CANCELLED", exit_code=0, signal=signal), Resources())
        assert status == JobStatus(Status.ENDED, "cancelled in Slurm (scancel)", None,
                                   resubmit=False)


@pytest.mark.parametrize(("state", "words"), [
    ("NODE_FAIL", "its node failed (NODE_FAIL)"),
    ("BOOT_FAIL", "its node failed to boot (BOOT_FAIL)"),
    ("PREEMPTED", "preempted by Slurm for another job"),
])
def test_ends_that_were_not_the_jobs_fault_are_resubmitted(state: str, words: str) -> None:
    status = describe(record(state, signal=9), Resources())
    assert status == JobStatus(Status.ENDED, words, None, resubmit=True)


def test_a_failed_exit_reads_the_err_log(tmp_path: Path) -> None:
    err_log = tmp_path / "batch.0-2.1.0.err"
    err_log.write_text("starting\nERROR cannot reach the monitor at tcp://head:5555\n\n")
    status = describe(record("FAILED", "NonZeroExitCode", 3), Resources(), str(err_log))
    assert status.status is Status.ENDED and status.exit_status == 3 and status.resubmit
    assert status.cause == ("the runner could not reach the monitor (exit status 3); its log "
                            "ends: ERROR cannot reach the monitor at tcp://head:5555")


def test_a_failed_exit_without_a_log() -> None:
    status = describe(record("FAILED", "NonZeroExitCode", 1), Resources(),
                      "/nonexistent/job.err")
    assert status == JobStatus(Status.ENDED, "the runner ended without a result (exit status 1)",
                               1)


def test_a_job_killed_by_a_signal() -> None:
    killed = parse_sacct("30|FAILED|0:9|JobLaunchFailure")["30"]
    assert describe(killed, Resources()) == JobStatus(Status.ENDED, "killed by SIGKILL", None)
    from_squeue = parse_squeue("878_4|FAILED|JobLaunchFailure|9|")["878_4"]
    assert describe(from_squeue, Resources()).cause == "killed by SIGKILL"
    from_log = parse_jobcomp([jobcomp_line(52, "FAILED", "0:9")])["52"]
    assert describe(from_log, Resources()).cause == "killed by SIGKILL"


def test_completed_with_exit_status_0() -> None:
    status = describe(record("COMPLETED", exit_code=0), Resources())
    assert status == JobStatus(Status.ENDED, "the runner ended without a result (exit status 0)",
                               0)


def test_an_unusual_end_state_is_named() -> None:
    status = describe(record("SOMETHING_NEW", exit_code=None, signal=None), Resources())
    assert status == JobStatus(Status.ENDED, "ended in Slurm state SOMETHING_NEW", None)


# -- running Slurm's commands --------------------------------------------------------


def done(argv: Sequence[str], code: int = 0, out: str = "", err: str = ""
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(argv), code, out, err)


class Clock:
    """Stands in for a module's ``time``: a monotonic clock that sleeping moves on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def command_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(slurm_commands, "time", fake)
    return fake


def scripted(monkeypatch: pytest.MonkeyPatch,
             replies: list[subprocess.CompletedProcess[str]]) -> list[list[str]]:
    """Make Commands.once answer with ``replies`` in turn; return the argv it got."""
    calls: list[list[str]] = []

    def once(self: Commands, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        return replies.pop(0)

    monkeypatch.setattr(Commands, "once", once)
    return calls


@pytest.mark.parametrize("message", [
    "squeue: error: Unable to contact slurm controller (connect failure)",
    "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
    "scancel: error: Slurm temporarily unable to accept job, sleeping and retrying",
    "sbatch: error: Slurm controller not responding, sleeping and retrying",
])
def test_controller_errors_are_transient(message: str) -> None:
    assert is_transient(message)


@pytest.mark.parametrize("message", [
    "sbatch: error: Batch job submission failed: Invalid partition name specified",
    "slurm_load_jobs error: Invalid job id specified",
    "sbatch: error: Memory specification can not be satisfied",
])
def test_refusals_are_not_transient(message: str) -> None:
    assert not is_transient(message)


def test_transient_errors_are_retried_with_growing_pauses(
        monkeypatch: pytest.MonkeyPatch, command_clock: Clock) -> None:
    argv = ["squeue", "-h"]
    replies = [
        done(argv, 1, "", "squeue: error: Unable to contact slurm controller (connect failure)"),
        done(argv, 1, "", "squeue: error: Socket timed out on send/recv operation"),
        *[done(argv, 1, "", "slurm_load_jobs error: Unable to contact slurm controller "
                            "(connect failure)")] * 4,
        done(argv, 0, "878_1|RUNNING|None|0|\n", ""),
    ]
    calls = scripted(monkeypatch, replies)
    commands = Commands(retry_for=100, first_pause=0.5, longest_pause=4,
                        sleep=command_clock.sleep)
    result = commands.run(argv)
    assert result.stdout == "878_1|RUNNING|None|0|\n"
    assert command_clock.pauses == [0.5, 1, 2, 4, 4, 4]
    assert len(calls) == 7


def test_a_refusal_is_raised_at_once(monkeypatch: pytest.MonkeyPatch,
                                     command_clock: Clock) -> None:
    argv = ["sbatch", "--parsable", "job.sh"]
    calls = scripted(monkeypatch, [done(argv, 1, "", "sbatch: error: Batch job submission "
                                                     "failed: Invalid account\n")])
    commands = Commands(sleep=command_clock.sleep)
    with pytest.raises(SlurmError, match=r"^sbatch failed \(exit status 1\): Batch job "
                                         r"submission failed: Invalid account$"):
        commands.run(argv, before_retry=lambda: pytest.fail("no retry expected"))
    assert len(calls) == 1
    assert command_clock.pauses == []


def test_error_output_comes_as_one_line_without_the_tool_prefix() -> None:
    output = ("sbatch: error: Batch job submission failed: Invalid account\n\n"
              "  sbatch: warning: something else  \nplain line\n")
    assert one_line(output, "sbatch") == ("Batch job submission failed: Invalid account; "
                                          "warning: something else; plain line")
    assert one_line("squeue: error: Invalid user: nobody\n", "sbatch") == \
        "squeue: error: Invalid user: nobody"
    assert one_line("", "sbatch") == ""


def test_a_multi_line_refusal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["sbatch", "job.sh"]
    scripted(monkeypatch, [done(argv, 1, "", "sbatch: error: Memory specification can not "
                                              "be satisfied\nsbatch: error: Batch job "
                                              "submission failed: Requested node configuration "
                                              "is not available\n")])
    with pytest.raises(SlurmError) as refused:
        Commands().run(argv)
    assert str(refused.value) == (
        "sbatch failed (exit status 1): Memory specification can not be satisfied; Batch job "
        "submission failed: Requested node configuration is not available")


def test_a_failure_without_a_message() -> None:
    commands = Commands()
    with pytest.raises(SlurmError, match=r"false failed \(exit status 1\): no message"):
        commands.run(["false"])


def test_retrying_stops_after_retry_for(monkeypatch: pytest.MonkeyPatch,
                                        command_clock: Clock) -> None:
    argv = ["scancel", "878"]
    replies = [done(argv, 1, "", "scancel: error: Unable to contact slurm controller "
                                 "(connect failure)")] * 10
    calls = scripted(monkeypatch, replies)
    commands = Commands(retry_for=10, first_pause=0.5, longest_pause=4,
                        sleep=command_clock.sleep)
    with pytest.raises(SlurmError, match=r"scancel failed \(exit status 1\): .*Unable to "
                                         r"contact slurm controller"):
        commands.run(argv)
    # 0.5 + 1 + 2 + 4 = 7.5 s waited; another 4 s would pass the 10 s.
    assert command_clock.pauses == [0.5, 1, 2, 4]
    assert len(calls) == 5
    assert command_clock.now - 1000.0 <= 10


def test_before_retry_can_find_that_the_request_worked(monkeypatch: pytest.MonkeyPatch,
                                                       command_clock: Clock) -> None:
    argv = ["sbatch", "--parsable", "job.sh"]
    timed_out = done(argv, 124, "", "sbatch: Socket timed out: no answer in 60 s")
    calls = scripted(monkeypatch, [timed_out] * 5)
    looked: list[int] = []

    def before_retry() -> subprocess.CompletedProcess[str] | None:
        looked.append(1)
        return None if len(looked) < 2 else done([], 0, "4242", "")

    commands = Commands(sleep=command_clock.sleep)
    assert commands.run(argv, before_retry=before_retry).stdout == "4242"
    assert len(looked) == 2
    assert len(calls) == 2  # sbatch was not run a third time
    assert command_clock.pauses == [0.5, 1]


def test_a_hung_command_comes_back_as_a_transient_timeout() -> None:
    commands = Commands(timeout=0.1)
    result = commands.once(["sleep", "5"])
    assert result.returncode == 124
    assert result.stderr == "sleep: Socket timed out: no answer in 0.1 s"
    assert is_transient(result.stderr)


def test_a_timeout_is_retried(monkeypatch: pytest.MonkeyPatch, command_clock: Clock) -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        if len(calls) == 1:
            raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
        return done(argv, 0, "879\n", "")

    monkeypatch.setattr(slurm_commands.subprocess, "run", run)
    commands = Commands(timeout=7, sleep=command_clock.sleep)
    assert commands.run(["sbatch", "--parsable", "job.sh"]).stdout == "879\n"
    assert len(calls) == 2
    assert command_clock.pauses == [0.5]


def test_a_missing_tool_is_a_clear_error() -> None:
    commands = Commands(sleep=lambda seconds: pytest.fail("no retry expected"))
    with pytest.raises(SlurmError, match=r"gridmap-no-such-sbatch is not on PATH: install "
                                         r"Slurm's client tools \(Debian: slurm-client\)"):
        commands.run(["gridmap-no-such-sbatch", "--parsable"])


def test_the_environment_is_passed_to_the_command() -> None:
    result = Commands().once(["sh", "-c", "echo $GRIDMAP_TEST_VALUE"],
                             {"GRIDMAP_TEST_VALUE": "on", "PATH": os.defpath})
    assert result.stdout == "on\n"


# -- the scheduler, with fake Slurm commands -------------------------------------------


class FakeSlurm(Commands):
    """Slurm's tools as a test sets them up: sbatch numbers arrays from 878, squeue and
    sacct print ``squeue_lines`` and ``sacct_lines``; ``replies`` holds answers
    (exit status, stdout, stderr) a tool gives first. Every call is recorded."""

    def __init__(self) -> None:
        super().__init__(retry_for=60.0, first_pause=0.5, longest_pause=4.0)
        self.pauses: list[float] = []
        self.sleep = self.pauses.append
        self.calls: list[list[str]] = []  # each with the program's name, not its path
        self.programs: list[str] = []  # each program as it was run
        self.envs: list[dict[str, str] | None] = []
        self.replies: dict[str, list[tuple[int, str, str]]] = {}
        self.squeue_lines: list[str] = []
        self.sacct_lines: list[str] = []
        self.next_array = 878

    def once(self, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        self.programs.append(argv[0])
        argv = [os.path.basename(argv[0]), *argv[1:]]
        self.calls.append(argv)
        self.envs.append(None if env is None else dict(env))
        queued = self.replies.get(argv[0])
        if queued:
            code, out, err = queued.pop(0)
            return done(argv, code, out, err)
        if argv[0] == "sbatch":
            number = self.next_array
            self.next_array += 1
            return done(argv, 0, f"{number}\n")
        if argv[0] == "squeue":
            return done(argv, 0, "".join(f"{line}\n" for line in self.squeue_lines))
        if argv[0] == "sacct":
            return done(argv, 0, "".join(f"{line}\n" for line in self.sacct_lines))
        return done(argv)

    def of(self, tool: str) -> list[list[str]]:
        return [argv for argv in self.calls if argv[0] == tool]


def option(argv: Sequence[str], name: str) -> str:
    """The value of ``--name=value`` in ``argv``."""
    [value] = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


class Harness:
    def __init__(self, tmp_path: Path, *, cluster: Cluster | None = None,
                 options: SlurmOptions | None = None, max_running: int | None = None) -> None:
        self.tmp_path = tmp_path
        self.slurm = FakeSlurm()
        self.scheduler = SlurmScheduler(cluster or Cluster(), options or SlurmOptions(),
                                        max_running=max_running, commands=self.slurm)

    def launch_of(self, tasks: Sequence[int], *, name: str = "batch", attempt: int = 0,
                  add_env: Mapping[str, str] | None = None, copy_env: bool = False,
                  shell: str | None = None, runner: Sequence[str] = tuple(RUNNER),
                  **resources: Any) -> Launch:
        spec = JobSpec(function=print, resources=Resources.parse(**resources), name=name,
                       working_dir=str(self.tmp_path), copy_env=copy_env,
                       add_env=dict(add_env or {}), interpreting_shell=shell)
        return Launch(spec=spec, tasks=list(tasks), attempt=attempt, log_dir=str(self.tmp_path),
                      runner=list(runner), name=name)

    def launch(self, tasks: Sequence[int], **kwargs: Any) -> list[str]:
        ids: list[str] = self.scheduler.launch(self.launch_of(tasks, **kwargs))
        return ids

    def poll(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        return dict(self.scheduler.poll(ids))


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


def test_a_launch_is_one_sbatch_array(harness: Harness, tmp_path: Path) -> None:
    ids = harness.launch([4, 5, 6], name="my batch", h_rt=60, attempt=2)
    assert ids == ["878_1", "878_2", "878_3"]
    [argv] = harness.slurm.calls
    base = tmp_path / "my batch.4-6"
    script = Path(f"{base}.2.sh")
    assert argv[:4] == ["sbatch", "--parsable", "--array=1-3", "--job-name=my_batch"]
    assert option(argv, "output") == f"{base}.%a.2.out"
    assert option(argv, "error") == f"{base}.%a.2.err"
    assert option(argv, "chdir") == str(tmp_path)
    assert "--export=ALL" in argv
    assert option(argv, "comment").startswith("gridmap-")
    assert option(argv, "time") == "0:01:00"
    assert argv[-1] == str(script)
    assert argv.index("--time=0:01:00") < len(argv) - 1
    command = [*RUNNER, "--task", "4", "--attempt", "2", "--index-var", "SLURM_ARRAY_TASK_ID",
               "--first-index", "1"]
    assert script.read_text() == f"#!/bin/sh\nexec {shlex.join(command)}\n"


def test_the_job_script_runs_the_element_given_by_slurm(harness: Harness,
                                                        tmp_path: Path) -> None:
    launch = harness.launch_of([7, 8], runner=["printf", "%s\\n", "a b", "it's"])
    harness.scheduler.launch(launch)
    script = harness.slurm.calls[0][-1]
    result = subprocess.run(["sh", script], capture_output=True, text=True, timeout=10,
                            env={"PATH": os.defpath, "SLURM_ARRAY_TASK_ID": "2"}, check=True)
    assert result.stdout.splitlines() == [
        "a b", "it's", "--task", "7", "--attempt", "0", "--index-var", "SLURM_ARRAY_TASK_ID",
        "--first-index", "1"]


def test_the_script_uses_the_interpreting_shell(harness: Harness) -> None:
    harness.launch([0], shell="/bin/bash")
    script = Path(harness.slurm.calls[0][-1])
    assert script.read_text().startswith("#!/bin/bash\nexec ")


def test_a_throttle_when_max_running_is_set(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(max_running=5)
    harness.launch([0, 1, 2])
    assert "--array=1-3%5" in harness.slurm.calls[0]


def test_an_sbatch_answer_with_a_cluster_name(harness: Harness) -> None:
    harness.slurm.replies["sbatch"] = [(0, "900;cluster2\n", "")]
    assert harness.launch([0, 1]) == ["900_1", "900_2"]


def test_sbatch_without_a_job_id_is_an_error(harness: Harness) -> None:
    harness.slurm.replies["sbatch"] = [(0, "Submitted batch job\n", "")]
    with pytest.raises(SlurmError, match=r"sbatch printed no job id: 'Submitted batch job'"):
        harness.launch([0])


def test_options_come_from_the_job_fields(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(options=SlurmOptions(extra=("--qos=high",)))
    harness.launch([0], mem_free="1G", num_slots=2, queue="debug", gpu=1)
    argv = harness.slurm.calls[0]
    assert argv[-6:-1] == ["--mem-per-cpu=1024", "--cpus-per-task=2", "--partition=debug",
                           "--gres=gpu:1", "--qos=high"]


def test_a_refused_option_submits_nothing(harness: Harness) -> None:
    with pytest.raises(ResourceError):
        harness.launch([0], resources=["arch=lx-amd64"])
    assert harness.slurm.calls == []


def test_a_long_launch_is_split_into_arrays_slurm_accepts(
        tmp_path: Path, make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(cluster=Cluster(max_array_size=4))
    ids = harness.launch(list(range(10, 17)))
    assert ids == ["878_1", "878_2", "878_3", "879_1", "879_2", "879_3", "880_1"]
    sbatch = harness.slurm.of("sbatch")
    assert [option(argv, "array") for argv in sbatch] == ["1-3", "1-3", "1-1"]
    first_tasks = []
    for argv in sbatch:
        command = shlex.split(Path(argv[-1]).read_text().splitlines()[1])
        first_tasks.append(command[command.index("--task") + 1])
    assert first_tasks == ["10", "13", "16"]
    assert [Path(argv[-1]).name for argv in sbatch] == \
        ["batch.10-12.0.sh", "batch.13-15.0.sh", "batch.16-16.0.sh"]
    assert option(sbatch[1], "error") == str(tmp_path / "batch.13-15.%a.0.err")


def test_a_launch_that_fits_is_not_split(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(cluster=Cluster(max_array_size=4))
    harness.launch([0, 1, 2])
    assert len(harness.slurm.of("sbatch")) == 1


def test_a_refused_part_cancels_the_parts_already_queued(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(cluster=Cluster(max_array_size=3))
    harness.slurm.replies["sbatch"] = [
        (0, "878\n", ""),
        (1, "", "sbatch: error: Batch job submission failed: Invalid partition name "
                "specified"),
    ]
    with pytest.raises(SlurmError, match=r"^Slurm refused 2 job\(s\) named 'my batch': Batch "
                                         r"job submission failed: Invalid partition name "
                                         r"specified \(requested with: --partition=gpu\)$"):
        harness.launch([0, 1, 2, 3, 4], name="my batch", queue="gpu")
    assert len(harness.slurm.of("sbatch")) == 2
    assert harness.slurm.of("scancel") == [["scancel", "878"]]
    # Nothing of the refused launch is watched.
    assert harness.poll(["878_1", "878_2"]) == {}
    assert harness.slurm.of("squeue") == []


def test_a_refused_launch_without_options(harness: Harness) -> None:
    harness.slurm.replies["sbatch"] = [(1, "", "sbatch: error: Invalid account")]
    with pytest.raises(SlurmError, match=r"named 'batch': Invalid account "
                                         r"\(requested with: no options\)$"):
        harness.launch([0])
    assert harness.slurm.of("scancel") == []


def test_an_sbatch_that_timed_out_but_submitted_is_not_repeated(harness: Harness) -> None:
    harness.slurm.replies["sbatch"] = [(124, "", "sbatch: Socket timed out: no answer in 60 s")]
    original = harness.slurm.once

    def once(argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        if argv[0] == "squeue":
            token = option(harness.slurm.of("sbatch")[0], "comment")
            harness.slurm.squeue_lines = ["gridmap-other|700|", f"{token}|901|"]
        return original(argv, env)

    harness.slurm.once = once  # type: ignore[method-assign]
    assert harness.launch([0, 1]) == ["901_1", "901_2"]
    assert len(harness.slurm.of("sbatch")) == 1
    [squeue] = harness.slurm.of("squeue")
    assert squeue[:5] == ["squeue", "-h", "-t", "all", "--me"]
    assert harness.slurm.pauses == [0.5]


@pytest.mark.parametrize("submitted", [True, False])
def test_ctrl_c_during_sbatch_cancels_the_array_it_submitted_anyway(
        harness: Harness, submitted: bool) -> None:
    original = harness.slurm.once

    def once(argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        if argv[0].endswith("sbatch"):
            original(argv, env)
            if submitted:
                token = option(harness.slurm.of("sbatch")[0], "comment")
                harness.slurm.squeue_lines = ["gridmap-other|700|", f"{token}|878|"]
            raise KeyboardInterrupt  # while waiting for sbatch's answer
        return original(argv, env)

    harness.slurm.once = once  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        harness.launch([0, 1, 2])
    assert harness.slurm.of("scancel") == ([["scancel", "878"]] if submitted else [])
    assert harness.scheduler.poll(["878_1"]) == {}  # nothing of it is watched


def test_job_environment_drops_what_slurm_sets_per_job() -> None:
    outer = {
        "SLURM_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "76",
        "SLURM_CPUS_ON_NODE": "2", "SLURM_MEM_PER_CPU": "100", "SLURM_SUBMIT_DIR": "/home/a",
        "SLURM_JOB_NODELIST": "vm", "SLURM_CONF": "/etc/slurm/slurm.conf",
        "PATH": "/usr/bin:/bin", "MY_SETTING": "on", "SBATCH_ACCOUNT": "bio",
    }
    assert job_environment(outer) == {
        "SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin:/bin", "MY_SETTING": "on",
        "SBATCH_ACCOUNT": "bio",
    }


def test_sbatch_runs_without_the_outer_jobs_variables(harness: Harness,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
    monkeypatch.setenv("MY_SETTING", "on")
    harness.launch([0], copy_env=True, add_env={"EXTRA": "1", "SLURM_NODEID": "0"})
    [env] = harness.slurm.envs
    assert env is not None
    assert env["MY_SETTING"] == "on" and env["EXTRA"] == "1"
    assert env["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert not [name for name in env if name.startswith("SLURM_") and name != "SLURM_CONF"]


def test_sbatch_is_run_from_the_submitting_processs_path(
        harness: Harness, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tools(bin_dir, ["sbatch"])
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/site.conf")
    # Without copy_env the job sees only add_env, but sbatch still needs SLURM_CONF.
    harness.launch([0], add_env={"MY_SETTING": "on", "SLURM_JOB_ID": "77"})
    assert harness.slurm.programs == [str(bin_dir / "sbatch")]
    assert harness.slurm.envs == [{"MY_SETTING": "on", "SLURM_CONF": "/etc/slurm/site.conf"}]


def test_a_slurm_conf_of_the_job_is_kept(harness: Harness,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/site.conf")
    harness.launch([0], add_env={"SLURM_CONF": "/etc/slurm/other.conf"})
    assert harness.slurm.envs == [{"SLURM_CONF": "/etc/slurm/other.conf"}]


def squeue_call(arrays: str) -> list[str]:
    return ["squeue", "-h", "-r", "-t", "all", "-j", arrays, "-O", SQUEUE_FORMAT]


def test_poll_is_one_squeue_for_every_array(harness: Harness, tmp_path: Path) -> None:
    first = harness.launch([0, 1, 2, 3])
    second = harness.launch([4, 5])
    (tmp_path / "batch.0-3.3.0.err").write_text("ERROR cannot import module 'analysis'\n")
    harness.slurm.squeue_lines = [
        "878_1|RUNNING|None|0|", "878_2|PENDING|Priority|0|", "878_3|FAILED|NonZeroExitCode|512|",
        "878_4|PENDING|JobHeldAdmin|0|", "879_1|COMPLETED|None|0|",
        "879_2|FAILED|JobLaunchFailure|9|", "999_1|RUNNING|None|0|",
    ]
    answer = harness.poll(first + second)
    assert harness.slurm.of("squeue") == [squeue_call("878,879")]
    assert set(answer) == {*first, *second}
    assert answer["878_1"] == JobStatus(Status.RUNNING)
    assert answer["878_2"] == JobStatus(Status.QUEUED)
    assert answer["878_3"] == JobStatus(
        Status.ENDED, "the runner could not start (exit status 2); its log ends: ERROR cannot "
        "import module 'analysis'", 2)
    assert answer["878_4"].status is Status.QUEUED
    assert "scontrol release 878_4" in answer["878_4"].note
    assert answer["879_1"] == JobStatus(Status.ENDED, "the runner ended without a result "
                                        "(exit status 0)", 0)
    assert answer["879_2"] == JobStatus(Status.ENDED, "killed by SIGKILL", None)
    # Ended jobs are no longer asked about; 879 has none left.
    harness.poll(first + second)
    assert harness.slurm.of("squeue")[-1] == squeue_call("878")


def test_poll_names_arrays_in_numeric_order(harness: Harness) -> None:
    harness.slurm.next_array = 99
    ids = harness.launch([0]) + harness.launch([1]) + harness.launch([2])
    harness.poll(ids)
    assert harness.slurm.of("squeue") == [squeue_call("99,100,101")]


def test_poll_of_unknown_ids_asks_nothing(harness: Harness) -> None:
    assert harness.poll(["5_1", "6"]) == {}
    assert harness.slurm.calls == []


def test_a_job_squeue_forgot_is_looked_up_in_accounting(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(accounting=True))
    ids = harness.launch([0, 1, 2])
    harness.slurm.sacct_lines = ["878_1|COMPLETED|0:0|None", "878_1.batch|COMPLETED|0:0|",
                                 "878_2|OUT_OF_MEMORY|0:125|OutOfMemory"]
    assert harness.poll(ids) == {}  # just gone: slurmctld may still be writing its end
    clock.now += 1.9
    assert harness.poll(ids) == {}
    assert harness.slurm.of("sacct") == []
    clock.now += 0.1
    answer = harness.poll(ids)
    assert harness.slurm.of("sacct") == [["sacct", "-X", "-n", "-P", "-j", "878_1,878_2,878_3",
                                          "-o", "JobID,State,ExitCode,Reason"]]
    assert answer["878_1"] == JobStatus(Status.ENDED, "the runner ended without a result "
                                        "(exit status 0)", 0)
    assert answer["878_2"].cause.startswith("out of memory")
    assert "878_3" not in answer
    assert len(harness.slurm.of("squeue")) == 3
    # Only the job nobody knows is asked about again, until it is given up.
    clock.now += 27.9
    assert harness.poll(ids) == {}
    assert harness.slurm.of("sacct")[-1][5] == "878_3"
    clock.now += 0.1
    answer = harness.poll(ids)
    assert set(answer) == {"878_3"}
    assert answer["878_3"].status is Status.UNKNOWN
    assert answer["878_3"].cause == ("Slurm no longer knows job 878_3 and has no record of its "
                                     "end")
    calls = len(harness.slurm.calls)
    assert harness.poll(ids) == {}
    assert len(harness.slurm.calls) == calls


def test_a_job_listed_again_starts_its_absence_over(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(accounting=True))
    [job_id] = harness.launch([0])
    harness.poll([job_id])
    clock.now += 20
    harness.slurm.squeue_lines = ["878_1|RUNNING|None|0|"]
    assert harness.poll([job_id]) == {job_id: JobStatus(Status.RUNNING)}
    harness.slurm.squeue_lines = []
    clock.now += 1
    assert harness.poll([job_id]) == {}
    clock.now += 29.9
    assert harness.poll([job_id]) == {}
    clock.now += 0.1
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN


def test_without_accounting_the_completion_log_is_read(
        tmp_path: Path, make_harness: Callable[..., Harness], clock: Clock) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text("\n".join([
        jobcomp_line(880, "COMPLETED", "0:0", array=(878, 1)),
        jobcomp_line(881, "FAILED", "0:9", name="a b=c JobId=5", array=(878, 2)),
        jobcomp_line(882, "NODE_FAIL", "0:0", array=(878, 3)),
        jobcomp_line(883, "COMPLETED", "0:0", array=(999, 1)),
        jobcomp_line(882, "TIMEOUT", "0:0", array=(878, 3)),
    ]) + "\n")
    harness = make_harness(cluster=Cluster(jobcomp_log=str(log)))
    ids = harness.launch([0, 1, 2, 3], h_rt=60)
    harness.poll(ids)
    clock.now += 2
    answer = harness.poll(ids)
    assert harness.slurm.of("sacct") == []
    assert set(answer) == {"878_1", "878_2", "878_3"}
    assert answer["878_1"].exit_status == 0
    assert answer["878_2"] == JobStatus(Status.ENDED, "killed by SIGKILL", None)
    assert answer["878_3"].cause.startswith("runtime limit exceeded")  # the later line
    assert answer["878_3"].resubmit is False


def test_a_failed_sacct_falls_back_to_the_completion_log(
        tmp_path: Path, make_harness: Callable[..., Harness], clock: Clock) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text(jobcomp_line(880, "FAILED", "3:0", array=(878, 1)) + "\n")
    harness = make_harness(cluster=Cluster(accounting=True, jobcomp_log=str(log)))
    [job_id] = harness.launch([0])
    harness.slurm.replies["sacct"] = [(1, "", "sacct: error: Problem talking to the database: "
                                              "Connection refused")]
    harness.poll([job_id])
    clock.now += 2
    status = harness.poll([job_id])[job_id]
    assert len(harness.slurm.of("sacct")) == 1
    assert status.status is Status.ENDED and status.exit_status == 3


def test_an_unreadable_completion_log_knows_nothing(
        tmp_path: Path, make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(jobcomp_log=str(tmp_path / "gone.log")))
    [job_id] = harness.launch([0])
    harness.poll([job_id])
    clock.now += 2
    assert harness.poll([job_id]) == {}
    clock.now += 28
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN


def test_nobody_to_ask_means_unknown_after_30_seconds(harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0])
    assert harness.poll([job_id]) == {}
    clock.now += 29.9
    assert harness.poll([job_id]) == {}
    clock.now += 0.1
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN
    assert harness.slurm.of("sacct") == []


def test_invalid_job_id_means_slurm_knows_none_of_them(harness: Harness, clock: Clock) -> None:
    ids = harness.launch([0, 1])
    harness.slurm.replies["squeue"] = [
        (1, "", "slurm_load_jobs error: Invalid job id specified")] * 3
    assert harness.poll(ids) == {}
    clock.now += 30
    answer = harness.poll(ids)
    assert {status.status for status in answer.values()} == {Status.UNKNOWN}
    assert set(answer) == set(ids)


def test_a_transient_squeue_failure_makes_the_next_polls_wait(harness: Harness,
                                                              clock: Clock) -> None:
    ids = harness.launch([0])
    harness.slurm.replies["squeue"] = [(1, "", CONTROLLER_DOWN)] * 2
    harness.slurm.squeue_lines = ["878_1|RUNNING|None|0|"]
    assert harness.poll(ids) == {}
    assert len(harness.slurm.of("squeue")) == 1
    clock.now += 0.9
    assert harness.poll(ids) == {}
    assert len(harness.slurm.of("squeue")) == 1  # not asked during the pause
    clock.now += 0.1
    assert harness.poll(ids) == {}  # fails again: a longer pause
    assert len(harness.slurm.of("squeue")) == 2
    clock.now += 1.9
    assert harness.poll(ids) == {}
    assert len(harness.slurm.of("squeue")) == 2
    clock.now += 0.1
    assert harness.poll(ids) == {"878_1": JobStatus(Status.RUNNING)}
    assert harness.slurm.pauses == []  # a poll never sleeps
    # Answering again ends the pauses: the next failure waits 1 s again.
    harness.slurm.replies["squeue"] = [(1, "", CONTROLLER_DOWN)]
    harness.poll(ids)
    clock.now += 1
    assert harness.poll(ids) == {"878_1": JobStatus(Status.RUNNING)}


def test_an_absence_is_not_counted_while_squeue_fails(harness: Harness, clock: Clock) -> None:
    ids = harness.launch([0])
    harness.slurm.replies["squeue"] = [(1, "", CONTROLLER_DOWN)]
    assert harness.poll(ids) == {}
    clock.now += 31
    assert harness.poll(ids) == {}  # the first answer: only now noted as absent


def test_another_squeue_failure_is_an_error(harness: Harness) -> None:
    ids = harness.launch([0])
    harness.slurm.replies["squeue"] = [(1, "", "squeue: error: Invalid user: nobody")]
    with pytest.raises(SlurmError, match=r"squeue failed \(exit status 1\): .*Invalid user"):
        harness.poll(ids)


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


# -- the cluster and the backend -----------------------------------------------------


SCONTROL_CONFIG = """\
Configuration data as of 2024-05-01T10:00:00
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = cluster
JobCompLoc              = {log}
JobCompType             = jobcomp/filetxt
MaxArraySize            = 5000
"""


def test_read_cluster(tmp_path: Path) -> None:
    log = tmp_path / "jobcomp.log"
    log.write_text("")
    slurm = FakeSlurm()
    slurm.replies = {
        "scontrol": [(0, SCONTROL_CONFIG.format(log=log), "")],
        "sinfo": [(0, "vm\nvm\nnode2\n", ""), (0, "debug\nlong\ndebug\n", "")],
    }
    cluster = read_cluster(slurm)
    assert cluster == Cluster(max_array_size=5000, accounting=True, jobcomp_log=str(log),
                              nodes=("vm", "node2"), partitions=("debug", "long"))
    assert slurm.calls == [["scontrol", "show", "config"], ["sinfo", "-h", "-N", "-o", "%N"],
                           ["sinfo", "-h", "-o", "%R"]]


def test_read_cluster_without_sinfo_or_a_readable_log(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    config = SCONTROL_CONFIG.format(log=tmp_path / "missing.log").replace(
        "accounting_storage/slurmdbd", "accounting_storage/none").replace("5000", "many")
    slurm.replies = {"scontrol": [(0, config, "")],
                     "sinfo": [(1, "", "sinfo: error: Invalid user")]}
    assert read_cluster(slurm) == Cluster(max_array_size=1001, accounting=False,
                                          jobcomp_log=None, nodes=None, partitions=None)


def test_slurm_options_from_the_backend_settings() -> None:
    cluster = Cluster(nodes=("n1", "n2"), partitions=("debug",))
    settings = {"gpu_resource": "tesla", "sbatch_options": "--qos=high --mail-type=NONE"}
    assert slurm_options(settings, cluster) == SlurmOptions(
        gpu_resource="tesla", extra=("--qos=high", "--mail-type=NONE"), nodes=("n1", "n2"),
        partitions=("debug",))
    assert slurm_options({}) == SlurmOptions()
    assert slurm_options({"native": "-C avx2"}, extra_key="native").extra == ("-C", "avx2")


def test_an_unknown_partition_is_refused_naming_the_known_ones() -> None:
    cluster = Cluster(partitions=("debug", "long"))
    with pytest.raises(ResourceError, match=r"queue='gpu': Slurm has no partition 'gpu'; its "
                                            r"partitions are: debug, long \(sinfo -s\)"):
        check_partitions(make_spec(queue="gpu"), cluster)
    with pytest.raises(ResourceError, match=r"no partition 'x'; its"):
        check_partitions(make_spec(queue="debug,x"), cluster)


def test_known_partitions_pass() -> None:
    cluster = Cluster(partitions=("debug", "long"))
    check_partitions(make_spec(queue="debug,long"), cluster)
    check_partitions(make_spec(), cluster)
    check_partitions(make_spec(queue="all.q"), cluster)  # the default partition
    check_partitions(make_spec(queue="gpu"), Cluster(partitions=None))  # not known


def test_the_backend_checks_a_job_against_its_cluster() -> None:
    backend = SlurmBackend()
    backend._cluster = Cluster(nodes=("n1", "n2"), partitions=("debug",))
    backend.check(make_spec(queue="debug", white_list=["n1", "n2"]))
    with pytest.raises(ResourceError, match=r"no partition 'gpu'"):
        backend.check(make_spec(queue="gpu"))
    with pytest.raises(ResourceError, match=r"does not know: n9"):
        backend.check(make_spec(white_list=["n1", "n9"]))


def fake_tools(directory: Path, names: Sequence[str], scontrol: str = "exit 0") -> None:
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text(f"#!/bin/sh\n{scontrol if name == 'scontrol' else 'exit 0'}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert controller_problem() == (
        "sbatch, squeue, scancel, scontrol, sinfo are not on PATH: install Slurm's client "
        "tools (Debian: slurm-client) or load your site's Slurm module")
    fake_tools(tmp_path, ["squeue", "scancel", "scontrol", "sinfo"])
    problem = controller_problem()
    assert problem is not None
    assert problem.startswith("sbatch is not on PATH: ") and "slurm-client" in problem


def test_a_missing_slurm_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tools(tmp_path / "bin", ["sbatch", "squeue", "scancel", "scontrol", "sinfo"])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert controller_problem() == (f"SLURM_CONF={tmp_path / 'slurm.conf'} does not exist: "
                                    "point it at slurm.conf, or unset it")


@pytest.mark.parametrize(("ping", "expected"), [
    ("echo 'Slurmctld(primary) at vm is UP'", None),
    ("echo 'Slurmctld(primary) at vm is DOWN'",
     "slurmctld does not answer (scontrol ping: Slurmctld(primary) at vm is DOWN): start "
     "Slurm or check slurm.conf"),
    ("exit 1", "slurmctld does not answer (scontrol ping: no output): start Slurm or check "
               "slurm.conf"),
])
def test_the_controller_is_pinged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  ping: str, expected: str | None) -> None:
    fake_tools(tmp_path / "bin", ["sbatch", "squeue", "scancel", "scontrol", "sinfo"],
               scontrol=ping)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("SLURM_CONF", raising=False)
    assert controller_problem() == expected


def test_available_means_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    availability = SlurmBackend().availability()
    assert availability.usable is False and "slurm-client" in availability.reason



# -- regressions -------------------------------------------------------------------------


def test_the_prefix_is_stripped_when_the_tool_is_run_by_its_full_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["/usr/bin/sbatch", "job.sh"]
    scripted(monkeypatch, [done(argv, 1, "", "sbatch: error: Batch job submission failed: "
                                              "Invalid account\n")])
    with pytest.raises(SlurmError) as refused:
        Commands().run(argv)
    assert str(refused.value) == ("sbatch failed (exit status 1): Batch job submission "
                                  "failed: Invalid account")


def test_a_last_timeout_still_looks_for_what_it_submitted(monkeypatch: pytest.MonkeyPatch,
                                                          command_clock: Clock) -> None:
    argv = ["sbatch", "--parsable", "job.sh"]
    timed_out = done(argv, 124, "", "sbatch: Socket timed out: no answer in 60 s")
    scripted(monkeypatch, [timed_out] * 2)
    found = done([], 0, "905", "")
    looks: list[int] = []

    def before_retry() -> subprocess.CompletedProcess[str] | None:
        looks.append(1)
        return found if len(looks) == 2 else None  # only the last attempt went through

    commands = Commands(retry_for=1, first_pause=0.5, sleep=command_clock.sleep)
    assert commands.run(argv, before_retry=before_retry) is found


def test_parse_jobcomp_ignores_keys_written_inside_a_job_name() -> None:
    line = jobcomp_line(61, "FAILED", "2:0", name="x JobState=COMPLETED ArrayJobId=7 "
                                                 "ArrayTaskId=1")
    assert parse_jobcomp([line]) == {"61": Record("61", "FAILED", "", 2, 0)}


def test_a_white_list_of_one_unknown_host_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"does not know: n9; its nodes are: n1, n2"):
        job_options(make_spec(white_list=["n9"]), SlurmOptions(nodes=("n1", "n2")))


def test_a_percent_in_the_job_name_is_not_expanded_by_slurm(harness: Harness,
                                                            tmp_path: Path) -> None:
    harness.launch([0, 1], name="run%j", attempt=0)
    [argv] = harness.slurm.calls
    assert option(argv, "output") == f"{tmp_path}/run%%j.0-1.%a.0.out"
    # The log read for a cause of death is the file Slurm writes.
    job = harness.scheduler.jobs.job("878_2")
    assert job is not None and job.err_log == f"{tmp_path}/run%j.0-1.2.0.err"


def test_a_jobs_own_comment_is_kept_and_not_replaced_by_the_token(harness: Harness) -> None:
    harness.launch([0], resources=["--comment=mine"])
    [argv] = harness.slurm.calls
    assert [a for a in argv if a.startswith("--comment=")] == ["--comment=mine"]
