"""Launching with fake Slurm commands: sbatch arrays, job scripts, options, environment."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from gridmap_slurm.cluster import Cluster
from gridmap_slurm.commands import SlurmError
from gridmap_slurm.options import SlurmOptions
from gridmap_slurm.scheduler import job_environment

from gridmap_core.model.resources import ResourceError
from tests.backends.slurm.fakes import RUNNER, Harness, fake_tools, option

pytestmark = pytest.mark.timeout(30)


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


def test_a_percent_in_the_job_name_is_not_expanded_by_slurm(harness: Harness,
                                                            tmp_path: Path) -> None:
    harness.launch([0, 1], name="run%j", attempt=0)
    [argv] = harness.slurm.calls
    assert option(argv, "output") == f"{tmp_path}/run%%j.0-1.%a.0.out"
    # The log read for a cause of death is the file Slurm writes.
    job = harness.scheduler.jobs.job("878_2")
    assert job is not None and job.err_log == f"{tmp_path}/run%j.0-1.2.0.err"


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


def test_a_jobs_own_comment_is_kept_and_not_replaced_by_the_token(harness: Harness) -> None:
    harness.launch([0], resources=["--comment=mine"])
    [argv] = harness.slurm.calls
    assert [a for a in argv if a.startswith("--comment=")] == ["--comment=mine"]


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
