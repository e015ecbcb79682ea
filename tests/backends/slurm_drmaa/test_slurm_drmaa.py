"""The slurm-drmaa backend.

Without a cluster: Job fields into a native specification and what slurm-drmaa could
not read; the scheduler over a fake DRMAA connection that records what it is asked;
whether the backend is usable with no library, a missing one, or Grid Engine's.

With the single-node Slurm (``slurm_cluster``): each option the native specification
holds, submitted with sbatch exactly as written, is granted as meant (slurm-drmaa's
parser reads these options as sbatch does: natefoo/slurm-drmaa, slurm_drmaa/util.c).
``--account`` is left out: the test cluster has no accounts to choose from.

With the slurm-drmaa library (``GRIDMAP_SLURM_DRMAA_LIBRARY``, built by
scripts/slurm/drmaa.sh): the shared conformance suite, and what Slurm granted a map's
jobs as they read it back from slurmctld, in a Python process of their own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle
import pytest
from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import Commands
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm_drmaa.backend import SlurmDrmaaBackend, slurm_library_problem
from gridmap_slurm_drmaa.native import (
    FLAGS,
    SHORT_OPTIONS,
    VALUED,
    check_job,
    check_options,
    native_specification,
)
from gridmap_slurm_drmaa.scheduler import SlurmDrmaaScheduler

from gridmap_core import get_plugin_manager
from gridmap_core.backend import JobSpec
from gridmap_core.backend.drmaa import INCREMENT_PLACEHOLDER, DrmaaError, Ending
from gridmap_core.backend.scheduler import Launch, Status
from gridmap_core.model.resources import ResourceError, Resources
from gridmap_core.testing import BackendConformance
from tests import PROJECT_ROOT
from tests.support.needs import slurm_drmaa_library

pytestmark = pytest.mark.timeout(60)

ROOT = PROJECT_ROOT
RUNNER = ["/usr/bin/python3", "-m", "gridmap_core.node.runner", "--address", "tcp://head:5555"]
NODES = SlurmOptions(nodes=("n1", "n2", "n3"), partitions=("debug", "short"))
SGE_ENV_FILE = Path(os.environ.get("GRIDMAP_SGE_ENV_FILE", "/etc/gridmap-sge.env"))
# Set (to "1") in the process that runs the conformance suite on slurm-drmaa.
IN_OWN_PROCESS = "GRIDMAP_SLURM_DRMAA_CONFORMANCE_PROCESS"


def make_spec(*, extra: Mapping[str, str] | None = None, shell: str | None = None,
              copy_env: bool = True, **resources: Any) -> JobSpec:
    return JobSpec(function=print, resources=Resources.parse(**resources),
                   extra=dict(extra or {}), interpreting_shell=shell, copy_env=copy_env)


# -- the native specification ----------------------------------------------------------


@pytest.mark.parametrize(("resources", "expected"), [
    ({}, ""),
    ({"mem_free": "1G"}, "--mem-per-cpu=1024"),
    ({"mem_free": "1G", "h_vmem": "2G"}, "--mem-per-cpu=2048"),
    ({"num_slots": 4}, "--cpus-per-task=4"),
    ({"h_rt": "1:30"}, "--time=0:02:00"),  # whole minutes, rounded up
    ({"h_rt": 5400}, "--time=1:30:00"),
    ({"queue": "short"}, "--partition=short"),
    ({"queue": "all.q"}, ""),  # the original's default queue: the default partition
    ({"white_list": ["n2"]}, "--nodelist=n2"),
    ({"white_list": ["n1", "n2"]}, "--exclude=n3"),
    ({"gpu": 2}, "--gres=gpu:2"),
    ({"resources": ["--constraint=avx2", "-C ssd"]}, "--constraint=avx2 -C ssd"),
    ({"resources": ["--qos=low", "--exclusive", "-t 2:00:00"]},
     "--qos=low --exclusive -t 2:00:00"),
])
def test_each_job_field_becomes_its_option(resources: dict[str, Any], expected: str) -> None:
    assert native_specification(make_spec(**resources), NODES) == expected


def test_project_gpu_resource_and_site_options_come_in_order() -> None:
    spec = make_spec(extra={"project": "lab"}, gpu=1, mem_free="512M", h_rt=600,
                     num_slots=2, queue="debug", resources=["--tmp=100"])
    site = SlurmOptions(gpu_resource="tesla", extra=("--qos=low", "-A", "other"),
                        partitions=("debug",))
    assert native_specification(spec, site).split() == [
        "--mem-per-cpu=512", "--cpus-per-task=2", "--time=0:10:00", "--partition=debug",
        "--gres=tesla:1", "--account=lab", "--tmp=100", "--qos=low", "-A", "other"]


def test_every_supported_option_is_accepted() -> None:
    tokens = [f"--{name}=1:00:00" if name.startswith("time") else
              f"--{name}=ALL" if name == "mail-type" else f"--{name}=1" for name in VALUED]
    tokens += [f"--{name}" for name in FLAGS]
    for short in SHORT_OPTIONS:
        tokens += [short, "1:00:00" if short == "-t" else "1"]
    assert check_options(tokens, "here") == tokens


@pytest.mark.parametrize(("entry", "match"), [
    ("--mem=4G", r"--mem as a whole number of MB, with no unit"),
    ("--mem-per-cpu=1.5", r"whole number of MB"),
    ("-c two", r"--cpus-per-task as a whole number"),
    ("--job-name=x", r"does not know --job-name; it reads only .*--account=…"),
    ("--output=/tmp/x", r"does not know --output"),
    ("--array=1-3", r"does not know --array"),
    ("--comment=a=b", r"cuts a value at its first '=' \(it would read --comment=a\)"),
    ("--exclusive=user", r"reads --exclusive without a value and would drop this one"),
    ("--partition", r"write --partition=VALUE, as one word"),
    ("--partition=", r"write --partition=VALUE"),
    ("-pdebug", r"short options only as a letter followed by its value as the next word"),
    ("-s", r"write --share"),
    ("-q low", r"slurm-drmaa does not know -q; it reads only"),
    ("-p", r"-p needs a value as the next word"),
    ("-p -w n1", r"-p needs a value as the next word"),
    ("--time=90", r"hours:minutes:seconds, e.g. --time=1:30:00"),
    ("--time=1:30", r"reads 1:30 as 1 h 30 min where sbatch reads 1 min 30 s"),
    ("-t 2-00:00:00", r"hours:minutes:seconds"),
    ("--nodes=1-x", r"--nodes as N or MIN-MAX"),
    ("--mail-type=BEGIN,END", r"one of BEGIN, END, FAIL, REQUEUE, ALL"),
])
def test_options_slurm_drmaa_cannot_read_are_refused(entry: str, match: str) -> None:
    with pytest.raises(ResourceError, match=match) as caught:
        native_specification(make_spec(resources=[entry]), NODES)
    message = str(caught.value)
    assert "from the job (its resources=[...]" in message
    assert "nothing was submitted" in message


def test_a_stray_value_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"'debug' from here: a value with no option"):
        check_options(["--qos=low", "debug"], "here")


def test_refused_site_options_name_the_backend_option() -> None:
    site = SlurmOptions(extra=("--export=NONE",))
    with pytest.raises(ResourceError, match=r"'--export=NONE' from the backend option "
                       r"native_specification: slurm-drmaa does not know --export"):
        native_specification(make_spec(), site)
    # A value with a blank cannot come from a job's resources (they are split at blanks),
    # only from a site's quoted option.
    with pytest.raises(ResourceError, match=r"splits options at blanks"):
        check_options(["--comment=two words"], "the backend option native_specification")


def test_mem_and_mem_per_cpu_together_are_refused() -> None:
    with pytest.raises(ResourceError, match=r"--mem and --mem-per-cpu together .* keeps "
                       r"whichever number is larger.*set both to None"):
        native_specification(make_spec(mem_free="1G", resources=["--mem=2048"]))
    # Without mem_free and h_vmem, --mem is the only memory request: accepted.
    assert native_specification(make_spec(resources=["--mem=2048"])) == "--mem=2048"


def test_grid_engine_fields_are_refused_as_by_the_sbatch_backend() -> None:
    with pytest.raises(ResourceError, match=r"os_distribution=.*no Slurm counterpart"):
        native_specification(make_spec(extra={"os_distribution": "debian"}))
    with pytest.raises(ResourceError, match=r"Grid Engine style resource requests"):
        native_specification(make_spec(resources=["h_vmem=2G"]))


def test_shells_and_environments_slurm_drmaa_cannot_give_are_refused() -> None:
    check_job(make_spec(shell="/bin/bash"))
    check_job(make_spec(shell="/bin/sh"))
    with pytest.raises(ResourceError, match=r"interpreting_shell='/bin/csh'.*/bin/bash"):
        check_job(make_spec(shell="/bin/csh"))
    with pytest.raises(ResourceError, match=r"copy_env=False.*backend='slurm'"):
        check_job(make_spec(copy_env=False))


# -- the scheduler, over a fake DRMAA connection ---------------------------------------


class FakeConnection:
    """Stands in for :class:`~gridmap_core.backend.drmaa.DrmaaConnection`: records every
    request, and numbers jobs 500, 600, … with ids as current slurm-drmaa gives them
    (``answer`` may give others)."""

    def __init__(self) -> None:
        self.submits: list[dict[str, Any]] = []
        self.terminated: list[str] = []
        self.refuse_terminate: set[str] = set()
        self.refusals: list[str] = []  # what the next submissions fail with
        self.reap_error: str | None = None
        self.reaps = 0
        self.taken: list[list[str]] = []
        self.ended: set[str] = set()
        self.releases = 0
        self.next_job = 500
        self.answer: Any = None  # a function of (job number, count) giving the ids

    def submit(self, **request: Any) -> list[str]:
        self.submits.append(request)
        if self.refusals:
            raise DrmaaError(self.refusals.pop(0))
        number, count = self.next_job, request["count"]
        self.next_job += 100
        if self.answer:
            ids: list[str] = self.answer(number, count)
            return ids
        return [str(number)] if count == 1 else [f"{number}_{i}" for i in range(1, count + 1)]

    def reap(self) -> None:
        self.reaps += 1
        if self.reap_error:
            raise DrmaaError(self.reap_error)

    def take(self, ids: Sequence[str]) -> dict[str, Ending]:
        self.taken.append(list(ids))
        found = {i: Ending(i, exited=True, exit_status=0) for i in ids if i in self.ended}
        self.ended -= set(found)
        return found

    def terminate(self, job_id: str) -> None:
        if job_id in self.refuse_terminate:
            raise DrmaaError(f"slurm_terminate_job error: invalid value: {job_id}")
        self.terminated.append(job_id)

    def release(self) -> None:
        self.releases += 1


class FakeSlurm(Commands):
    """squeue and scancel as a test sets them up; every call and pause is recorded.
    ``comments`` answers squeue's search for a submission's --comment."""

    def __init__(self) -> None:
        super().__init__(retry_for=60.0, first_pause=0.5, longest_pause=4.0)
        self.pauses: list[float] = []
        self.sleep = self.pauses.append
        self.calls: list[list[str]] = []
        self.squeue_lines: list[str] = []
        self.comments: Callable[[], list[str]] = list

    def once(self, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        lines: list[str] = []
        if argv[0] == "squeue":
            lines = self.comments() if "Comment:|,ArrayJobID:|" in argv else self.squeue_lines
        return subprocess.CompletedProcess(list(argv), 0, "".join(f"{x}\n" for x in lines), "")


class Harness:
    def __init__(self, tmp_path: Path, options: SlurmOptions = NODES) -> None:
        self.tmp_path = tmp_path
        self.connection = FakeConnection()
        self.slurm = FakeSlurm()
        self.scheduler = SlurmDrmaaScheduler(self.connection, Cluster(), options,
                                             commands=self.slurm)

    def launch_of(self, tasks: Sequence[int], *, name: str = "batch", attempt: int = 0,
                  add_env: Mapping[str, str] | None = None, runner: Sequence[str] = RUNNER,
                  **resources: Any) -> Launch:
        spec = JobSpec(function=print, resources=Resources.parse(**resources), name=name,
                       working_dir=str(self.tmp_path), add_env=dict(add_env or {}))
        return Launch(spec=spec, tasks=list(tasks), attempt=attempt,
                      log_dir=str(self.tmp_path), runner=list(runner), name=name)

    def launch(self, tasks: Sequence[int], **kwargs: Any) -> list[str]:
        ids: list[str] = self.scheduler.launch(self.launch_of(tasks, **kwargs))
        return ids


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_launch_is_one_bulk_submission_of_an_array(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "77")  # as when submitting from inside a job
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
    launch = harness.launch_of([4, 5, 6], name="my batch", attempt=2, h_rt=60,
                               mem_free="300M", add_env={"GRIDMAP_X": "a=b=c"})
    ids = harness.scheduler.launch(launch)
    assert ids == ["500_1", "500_2", "500_3"]
    [request] = harness.connection.submits
    assert request["count"] == 3
    assert request["command"] == launch.array_command("SLURM_ARRAY_TASK_ID", 1)
    base = f"{tmp_path}/my batch.4-6.{INCREMENT_PLACEHOLDER}.2"
    assert (request["output"], request["error"]) == (f"{base}.out", f"{base}.err")
    assert re.fullmatch(r"--mem-per-cpu=300 --time=0:01:00 --comment=gridmap-[0-9a-f]{16}",
                        request["native"])
    assert request["name"] == "my_batch"
    assert request["working_dir"] == str(tmp_path)
    environment = request["environment"]
    assert environment["GRIDMAP_X"] == "a=b=c"  # slurm-drmaa passes "NAME=a=b=c" whole
    assert environment["SLURM_CONF"] == "/etc/slurm/slurm.conf"
    assert "SLURM_JOB_ID" not in environment


def test_a_percent_in_a_log_path_reaches_slurm_as_itself(harness: Harness) -> None:
    harness.launch([1, 2], name="100%")
    [request] = harness.connection.submits
    assert request["output"].endswith(f"/100%%.1-2.{INCREMENT_PLACEHOLDER}.0.out")
    job = harness.scheduler.jobs.job("500_2")
    assert job is not None and job.err_log.endswith("/100%.1-2.2.0.err")


def test_a_single_task_is_a_plain_job(harness: Harness, tmp_path: Path) -> None:
    launch = harness.launch_of([9], attempt=1)
    assert harness.scheduler.launch(launch) == ["500"]
    [request] = harness.connection.submits
    assert request["count"] == 1 and request["command"] == launch.command(9)
    assert request["output"] == launch.log_path(9, "out")
    assert request["error"] == launch.log_path(9, "err")
    harness.slurm.squeue_lines = ["500|RUNNING|None|0|"]
    assert harness.scheduler.poll(["500"])["500"].status is Status.RUNNING
    [squeue] = harness.slurm.calls
    assert squeue[squeue.index("-j") + 1] == "500"


def test_job_numbers_of_older_releases_become_array_elements(harness: Harness) -> None:
    # Older slurm-drmaa returned each element's own job number, in no promised order.
    harness.connection.answer = lambda number, count: ["702", "700", "701"]
    harness.slurm.squeue_lines = ["700|700_3|", "701|700_1|", "702|700_2|"]
    assert harness.launch([1, 2, 3]) == ["700_1", "700_2", "700_3"]
    [squeue] = harness.slurm.calls
    assert squeue[squeue.index("-j") + 1] == "702,700,701"
    harness.scheduler.cancel(["700_2"])
    assert harness.connection.terminated == ["702"]  # slurm-drmaa's own id for it


def test_ids_that_are_not_one_array_are_refused_and_cancelled(harness: Harness) -> None:
    harness.connection.answer = lambda number, count: ["500_1", "500_7"]
    with pytest.raises(DrmaaError, match=r"not the elements 1-2 of one array: 500_1, 500_7"):
        harness.launch([1, 2])
    assert harness.connection.terminated == ["500_1", "500_7"]
    assert harness.scheduler.poll(["500_1"]) == {}


def test_a_refusal_names_the_jobs_and_the_options(harness: Harness) -> None:
    harness.connection.refusals = ["slurm_submit_batch_job: Invalid partition name"]
    with pytest.raises(DrmaaError, match=r"Slurm refused 2 job\(s\) named 'batch': "
                       r"slurm_submit_batch_job: Invalid partition name \(requested with: "
                       r"--partition=short\)"):
        harness.launch([1, 2], queue="short")


UNREACHABLE = "slurm_submit_batch_job: Unable to contact slurm controller (connect failure)"


def test_submissions_are_retried_while_slurmctld_does_not_answer(harness: Harness) -> None:
    harness.connection.refusals = [UNREACHABLE, UNREACHABLE]
    assert harness.launch([1, 2]) == ["500_1", "500_2"]
    first, second, third = harness.connection.submits
    assert first["native"] == second["native"] == third["native"]  # the same --comment
    assert harness.slurm.pauses == [0.5, 1.0]
    assert len([argv for argv in harness.slurm.calls if argv[0] == "squeue"]) == 2


def test_a_submission_accepted_after_all_is_not_submitted_again(harness: Harness) -> None:
    harness.connection.refusals = [UNREACHABLE]
    token = lambda: harness.connection.submits[0]["native"].split("--comment=")[1]  # noqa: E731
    harness.slurm.comments = lambda: ["someone-else|400", f"{token()}|812"]
    assert harness.launch([1, 2]) == ["812_1", "812_2"]
    assert len(harness.connection.submits) == 1
    harness.scheduler.cancel(["812_1", "812_2"])
    assert harness.connection.terminated == ["812"]


def test_a_job_s_own_comment_is_kept_and_a_refusal_is_final(harness: Harness) -> None:
    harness.connection.refusals = [UNREACHABLE]
    with pytest.raises(DrmaaError, match=r"Unable to contact slurm controller"):
        harness.launch([1], resources=["--comment=mine"])
    [request] = harness.connection.submits
    assert request["native"] == "--comment=mine"
    harness.connection.refusals = ["slurm_submit_batch_job: Invalid account"]
    with pytest.raises(DrmaaError, match=r"Invalid account"):
        harness.launch([1])
    assert len(harness.connection.submits) == 2 and harness.slurm.pauses == []


def test_options_slurm_drmaa_cannot_read_are_refused_before_submission(tmp_path: Path) -> None:
    harness = Harness(tmp_path, SlurmOptions(extra=("--gpus=1",)))
    with pytest.raises(ResourceError, match=r"native_specification: slurm-drmaa does not "
                       r"know --gpus"):
        harness.launch([1, 2])
    assert harness.connection.submits == []


def test_an_interpreter_slurm_drmaa_would_misquote_is_refused(harness: Harness) -> None:
    with pytest.raises(DrmaaError, match=r"cannot run '/opt/my python/bin/python'.*'python'"):
        harness.launch([1], runner=["/opt/my python/bin/python", "-m", "gridmap_core.node.runner"])
    assert harness.connection.submits == []


def test_polls_drain_slurm_drmaa_and_read_states_from_squeue(harness: Harness) -> None:
    ids = harness.launch([1, 2])
    harness.slurm.squeue_lines = ["500_1|RUNNING|None|0|", "500_2|COMPLETED|None|0|"]
    harness.connection.ended = {"500_2"}
    answer = harness.scheduler.poll(ids)
    assert answer["500_1"].status is Status.RUNNING
    assert answer["500_2"].status is Status.ENDED and answer["500_2"].exit_status == 0
    assert harness.connection.reaps == 1
    assert sorted(harness.connection.taken[-1]) == ["500_1", "500_2"]
    harness.scheduler.poll(["500_1"])
    assert harness.connection.taken[-1] == ["500_1"]  # 500_2's ending was taken once


def test_a_library_that_cannot_report_endings_does_not_stop_polls(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    ids = harness.launch([1])
    harness.connection.reap_error = "slurm_load_jobs error: Invalid job id specified"
    harness.slurm.squeue_lines = ["500|PENDING|Priority|0|"]
    for _ in range(2):
        assert harness.scheduler.poll(ids)["500"].status is Status.QUEUED
    assert caplog.text.count("could not report ended jobs") == 1


def test_cancels_go_through_drmaa_and_fall_back_to_scancel(harness: Harness) -> None:
    first = harness.launch([1, 2, 3])
    second = harness.launch([4, 5])
    harness.scheduler.cancel([first[1]])
    assert harness.connection.terminated == ["500_2"]
    harness.scheduler.cancel([first[0], first[2]])  # every element still out: the array
    assert harness.connection.terminated[1:] == ["500"]
    # Releases that read an id as a plain number refuse "600_1": scancel takes it.
    harness.connection.refuse_terminate = {"600_1"}
    harness.scheduler.cancel([second[0]])
    assert harness.slurm.calls == [["scancel", "600_1"]]


def test_close_takes_what_is_left_and_releases_once(harness: Harness) -> None:
    harness.launch([1, 2])
    harness.scheduler.close()
    harness.scheduler.close()
    assert sorted(harness.connection.taken[-1]) == ["500_1", "500_2"]
    assert harness.connection.releases == 1


# -- the plugin and whether the backend is usable ---------------------------------------


def test_the_backend_is_registered_below_the_sbatch_backend() -> None:
    backends = get_plugin_manager().backends()
    spec = backends["slurm_drmaa"]
    assert spec.priority == 70 < backends["slurm"].priority
    assert spec.is_cluster
    assert spec.option_names == ("python", "gpu_resource", "native_specification", "retry_for")
    assert isinstance(spec.create(), SlurmDrmaaBackend)


def grid_engine_library() -> str:
    """Grid Engine's libdrmaa as the test clusters' settings file names it."""
    path = "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0"
    if SGE_ENV_FILE.exists():
        found = re.search(r"DRMAA_LIBRARY_PATH=(\S+)", SGE_ENV_FILE.read_text())
        path = found.group(1) if found else path
    if not os.path.exists(path):
        pytest.skip(f"Grid Engine's libdrmaa is not installed here ({path})")
    return path


@pytest.mark.parametrize("setting", [None, "/nonexistent/libdrmaa.so", "grid engine"])
def test_the_backend_is_not_usable_without_a_slurm_drmaa_library(
        setting: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if setting is None:
        monkeypatch.delenv("DRMAA_LIBRARY_PATH", raising=False)
    else:
        path = grid_engine_library() if setting == "grid engine" else setting
        monkeypatch.setenv("DRMAA_LIBRARY_PATH", path)
    usable, reason = SlurmDrmaaBackend().availability()
    assert not usable
    expected = {None: "DRMAA_LIBRARY_PATH is not set",
                "/nonexistent/libdrmaa.so": "DRMAA_LIBRARY_PATH=/nonexistent/libdrmaa.so does "
                                            "not exist",
                "grid engine": "is Grid Engine's libdrmaa, which cannot reach Slurm"}[setting]
    assert expected in reason
    assert "install slurm-drmaa" in reason
    assert "https://github.com/natefoo/slurm-drmaa/releases" in reason
    assert "DRMAA_LIBRARY_PATH=/path/to/libdrmaa.so" in reason


def test_a_library_that_serves_another_scheduler_is_recognised(tmp_path: Path) -> None:
    """Grid Engine's libdrmaa under names that do not tell, loaded in a Python of its
    own: the drmaa package binds a process to the first library it loads, and loading
    this one needs GLIBC_TUNABLES before Python starts (the settings file has it)."""
    library = tmp_path / "libdrmaa.so"
    shutil.copy(grid_engine_library(), library)
    shutil.copy(library, tmp_path / "libdrmaa-other.so")
    os.symlink(library, tmp_path / "libdrmaa-link.so")
    settings = dict(re.findall(r"^export (\w+)=(\S*)", SGE_ENV_FILE.read_text(), re.M)
                    if SGE_ENV_FILE.exists() else [])
    script = textwrap.dedent("""
        import json, os, sys
        from gridmap_slurm_drmaa.backend import slurm_library_problem
        problems = []
        for path in sys.argv[1:]:
            os.environ["DRMAA_LIBRARY_PATH"] = path
            problems.append(slurm_library_problem())
        print(json.dumps(problems))
    """)
    paths = [str(tmp_path / name) for name in ("libdrmaa.so", "libdrmaa-other.so",
                                                "libdrmaa-link.so")]
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True,
                          text=True, env={**os.environ, **settings}, timeout=60)
    assert done.returncode == 0, done.stderr
    first, other, link = json.loads(done.stdout)
    if "could not be loaded" in first:
        pytest.skip(f"libdrmaa does not load in a child process here: {first}")
    assert re.search(r"libdrmaa.so serves 'SGE [\d.]+', not Slurm: install slurm-drmaa",
                     first), first
    # Once one library is loaded, the process cannot load another; the same file under
    # another name is no other.
    assert re.search(r"already loaded the DRMAA library .*/libdrmaa.so, and the drmaa "
                     r"package cannot load a second one", other), other
    assert re.search(r"libdrmaa-link.so serves 'SGE [\d.]+', not Slurm", link), link


# -- the options, as the real Slurm grants them -----------------------------------------


def scontrol_job(job_id: str) -> dict[str, str]:
    line = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                          text=True, check=True).stdout
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def sbatch(tokens: Sequence[str], output: Path, *extra: str) -> str:
    """Submit ``env`` with exactly ``tokens`` as its options; the job id."""
    done = subprocess.run(["sbatch", "--parsable", f"--output={output}", *extra, *tokens,
                           "--wrap", "env; sleep 0"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"sbatch refused {tokens}: {done.stderr.strip()}"
    return done.stdout.strip().split(";")[0]


def wait_for_end(job_id: str, timeout: float = 120.0) -> dict[str, str]:
    """Poll scontrol until the job ended (sbatch --wait polls slowly); its record."""
    deadline = time.monotonic() + timeout
    while True:
        record = scontrol_job(job_id)
        if record["JobState"] not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return record
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id], check=False)
            raise AssertionError(f"job {job_id} did not end in {timeout:.0f} s: "
                                 f"{record['JobState']} ({record.get('Reason')})")
        time.sleep(0.2)


@pytest.mark.timeout(180)  # the job waits while other jobs fill the node
def test_the_options_are_granted_by_slurm(slurm_cluster: str, tmp_path: Path) -> None:
    node = slurm_cluster
    spec = make_spec(h_vmem="300M", mem_free="100M", num_slots=2, h_rt="1:30:00",
                     queue="debug", white_list=[node])
    tokens = native_specification(spec, SlurmOptions(nodes=(node,),
                                                     partitions=("debug",))).split()
    assert tokens == ["--mem-per-cpu=300", "--cpus-per-task=2", "--time=1:30:00",
                      "--partition=debug", f"--nodelist={node}"]
    output = tmp_path / "env.out"
    job_id = sbatch(tokens, output)
    # While it waits or runs, the options' sibling that cannot run: one held job with the
    # node excluded, as a white list of other hosts asks.
    excluded = native_specification(make_spec(white_list=["ghost-a", "ghost-b"]),
                                    SlurmOptions(nodes=(node, "ghost-a", "ghost-b")))
    assert excluded == f"--exclude={node}"
    held = sbatch([excluded], tmp_path / "held.out", "--hold")
    try:
        assert scontrol_job(held)["ExcNodeList"] == node
    finally:
        subprocess.run(["scancel", held], check=False)
    record = wait_for_end(job_id)
    assert record["JobState"] == "COMPLETED", record
    assert record["MinMemoryCPU"] == "300M"
    assert record["NumCPUs"] == "2" and record["CPUs/Task"] == "2"
    assert record["TimeLimit"] == "01:30:00"
    assert record["Partition"] == "debug"
    assert record["ReqNodeList"] == node and record["ExcNodeList"] == "(null)"
    environment = dict(line.split("=", 1) for line in output.read_text().splitlines()
                       if "=" in line)
    assert environment["SLURM_CPUS_PER_TASK"] == "2"
    assert environment["SLURM_MEM_PER_CPU"] == "300"
    assert environment["SLURM_JOB_PARTITION"] == "debug"


# -- a map, through slurm-drmaa's way of submitting, emulated with sbatch ---------------


class SbatchAsSlurmDrmaa:
    """Does with a submission what slurm-drmaa does (natefoo/slurm-drmaa, session.c and
    job.c), with sbatch, in the test process (which may have loaded Grid Engine's
    libdrmaa, so cannot load slurm-drmaa's): the command in a ``#!/bin/bash``
    script with each argument in single quotes; the increment placeholder as ``%a``; the
    submitting process's environment, then the template's; an array for more than one
    job, numbered from 1; ``ARRAY_INDEX`` ids."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.submitted: list[str] = []

    def submit(self, *, command: Sequence[str], environment: Mapping[str, str],
               working_dir: str, output: str, error: str, native: str, name: str,
               count: int) -> list[str]:
        script = self.directory / f"script-{len(self.submitted)}.sh"
        script.write_text(f"#!/bin/bash\n{command[0]}"
                          + "".join(f" '{word}'" for word in command[1:]) + "\n")
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--chdir={working_dir}",
                f"--output={output.replace(INCREMENT_PLACEHOLDER, '%a')}",
                f"--error={error.replace(INCREMENT_PLACEHOLDER, '%a')}", *native.split()]
        argv += [f"--array=1-{count}"] if count > 1 else []
        done = subprocess.run([*argv, str(script)], capture_output=True, text=True,
                              env={**os.environ, **environment}, timeout=60)
        if done.returncode != 0:
            raise DrmaaError(f"slurm_submit_batch_job: {done.stderr.strip()}")
        number = done.stdout.strip().split(";")[0]
        self.submitted.append(number)
        return [number] if count == 1 else [f"{number}_{i}" for i in range(1, count + 1)]

    def reap(self) -> None:
        pass

    def take(self, ids: Sequence[str]) -> dict[str, Ending]:
        return {}

    def terminate(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], check=True, timeout=60)

    def release(self) -> None:
        pass


def where_it_ran(x: int) -> dict[str, Any]:
    return {"value": x * x, **{k: v for k, v in os.environ.items() if k.startswith("SLURM_")}}


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the jobs need not import it


@pytest.mark.timeout(180)  # the jobs wait while other jobs fill the node
def test_a_map_runs_through_slurm_drmaa_s_way_of_submitting(
        slurm_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gridmap_slurm_drmaa.backend as backend_module

    from gridmap_core import Job, process_jobs
    from gridmap_core.model.config import SETTINGS

    connection = SbatchAsSlurmDrmaa(tmp_path)
    monkeypatch.setattr(backend_module, "slurm_library_problem", lambda: None)
    monkeypatch.setattr(backend_module, "DrmaaConnection",
                        type("Emulated", (), {"acquire": staticmethod(lambda: connection)}))
    for name, value in {"CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 1,
                        "MAX_IDLE_HEARTBEATS": 0,
                        "REUSE_RUNNERS": False}.items():  # so element i runs task i
        monkeypatch.setenv(SETTINGS[name].env_var, str(value))
    jobs = [Job(where_it_ran, [x], mem_free="100M", queue="debug", name="emulated")
            for x in range(3)]
    jobs.append(Job(where_it_ran, [7], mem_free="100M", num_slots=2, name="alone"))
    process_jobs(jobs, backend="slurm_drmaa", require_cluster=True, temp_dir=str(tmp_path))
    assert [job.ret["value"] for job in jobs] == [0, 1, 4, 49]
    array, alone = connection.submitted
    # The three that share a specification ran as one array, element i as task i.
    assert {job.ret["SLURM_ARRAY_JOB_ID"] for job in jobs[:3]} == {array}
    assert [job.ret["SLURM_ARRAY_TASK_ID"] for job in jobs[:3]] == ["1", "2", "3"]
    assert jobs[3].ret["SLURM_JOB_ID"] == alone and "SLURM_ARRAY_JOB_ID" not in jobs[3].ret
    assert jobs[3].ret["SLURM_CPUS_PER_TASK"] == "2"


# -- the conformance suite, with a slurm-drmaa library ----------------------------------


def require_library() -> None:
    """In the suite's own process: the library must serve Slurm, or every test fails."""
    problem = slurm_library_problem()
    if problem:
        pytest.fail(f"backend slurm_drmaa is not usable: {problem}", pytrace=False)


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("slurm_cluster")
class SlurmDrmaaConformance(BackendConformance):
    """Collected only in the process test_the_conformance_suite_passes starts (as
    TestSlurmDrmaaConformance, below)."""

    backend = "slurm_drmaa"
    settings: ClassVar[dict[str, Any]] = {"DEFAULT_TEMP_DIR": tempfile.gettempdir()}

    @pytest.fixture(autouse=True)
    def _library_is_usable(self) -> None:
        require_library()

    def assert_ran_on_backend(self, where: Mapping[str, Any]) -> None:
        super().assert_ran_on_backend(where)
        # Slurm sets these for each job it starts; a local run has none.
        environment = where["environment"]
        assert environment.get("SLURM_JOB_ID", "").isdigit(), environment.get("SLURM_JOB_ID")
        assert environment.get("SLURM_JOB_PARTITION") == "debug"
        assert "gridmap_core/node/runner.py" in where["argv"][0]

    def assert_resources_honoured(self, where: Mapping[str, Any],
                                  request: Mapping[str, Any]) -> None:
        environment = where["environment"]
        slots = str(request["num_slots"])
        # Granted by slurmd (the CPUs on the node), and told as sbatch tells it.
        assert environment["SLURM_CPUS_ON_NODE"] == slots
        assert environment["SLURM_JOB_CPUS_PER_NODE"] == slots
        assert environment["SLURM_CPUS_PER_TASK"] == slots
        assert environment["SLURM_MEM_PER_CPU"] == "600"  # h_vmem is per slot


def own_record(x: int) -> dict[str, Any]:
    """``x``, the job's own record in slurmctld, its environment and where its output
    goes, seen from inside the job."""
    job_id = os.environ["SLURM_JOB_ID"]
    lines = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                           text=True, check=True, timeout=60).stdout.splitlines()
    # An array's first element has the array's number: scontrol then shows every element.
    records = [dict(part.split("=", 1) for part in line.split() if "=" in part)
               for line in lines]
    return {"value": x,
            "record": next(record for record in records if record["JobId"] == job_id),
            "environment": {k: v for k, v in os.environ.items() if k.startswith("SLURM_")},
            "stdout": os.readlink("/proc/self/fd/1"),
            "stderr": os.readlink("/proc/self/fd/2"),
            "cpus": len(os.sched_getaffinity(0))}


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("slurm_cluster")
class SlurmDrmaaLibrary:
    """What the real slurm-drmaa library makes of a map's requests, read back from
    slurmctld by the jobs themselves (collected in the suite's own process, as
    TestSlurmDrmaaLibrary)."""

    @pytest.fixture(autouse=True)
    def _library_is_usable(self) -> None:
        require_library()

    def run(self, jobs: list[Any], tmp_path: Path) -> None:
        from gridmap_core import process_jobs
        from gridmap_core.model.config import SETTINGS

        settings = {"CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 1,
                    "REUSE_RUNNERS": False}  # so that element i runs job i
        with pytest.MonkeyPatch.context() as patch:
            for name, value in settings.items():
                patch.setenv(SETTINGS[name].env_var, str(value))
            process_jobs(jobs, backend="slurm_drmaa", require_cluster=True,
                         temp_dir=str(tmp_path))

    def test_a_job_is_granted_what_it_asked_for(self, tmp_path: Path) -> None:
        from gridmap_core import Job

        job = Job(own_record, [5], num_slots=2, h_vmem="300M", h_rt="1:30:00",
                  queue="debug", name="drmaa-granted")
        self.run([job], tmp_path)
        seen = job.ret
        record = seen["record"]
        assert seen["value"] == 5
        assert record["NumCPUs"] == "2" and record["CPUs/Task"] == "2", record
        assert seen["cpus"] == 2  # the CPUs the job may run on
        assert record["MinMemoryCPU"] == "300M", record
        assert record["TimeLimit"] == "01:30:00", record
        assert record["Partition"] == "debug", record
        assert record["JobName"] == "drmaa-granted", record
        assert seen["environment"]["SLURM_CPUS_PER_TASK"] == "2"
        # The runner's output goes to the map's log files, stdout and stderr apart, as
        # slurmctld records them.
        assert seen["stdout"] == record["StdOut"] and seen["stderr"] == record["StdErr"]
        assert seen["stdout"] != seen["stderr"]
        assert seen["stdout"].startswith(str(tmp_path)), seen["stdout"]

    def test_jobs_alike_are_one_array_from_run_bulk_jobs(self, tmp_path: Path) -> None:
        from gridmap_core import Job

        jobs = [Job(own_record, [x], mem_free="100M", name="drmaa-array") for x in range(3)]
        self.run(jobs, tmp_path)
        assert [job.ret["value"] for job in jobs] == [0, 1, 2]
        records = [job.ret["record"] for job in jobs]
        assert len({record["ArrayJobId"] for record in records}) == 1, records
        assert [record["ArrayTaskId"] for record in records] == ["1", "2", "3"]
        assert {record["JobName"] for record in records} == {"drmaa-array"}
        assert all(record["MinMemoryCPU"] == "100M" for record in records), records
        # Each element writes its own log files (slurm-drmaa's %a).
        assert len({job.ret["stdout"] for job in jobs}) == 3


if os.environ.get(IN_OWN_PROCESS) == "1":
    TestSlurmDrmaaConformance = SlurmDrmaaConformance
    TestSlurmDrmaaLibrary = SlurmDrmaaLibrary


@pytest.mark.timeout(1600)
def test_the_conformance_suite_passes_on_slurm_drmaa(slurm_cluster: str) -> None:
    # The drmaa package loads one DRMAA library per process, for good (RTLD_GLOBAL), and
    # the tests of the Grid Engine backend load Grid Engine's into this one. So the suite
    # runs in a Python of its own, with DRMAA_LIBRARY_PATH naming slurm-drmaa's library.
    environment = {**os.environ, "DRMAA_LIBRARY_PATH": slurm_drmaa_library(),
                   IN_OWN_PROCESS: "1"}
    here = Path(__file__).relative_to(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         f"{here}::TestSlurmDrmaaConformance", f"{here}::TestSlurmDrmaaLibrary"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, (done.stdout[-6000:] + done.stderr[-2000:])
    summary = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \(.*\))?", summary), (
        f"the suite's own process did not pass every test: {done.stdout[-1500:]}")
