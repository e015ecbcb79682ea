"""The Grid Engine backend's translation logic, without a cluster or libdrmaa: job
fields into qsub options, ``qstat -xml`` into job and queue states, DRMAA endings
into causes of death, and the scheduler's bookkeeping driven through a fake DRMAA
connection and a fake qstat.

The ``gridmap_sge`` imports carry an ignore because the backend is installed with
an import hook that mypy cannot follow; with ``MYPYPATH=backends/sge`` they are
type-checked and the ignore is harmless (``unused-ignore``).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from gridmap_sge import scheduler as sge_scheduler
from gridmap_sge.endings import describe_ending
from gridmap_sge.native import (
    NativeOptions,
    job_name,
    native_specification,
)
from gridmap_sge.qstat import (
    QstatError,
    Snapshot,
    expand_tasks,
    parse_qstat,
    queue_note,
)
from gridmap_sge.scheduler import (
    SgeScheduler,
    job_environment,
)

from gridmap_core.backend import JobSpec
from gridmap_core.backend.drmaa import INCREMENT_PLACEHOLDER, DrmaaConnection, DrmaaError, Ending
from gridmap_core.backend.scheduler import JobStatus, Launch, Status
from gridmap_core.model.resources import ResourceError, Resources

pytestmark = pytest.mark.timeout(30)

MB = 2**20


def test_the_backend_modules_do_not_load_drmaa() -> None:
    # Importing the drmaa package loads libdrmaa, which a machine without Grid Engine
    # lacks; only opening a session may do that.
    code = ("import sys, gridmap_sge.backend, gridmap_sge.scheduler, gridmap_sge.endings, "
            "gridmap_sge.qstat, gridmap_sge.native; "
            "assert 'drmaa' not in sys.modules, 'drmaa imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


# -- native specification ------------------------------------------------------------


def make_spec(*, shell: str | None = None, extra: Mapping[str, str] | None = None,
              **resources: Any) -> JobSpec:
    return JobSpec(function=print, resources=Resources.parse(**resources),
                   interpreting_shell=shell, extra=dict(extra or {}))


def native(spec: JobSpec, options: NativeOptions | None = None, *, array: bool = False) -> str:
    text: str = native_specification(spec, options or NativeOptions(), array=array)
    return text


def test_nothing_requested_is_an_empty_specification() -> None:
    assert native(make_spec()) == ""


def test_h_vmem_keeps_a_spelling_grid_engine_reads() -> None:
    assert native(make_spec(h_vmem="300M")) == "-l h_vmem=300M"
    assert native(make_spec(h_vmem="4g")) == "-l h_vmem=4g"
    assert native(make_spec(h_vmem=" 2G ")) == "-l h_vmem=2G"


def test_h_vmem_grid_engine_cannot_read_goes_as_bytes() -> None:
    # Grid Engine has no fractions and no T suffix.
    assert native(make_spec(h_vmem="1.5G")) == f"-l h_vmem={3 * 2**29}"
    assert native(make_spec(h_vmem="1T")) == f"-l h_vmem={2**40}"
    assert native(make_spec(h_vmem="4 G")) == f"-l h_vmem={4 * 2**30}"


def test_mem_free_only_when_the_site_uses_it() -> None:
    spec = make_spec(mem_free="100M")
    assert native(spec) == ""
    assert native(spec, NativeOptions(use_mem_free=True)) == "-l mem_free=100M"
    both = make_spec(mem_free="0.5G", h_vmem="1G")
    assert native(both, NativeOptions(use_mem_free=True)) == \
        f"-l h_vmem=1G -l mem_free={2**29}"


def test_h_rt_in_seconds() -> None:
    assert native(make_spec(h_rt="1:30:00")) == "-l h_rt=5400"
    assert native(make_spec(h_rt="10:00")) == "-l h_rt=600"
    assert native(make_spec(h_rt=90)) == "-l h_rt=90"


def test_gpu_with_the_default_and_a_site_resource() -> None:
    assert native(make_spec(gpu=0)) == ""
    assert native(make_spec(gpu=2)) == "-l gpu=2"
    assert native(make_spec(gpu=1), NativeOptions(gpu_resource="nvidia_gpu")) == \
        "-l nvidia_gpu=1"


def test_slots_need_a_parallel_environment() -> None:
    assert native(make_spec(num_slots=4, par_env="smp")) == "-pe smp 4"
    assert native(make_spec(num_slots=1, par_env="smp")) == ""
    with pytest.raises(ResourceError, match=r"num_slots=4 needs a parallel environment"):
        native(make_spec(num_slots=4))


def test_queue_and_white_list() -> None:
    assert native(make_spec(queue="all.q")) == "-q all.q"
    assert native(make_spec(queue="all.q", white_list=["a", "b"])) == "-q all.q@a,all.q@b"
    assert native(make_spec(queue="all.q,long.q", white_list=["a", "b"])) == \
        "-q all.q@a,all.q@b,long.q@a,long.q@b"
    # Without a queue the host list is a request, not a queue list.
    assert native(make_spec(white_list=["a", "b"])) == "-l hostname=a|b"


def test_raw_resources_are_requests_or_options() -> None:
    spec = make_spec(resources=["arch=lx-amd64", "-R y", " -p -10", "-l scratch=1"])
    assert native(spec) == "-l arch=lx-amd64 -R y -p -10 -l scratch=1"


def test_shell_project_and_validation_level() -> None:
    assert native(make_spec(shell="/bin/bash")) == "-S /bin/bash"
    assert native(make_spec(extra={"project": "genomics"})) == "-P genomics"
    assert native(make_spec(extra={"validation_level": "v"})) == "-w v"
    assert native(make_spec(extra={"project": "", "validation_level": ""})) == ""
    with pytest.raises(ResourceError, match=r"validation_level='x'.*e, w, n, v, p"):
        native(make_spec(extra={"validation_level": "x"}))


def test_os_distribution_and_minor_are_requests() -> None:
    spec = make_spec(extra={"os_distribution": "debian", "os_minor": "12"})
    assert native(spec) == "-l os_distribution=debian -l os_minor=12"


def test_array_throttle_only_for_arrays() -> None:
    spec = make_spec(h_rt=60)
    throttled = NativeOptions(max_running=5)
    assert native(spec, throttled, array=True) == "-l h_rt=60 -tc 5"
    assert native(spec, throttled, array=False) == "-l h_rt=60"
    assert native(spec, NativeOptions(), array=True) == "-l h_rt=60"


def test_site_options_are_appended_as_they_are() -> None:
    site = NativeOptions(extra="-R y -m n")
    assert native(make_spec(queue="all.q"), site) == "-q all.q -R y -m n"
    assert native(make_spec(), site) == "-R y -m n"


def test_every_field_in_one_specification() -> None:
    spec = make_spec(h_vmem="2G", mem_free="1G", h_rt="0:05:00", gpu=1, num_slots=2,
                     par_env="smp", queue="all.q", white_list=["node1"],
                     resources=["arch=lx-amd64"], shell="/bin/sh",
                     extra={"project": "p1", "validation_level": "w",
                            "os_distribution": "debian"})
    options = NativeOptions(use_mem_free=True, max_running=3, extra="-R y")
    assert native(spec, options, array=True).split() == [
        "-l", "h_vmem=2G", "-l", "mem_free=1G", "-l", "h_rt=300", "-l", "gpu=1",
        "-l", "os_distribution=debian", "-l", "arch=lx-amd64", "-pe", "smp", "2",
        "-q", "all.q@node1", "-S", "/bin/sh", "-P", "p1", "-w", "w", "-tc", "3",
        "-R", "y",
    ]


@pytest.mark.parametrize("spec", [
    make_spec(queue="all q"),
    make_spec(white_list=["node 1"]),
    make_spec(queue="all.q", white_list=["node 1"]),
    make_spec(resources=["arch = lx-amd64"]),
    make_spec(resources=[""]),
    make_spec(shell="/bin/bash -l"),
    make_spec(extra={"project": "my project"}),
    make_spec(extra={"os_distribution": "red hat"}),
    make_spec(num_slots=2, par_env="s m p"),
], ids=["queue", "white_list", "queue_hosts", "resource", "empty", "shell", "project",
        "os", "par_env"])
def test_values_with_spaces_are_refused(spec: JobSpec) -> None:
    # Grid Engine splits a native specification at white space without unquoting.
    with pytest.raises(ResourceError, match=r"cannot be passed to Grid Engine"):
        native(spec)


@pytest.mark.parametrize(("name", "expected"), [
    ("gridmap_job", "gridmap_job"),
    ("my job", "my_job"),
    ("a/b:c", "a_b_c"),
    ("x@y\\z*?", "x_y_z__"),
    ("tab\there", "tab_here"),
    ("3rd_try", "j3rd_try"),
    ("", "gridmap_job"),
])
def test_job_name(name: str, expected: str) -> None:
    assert job_name(name) == expected


# -- qstat ---------------------------------------------------------------------------


def test_expand_tasks() -> None:
    assert expand_tasks("7") == [7]
    assert expand_tasks("17-30:1") == list(range(17, 31))
    assert expand_tasks("1,3,5-9:2") == [1, 3, 5, 7, 9]
    assert expand_tasks("2-10:4") == [2, 6, 10]
    assert expand_tasks("") == []


# `qstat -xml -u alice` as Grid Engine 8.1.9 prints it: running elements one by one
# (with their element number in <tasks>), pending ones as a range, a non-array job
# without <tasks>, a held job and one in error state.
QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>r</state>
      <JAT_start_time>2024-05-02T10:15:32.120</JAT_start_time>
      <queue_name>all.q@node1</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>r</state>
      <JAT_start_time>2024-05-02T10:15:32.124</JAT_start_time>
      <queue_name>all.q@node1</queue_name>
      <slots>1</slots>
      <tasks>16</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>18</JB_job_number>
      <JAT_prio>0.50500</JAT_prio>
      <JB_name>single</JB_name>
      <JB_owner>alice</JB_owner>
      <state>r</state>
      <JAT_start_time>2024-05-02T10:16:01.003</JAT_start_time>
      <queue_name>all.q@node2</queue_name>
      <slots>2</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>qw</state>
      <JB_submission_time>2024-05-02T10:15:30.001</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>17-30:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>19</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>held</JB_name>
      <JB_owner>alice</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2024-05-02T10:16:10.500</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>21</JB_job_number>
      <JAT_prio>0.50500</JAT_prio>
      <JB_name>broken</JB_name>
      <JB_owner>alice</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2024-05-02T10:17:44.912</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
  </job_info>
</job_info>
"""

# `qstat -f -xml -u alice`: queue instances, with the running jobs inside them; an
# instance whose daemon does not answer, and one that can run jobs (no <state>).
QSTAT_FULL_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <Queue-List>
      <name>all.q@node1</name>
      <qtype>BIP</qtype>
      <slots_used>1</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>4</slots_total>
      <load_avg>0.01000</load_avg>
      <arch>lx-amd64</arch>
      <job_list state="running">
        <JB_job_number>16</JB_job_number>
        <JAT_prio>0.55500</JAT_prio>
        <JB_name>batch</JB_name>
        <JB_owner>alice</JB_owner>
        <state>r</state>
        <JAT_start_time>2024-05-02T10:15:32.120</JAT_start_time>
        <slots>1</slots>
        <tasks>1</tasks>
      </job_list>
    </Queue-List>
    <Queue-List>
      <name>all.q@node2</name>
      <qtype>BIP</qtype>
      <slots_used>0</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>4</slots_total>
      <arch>lx-amd64</arch>
      <state>au</state>
    </Queue-List>
    <Queue-List>
      <name>long.q@node2</name>
      <qtype>BIP</qtype>
      <slots_used>0</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>1</slots_total>
      <arch>lx-amd64</arch>
      <state>d</state>
    </Queue-List>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>qw</state>
      <JB_submission_time>2024-05-02T10:15:30.001</JB_submission_time>
      <slots>1</slots>
      <tasks>2-4:1</tasks>
    </job_list>
  </job_info>
</job_info>
"""


def test_parse_qstat_jobs_by_number_and_element() -> None:
    snapshot = parse_qstat(QSTAT_XML)
    assert snapshot.queues == {}
    assert snapshot.state("16.1") == "r"
    assert snapshot.state("16.16") == "r"
    assert snapshot.state("16.17") == "qw"
    assert snapshot.state("16.20") == "qw"
    assert snapshot.state("16.30") == "qw"
    assert snapshot.state("16.31") is None
    assert snapshot.state("16.2") is None  # ended, or never part of the array
    assert snapshot.state("16") is None  # an array is only listed by its elements
    assert snapshot.state("18") == "r"
    assert snapshot.state("19") == "hqw"
    assert snapshot.state("21") == "Eqw"
    assert snapshot.state("123") is None
    assert len(snapshot.jobs) == 2 + 14 + 3


def test_parse_qstat_full_reads_queue_instances() -> None:
    snapshot = parse_qstat(QSTAT_FULL_XML)
    # The running job's own <state> inside a Queue-List is not the queue's state.
    assert snapshot.queues == {"all.q@node1": "", "all.q@node2": "au", "long.q@node2": "d"}
    assert snapshot.state("16.1") == "r"
    assert [snapshot.state(f"16.{i}") for i in (2, 3, 4)] == ["qw"] * 3


def test_parse_qstat_without_jobs() -> None:
    empty = ("<?xml version='1.0'?>\n<job_info  xmlns:xsd=\"x\">\n  <queue_info>\n"
             "  </queue_info>\n  <job_info>\n  </job_info>\n</job_info>\n")
    snapshot = parse_qstat(empty)
    assert snapshot.jobs == {} and snapshot.queues == {}


@pytest.mark.parametrize("text", ["", "<job_info><queue_info>", "error: no such user\n"])
def test_unparsable_qstat_is_a_qstat_error(text: str) -> None:
    with pytest.raises(QstatError, match="could not parse"):
        parse_qstat(text)


def test_queue_note_when_every_instance_is_unreachable() -> None:
    note = queue_note({"all.q@node1": "u", "all.q@node2": "u"})
    assert note.startswith("no queue instance can run them: ")
    assert "all.q@node1 is in state u (its execution daemon does not answer)" in note
    assert "all.q@node2 is in state u (its execution daemon does not answer)" in note


def test_queue_note_names_every_reason_of_an_instance() -> None:
    note = queue_note({"all.q@node1": "au"})
    assert note == ("no queue instance can run them: all.q@node1 is in state au (a load "
                    "threshold is exceeded; its execution daemon does not answer)")


def test_queue_note_is_empty_while_one_instance_can_run_jobs() -> None:
    assert queue_note({"all.q@node1": "u", "all.q@node2": ""}) == ""
    assert queue_note({}) == ""


def test_queue_note_limited_to_the_wanted_queues() -> None:
    queues = {"all.q@node1": "", "long.q@node1": "d", "long.q@node2": "E"}
    note = queue_note(queues, ["long.q"])
    assert "long.q@node1 is in state d (it is disabled)" in note
    assert "long.q@node2 is in state E" in note
    assert "all.q" not in note
    assert queue_note(queues, ["all.q"]) == ""
    assert queue_note(queues, ["long.q@node2"]).endswith(
        "long.q@node2 is in state E (it is in error state (see `qstat -explain E`))")
    assert queue_note(queues, ["all.q", "long.q"]) == ""
    assert queue_note(queues, [""]) == ""  # an empty name limits nothing


def test_queue_note_for_a_queue_that_does_not_exist() -> None:
    queues = {"all.q@node1": ""}
    assert queue_note(queues, ["gpu.q"]) == "no queue instance of gpu.q exists"
    assert queue_note(queues, ["gpu.q", "big.q"]) == "no queue instance of gpu.q, big.q exists"


# -- endings -------------------------------------------------------------------------


def test_aborted_without_usage_was_deleted_before_it_started() -> None:
    status = describe_ending(Ending("5", aborted=True), Resources())
    assert status.status is Status.ENDED
    assert status.cause.startswith("deleted before it started (qdel)")
    assert status.resubmit is False and status.exit_status is None


@pytest.mark.parametrize("failed", [(100, "assumedly after job"), (0, ""), None])
def test_aborted_with_usage_was_deleted_while_running(failed: tuple[int, str] | None) -> None:
    ending = Ending("5", aborted=True, usage={"ru_wallclock": "12.0000", "maxvmem": "0.0000"})
    status = describe_ending(ending, Resources(), None, failed)
    assert status == JobStatus(Status.ENDED, "deleted while running (qdel)", None,
                               resubmit=False)


def test_aborted_with_a_failure_code_could_not_start() -> None:
    status = describe_ending(Ending("5", aborted=True), Resources(), None,
                             (26, "opening input/output file"))
    assert status.status is Status.ENDED and status.exit_status is None
    assert status.cause == ("Grid Engine could not start it (failed 26: opening "
                            "input/output file)")


def test_killed_at_its_runtime_limit() -> None:
    resources = Resources.parse(h_rt=60)
    ending = Ending("5", signal="SIGKILL", usage={"ru_wallclock": "59.0000"})
    status = describe_ending(ending, resources)
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.cause == "runtime limit exceeded: killed after 59 s (h_rt=60 s)"


def test_killed_well_before_its_runtime_limit_is_not_a_runtime_limit() -> None:
    resources = Resources.parse(h_rt=600)
    ending = Ending("5", signal="SIGKILL", usage={"ru_wallclock": "30.0000"})
    status = describe_ending(ending, resources)
    assert status.cause == "killed by SIGKILL" and status.resubmit is True


def test_killed_at_its_memory_limit_of_all_slots() -> None:
    resources = Resources.parse(h_vmem="300M", num_slots=2, par_env="smp")
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{590 * MB}.0000",
                                                  "ru_wallclock": "3.0000"})
    status = describe_ending(ending, resources)
    assert status.status is Status.ENDED and status.resubmit is False
    assert status.cause == ("out of memory: it used 590 MB, over its h_vmem=300M per slot, "
                            "600 MB for 2 slots")


def test_memory_of_one_slot_is_not_the_limit_of_two() -> None:
    # h_vmem is per slot: 300M used of 2 x 300M is not an out-of-memory death.
    resources = Resources.parse(h_vmem="300M", num_slots=2, par_env="smp")
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{300 * MB}"})
    status = describe_ending(ending, resources)
    assert status.cause == "killed by SIGKILL" and status.resubmit is True


def test_a_failure_at_its_memory_limit_is_out_of_memory() -> None:
    resources = Resources.parse(h_vmem="1G")
    ending = Ending("5", exited=True, exit_status=1, usage={"maxvmem": f"{1020 * MB}"})
    status = describe_ending(ending, resources)
    assert status.cause.startswith("out of memory: it used 1020 MB")
    assert status.exit_status == 1 and status.resubmit is False


def test_killed_by_someone_else_can_be_resubmitted() -> None:
    resources = Resources.parse(h_vmem="1G", h_rt=3600)
    ending = Ending("5", signal="SIGKILL", usage={"maxvmem": f"{10 * MB}",
                                                  "ru_wallclock": "100"})
    status = describe_ending(ending, resources)
    assert status == JobStatus(Status.ENDED, "killed by SIGKILL", None)
    assert status.resubmit is True


def test_exit_status_3_is_the_runner_that_could_not_reach_the_monitor(tmp_path: Path) -> None:
    err_log = tmp_path / "job.0.0.err"
    err_log.write_text("starting\nERROR cannot reach the monitor at tcp://head:5555\n\n")
    status = describe_ending(Ending("5", exited=True, exit_status=3), Resources(),
                             str(err_log))
    assert status.status is Status.ENDED and status.exit_status == 3
    assert status.cause == ("the runner could not reach the monitor (exit status 3); its log "
                            "ends: ERROR cannot reach the monitor at tcp://head:5555")


def test_exit_status_1_ended_without_a_result() -> None:
    status = describe_ending(Ending("5", exited=True, exit_status=1), Resources(),
                             "/nonexistent/job.err")
    assert status == JobStatus(Status.ENDED, "the runner ended without a result (exit status 1)",
                               1)


# -- the job environment -------------------------------------------------------------


def test_job_environment_drops_what_grid_engine_sets_per_job() -> None:
    outer = {
        "JOB_ID": "77", "JOB_NAME": "outer", "SGE_TASK_ID": "3", "SGE_TASK_FIRST": "1",
        "NSLOTS": "4", "TMPDIR": "/tmp/77.1.all.q", "TMP": "/tmp/77.1.all.q",
        "HOSTNAME": "node1", "SGE_O_HOME": "/home/alice", "SGE_O_WORKDIR": "/home/alice",
        "PE_HOSTFILE": "/var/spool/pe_hostfile", "QUEUE": "all.q",
        "SGE_STDOUT_PATH": "/home/alice/out", "SGE_JOB_SPOOL_DIR": "/var/spool/77",
        "PATH": "/usr/bin:/bin", "MY_SETTING": "on", "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
    }
    assert job_environment(outer) == {
        "PATH": "/usr/bin:/bin", "MY_SETTING": "on", "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
    }


# -- the scheduler, with a fake DRMAA connection and a fake qstat --------------------


class FakeConnection:
    """DrmaaConnection's interface: numbers job ids from 100, hands out endings that a
    test put in ``ended`` once they are reaped."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.ended: dict[str, Ending] = {}
        self.reaped: dict[str, Ending] = {}
        self.terminated: list[str] = []
        self.releases = 0
        self.refuse: str | None = None
        self._next = 100

    def submit(self, **request: Any) -> list[str]:
        if self.refuse:
            raise DrmaaError(self.refuse)
        self.submitted.append(request)
        number = str(self._next)
        self._next += 1
        count = int(request["count"])
        return [number] if count == 1 else [f"{number}.{i}" for i in range(1, count + 1)]

    def reap(self) -> None:
        self.reaped.update(self.ended)
        self.ended.clear()

    def take(self, ids: Sequence[str]) -> dict[str, Ending]:
        return {i: self.reaped.pop(i) for i in ids if i in self.reaped}

    def terminate(self, target: str) -> None:
        self.terminated.append(target)

    def release(self) -> None:
        self.releases += 1


class FakeQstat:
    """qstat's answers: ``jobs`` always, ``queues`` only when asked with ``full``."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, int | None], str] = {}
        self.queues: dict[str, str] = {}
        self.calls: list[bool] = []

    def __call__(self, full: bool = False) -> Snapshot:
        self.calls.append(full)
        snapshot: Snapshot = Snapshot(jobs=dict(self.jobs),
                                      queues=dict(self.queues) if full else {})
        return snapshot


class Clock:
    """Stands in for the scheduler module's ``time``: a monotonic clock a test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Harness:
    def __init__(self, tmp_path: Path, options: NativeOptions | None = None) -> None:
        self.tmp_path = tmp_path
        self.connection = FakeConnection()
        self.qstat = FakeQstat()
        self.scheduler = SgeScheduler(cast(DrmaaConnection, self.connection),
                                      options or NativeOptions(), qstat=self.qstat)

    def launch_of(self, tasks: Sequence[int], *, add_env: Mapping[str, str] | None = None,
                  queue: str | None = None, name: str = "batch", attempt: int = 0) -> Launch:
        spec = JobSpec(function=print, resources=Resources.parse(queue=queue), name=name,
                       working_dir=str(self.tmp_path), copy_env=False,
                       add_env=dict(add_env or {}))
        return Launch(spec=spec, tasks=list(tasks), attempt=attempt,
                      log_dir=str(self.tmp_path),
                      runner=["python3", "-m", "gridmap_core.node.runner", "--address",
                              "tcp://head:5555"],
                      name=name)

    def launch(self, tasks: Sequence[int], **kwargs: Any) -> list[str]:
        ids: list[str] = self.scheduler.launch(self.launch_of(tasks, **kwargs))
        return ids

    def poll(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        return dict(self.scheduler.poll(ids))


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sge_scheduler, "time", fake)
    return fake


def test_a_launch_of_three_tasks_is_one_array_job(harness: Harness, tmp_path: Path) -> None:
    ids = harness.launch([4, 5, 6], queue="all.q", name="my batch")
    assert ids == ["100.1", "100.2", "100.3"]
    [request] = harness.connection.submitted
    assert request["count"] == 3
    assert request["native"] == "-q all.q"
    assert request["name"] == "my_batch"
    assert request["working_dir"] == str(tmp_path)
    command = request["command"]
    assert command[:5] == ["python3", "-m", "gridmap_core.node.runner", "--address",
                           "tcp://head:5555"]
    assert command[5:] == ["--task", "4", "--attempt", "0", "--index-var", "SGE_TASK_ID",
                           "--first-index", "1"]
    assert INCREMENT_PLACEHOLDER == "$drmaa_incr_ph$"
    assert request["output"] == str(tmp_path / "my batch.4-6.$drmaa_incr_ph$.0.out")
    assert request["error"] == str(tmp_path / "my batch.4-6.$drmaa_incr_ph$.0.err")


def test_a_launch_of_one_task_is_one_job(tmp_path: Path) -> None:
    harness = Harness(tmp_path, NativeOptions(max_running=2))
    launch = harness.launch_of([7], attempt=1)
    assert harness.scheduler.launch(launch) == ["100"]
    [request] = harness.connection.submitted
    assert request["count"] == 1
    assert request["command"] == launch.command(7)
    assert "--index-var" not in request["command"]
    assert request["output"] == launch.log_path(7, "out")
    assert request["error"] == launch.log_path(7, "err")
    assert "-tc" not in request["native"]


def test_an_array_is_throttled_by_max_running(tmp_path: Path) -> None:
    harness = Harness(tmp_path, NativeOptions(max_running=2))
    harness.launch([0, 1, 2])
    assert harness.connection.submitted[0]["native"] == "-tc 2"


def test_the_submitted_environment_leaves_out_job_variables(harness: Harness) -> None:
    harness.launch([0], add_env={"JOB_ID": "77", "SGE_TASK_ID": "2", "MY_SETTING": "on"})
    [request] = harness.connection.submitted
    assert request["environment"] == {"MY_SETTING": "on"}
    assert "--environment" not in request["command"]


def test_values_with_equals_signs_go_in_a_private_file(harness: Harness,
                                                       tmp_path: Path) -> None:
    harness.launch([3, 4], add_env={"OPTS": "-Dkey=value", "PLAIN": "x"}, attempt=2)
    [request] = harness.connection.submitted
    command = request["command"]
    assert command[-2] == "--environment"
    path = Path(command[-1])
    assert path == tmp_path / "batch.3.2.environment.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"OPTS": "-Dkey=value"}
    # The index options stay before it, where the runner's parser finds them either way.
    assert command[command.index("--index-var") + 1] == "SGE_TASK_ID"


def test_a_refused_submission_names_the_jobs_and_their_options(harness: Harness) -> None:
    harness.connection.refuse = "denied: job rejected because queue all.x does not exist"
    with pytest.raises(DrmaaError, match=r"refused 2 job\(s\) named 'batch': denied.*"
                                         r"requested with: -q all\.x"):
        harness.launch([0, 1], queue="all.x")
    assert harness.poll(["100.1"]) == {}


def test_poll_maps_qstat_states(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    reasons: list[str] = []

    def reason(number: str) -> str:
        reasons.append(number)
        return "can't chdir to /nonexistent: No such file or directory"

    monkeypatch.setattr(sge_scheduler, "error_reason", reason)
    ids = harness.launch([0, 1, 2, 3, 4])
    harness.qstat.jobs = {("100", 1): "r", ("100", 2): "qw", ("100", 3): "hqw",
                          ("100", 4): "Eqw", ("100", 5): "Rr"}
    answer = harness.poll(ids)
    assert answer["100.1"] == JobStatus(Status.RUNNING)
    assert answer["100.2"] == JobStatus(Status.QUEUED)
    held = answer["100.3"]
    assert held.status is Status.QUEUED and "qrls 100" in held.note and "hqw" in held.note
    error = answer["100.4"]
    assert error.status is Status.ERROR and error.resubmit is False
    assert "(Eqw)" in error.cause and "can't chdir to /nonexistent" in error.cause
    assert answer["100.5"].status is Status.RUNNING
    # The error reason costs a qstat -j: asked once per job number.
    harness.poll(ids)
    assert reasons == ["100"]


@pytest.mark.parametrize("state", ["s", "S", "T", "Rs"])
def test_a_suspended_job_is_reported_suspended(harness: Harness, state: str) -> None:
    # qmod -sj (s), a suspended or subordinated queue (S), a suspend threshold (T).
    [job_id] = harness.launch([0])
    harness.qstat.jobs = {("100", None): state}
    assert harness.poll([job_id])[job_id] == JobStatus(Status.SUSPENDED)
    harness.qstat.jobs = {("100", None): "r"}  # qmod -usj
    assert harness.poll([job_id])[job_id] == JobStatus(Status.RUNNING)


def test_an_error_without_a_reason_points_to_qstat_j(harness: Harness,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sge_scheduler, "error_reason", lambda number: "")
    [job_id] = harness.launch([0])
    harness.qstat.jobs = {("100", None): "Eqw"}
    status = harness.poll([job_id])[job_id]
    assert status.status is Status.ERROR and status.cause.endswith("see qstat -j 100")


def test_a_reaped_ending_is_reported_once(harness: Harness,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sge_scheduler, "accounting_failure", _no_accounting_expected)
    [job_id] = harness.launch([0])
    harness.qstat.jobs = {("100", None): "r"}
    assert harness.poll([job_id])[job_id].status is Status.RUNNING
    harness.connection.ended[job_id] = Ending(job_id, exited=True, exit_status=1)
    status = harness.poll([job_id])[job_id]
    assert status.status is Status.ENDED and status.exit_status == 1
    assert "exit status 1" in status.cause
    calls = len(harness.qstat.calls)
    # Nothing left to ask qstat about.
    assert harness.poll([job_id]) == {}
    assert len(harness.qstat.calls) == calls


def _no_accounting_expected(job_id: str) -> tuple[int, str] | None:
    raise AssertionError(f"qacct asked about {job_id}, which was not aborted")


def test_an_aborted_ending_is_told_apart_with_accounting(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def failure(job_id: str) -> tuple[int, str] | None:
        asked.append(job_id)
        return (26, "opening input/output file")

    monkeypatch.setattr(sge_scheduler, "accounting_failure", failure)
    ids = harness.launch([0, 1])
    harness.connection.ended["100.2"] = Ending("100.2", aborted=True)
    answer = harness.poll(ids)
    assert asked == ["100.2"]
    assert answer["100.2"].status is Status.ENDED
    assert "could not start it (failed 26: opening input/output file)" in answer["100.2"].cause
    assert "100.1" not in answer  # not listed by qstat yet, and no ending


def test_an_array_element_ending_reads_its_own_err_log(harness: Harness,
                                                       tmp_path: Path) -> None:
    ids = harness.launch([10, 11, 12])
    (tmp_path / "batch.10-12.1.0.err").write_text("element one\n")
    (tmp_path / "batch.10-12.2.0.err").write_text("cannot reach the monitor (element two)\n")
    harness.connection.ended["100.2"] = Ending("100.2", exited=True, exit_status=3)
    status = harness.poll(ids)["100.2"]
    assert status.cause.startswith("the runner could not reach the monitor (exit status 3)")
    assert status.cause.endswith("its log ends: cannot reach the monitor (element two)")


def test_a_cancelled_job_ending_is_not_reported(harness: Harness,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sge_scheduler, "accounting_failure", lambda job_id: (100, "qdel"))
    ids = harness.launch([0, 1])
    harness.scheduler.cancel(["100.1"])
    harness.connection.ended["100.1"] = Ending("100.1", aborted=True)
    harness.connection.ended["100.2"] = Ending("100.2", exited=True, exit_status=0)
    answer = harness.poll(ids)
    assert set(answer) == {"100.2"}
    assert harness.poll(ids) == {}


def test_a_job_qstat_stops_listing_becomes_unknown_after_a_while(
        harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0])
    assert harness.poll([job_id]) == {}  # DRMAA may not have heard of its ending yet
    clock.now += 29
    assert harness.poll([job_id]) == {}
    clock.now += 1
    status = harness.poll([job_id])[job_id]
    assert status.status is Status.UNKNOWN
    assert "no longer lists job 100" in status.cause


def test_a_job_listed_again_starts_its_absence_over(harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0])
    harness.poll([job_id])
    clock.now += 20
    harness.qstat.jobs = {("100", None): "r"}
    assert harness.poll([job_id])[job_id].status is Status.RUNNING
    harness.qstat.jobs = {}
    clock.now += 1
    assert harness.poll([job_id]) == {}
    clock.now += 29
    assert harness.poll([job_id]) == {}
    clock.now += 1
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN


def test_absence_limit_of_zero(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sge_scheduler, "_ABSENT_FOR", 0.0)
    [job_id] = harness.launch([0])
    assert harness.poll([job_id]) == {}  # the first absence is only noted
    assert harness.poll([job_id])[job_id].status is Status.UNKNOWN


def test_queue_states_are_read_only_while_jobs_wait(harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0], queue="all.q")
    harness.qstat.queues = {"all.q@node1": "u", "all.q@node2": "u"}
    harness.qstat.jobs = {("100", None): "r"}
    harness.poll([job_id])
    clock.now += 120
    harness.poll([job_id])
    assert harness.qstat.calls == [False, False]  # running: no wait to explain

    harness.qstat.jobs = {("100", None): "qw"}
    first = harness.poll([job_id])[job_id]
    assert first == JobStatus(Status.QUEUED)  # seen waiting only now
    clock.now += 1
    explained = harness.poll([job_id])[job_id]
    assert harness.qstat.calls[-2:] == [False, True]
    assert explained.status is Status.QUEUED
    assert explained.note.startswith("no queue instance can run them")
    assert "all.q@node1 is in state u (its execution daemon does not answer)" in explained.note

    clock.now += 30
    assert harness.poll([job_id])[job_id].note == ""
    clock.now += 30
    assert "execution daemon does not answer" in harness.poll([job_id])[job_id].note
    assert harness.qstat.calls[-2:] == [False, True]


def test_a_wait_on_a_usable_queue_has_no_note(harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0], queue="all.q")
    harness.qstat.queues = {"all.q@node1": "", "long.q@node1": "u"}
    harness.qstat.jobs = {("100", None): "qw"}
    harness.poll([job_id])
    status = harness.poll([job_id])[job_id]
    assert harness.qstat.calls == [False, True]
    assert status == JobStatus(Status.QUEUED)


def test_a_wait_on_a_missing_queue_is_explained(harness: Harness, clock: Clock) -> None:
    [job_id] = harness.launch([0], queue="gpu.q")
    harness.qstat.queues = {"all.q@node1": ""}
    harness.qstat.jobs = {("100", None): "qw"}
    harness.poll([job_id])
    assert harness.poll([job_id])[job_id].note == "no queue instance of gpu.q exists"


def test_cancelling_a_whole_array_is_one_request(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.scheduler.cancel(ids)
    assert harness.connection.terminated == ["100"]
    harness.scheduler.cancel(ids)  # already cancelled
    assert harness.connection.terminated == ["100"]


def test_cancelling_part_of_an_array_goes_element_by_element(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.scheduler.cancel([ids[1]])
    assert harness.connection.terminated == ["100.2"]
    harness.scheduler.cancel(ids[:2])
    assert harness.connection.terminated == ["100.2", "100.1"]


def test_cancelling_the_last_element_out_names_only_it(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    for job_id in ids[:2]:
        harness.connection.ended[job_id] = Ending(job_id, exited=True, exit_status=0)
    harness.poll(ids)
    harness.scheduler.cancel([ids[2]])
    assert harness.connection.terminated == ["100.3"]


def test_cancelling_the_rest_of_an_array_is_one_request(harness: Harness) -> None:
    ids = harness.launch([0, 1, 2])
    harness.connection.ended["100.1"] = Ending("100.1", exited=True, exit_status=0)
    harness.poll(ids)
    harness.scheduler.cancel(ids)
    assert harness.connection.terminated == ["100"]


def test_cancel_ignores_unknown_and_single_jobs_go_by_id(harness: Harness) -> None:
    [single] = harness.launch([0])
    array = harness.launch([1, 2])
    harness.scheduler.cancel(["999", "999.1"])
    assert harness.connection.terminated == []
    harness.scheduler.cancel([single, *array])
    assert harness.connection.terminated == ["100", "101"]


def test_close_releases_the_connection_once(harness: Harness) -> None:
    ids = harness.launch([0, 1])
    harness.connection.ended["100.1"] = Ending("100.1", exited=True, exit_status=0)
    harness.connection.reap()
    harness.scheduler.close()
    harness.scheduler.close()
    assert harness.connection.releases == 1
    assert harness.connection.reaped == {}  # what was reaped for its jobs is taken
    assert harness.poll(ids) == {}
