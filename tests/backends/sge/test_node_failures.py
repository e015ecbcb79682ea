"""Grid Engine's failed nodes, without a cluster: queue instances in state u or E as the
scheduler's down_hosts, in Grid Engine's words; a resubmission kept off them (a
hostname request, or a white_list less them, never every host); the host a job runs
on (JobStatus.host); and the note of a job that waits for hosts that failed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from gridmap_sge.native import NativeOptions, Placement, native_specification, placement
from gridmap_sge.qstat import failed_hosts, queue_note

from gridmap_core.backend import JobSpec
from gridmap_core.backend.scheduler import Launch, Status
from gridmap_core.model.resources import Resources
from tests.backends.sge.fakes import Clock, Harness

pytestmark = pytest.mark.timeout(30)

HOSTS = ("mn-sge1", "mn-sge2", "mn-sge3")
# qstat -f 25 s after mn-sge2 was killed (load_report_time 5 s, max_unheard 20 s).
QUEUES = {"all.q@mn-sge1": "", "all.q@mn-sge2": "au", "all.q@mn-sge3": ""}
WORDS = ("Grid Engine says all.q@mn-sge2 is in state au (its execution daemon does not "
         "answer)")


def spec_of(**resources: object) -> JobSpec:
    return JobSpec(function=print, resources=Resources.parse(**resources))  # type: ignore[arg-type]


def native(avoid: tuple[str, ...] = (), **resources: object) -> str:
    return native_specification(spec_of(**resources), NativeOptions(), array=False,
                                avoid=avoid, exec_hosts=HOSTS)


def test_failed_hosts_are_told_in_grid_engine_s_words() -> None:
    assert failed_hosts(QUEUES) == {"mn-sge2": WORDS}
    assert failed_hosts({"all.q@n1": "E", "long.q@n1": "u", "all.q@n2": "d"}) == {
        "n1": "Grid Engine says all.q@n1 is in state E (it is in error state (see `qstat "
              "-explain E`)); long.q@n1 is in state u (its execution daemon does not answer)"}
    assert failed_hosts({"all.q@mn-sge1": "a"}) == {}  # only loaded


# -- resubmissions kept off a failed node ----------------------------------------------------

def test_a_job_without_a_white_list_is_kept_off_the_failed_node() -> None:
    assert native(("mn-sge2",)) == "-l hostname=!mn-sge2"
    assert native(("MN-SGE2.cluster",)) == "-l hostname=!mn-sge2"  # the runner's spelling
    assert native(("mn-sge2", "mn-sge3")) == "-l hostname=!(mn-sge2|mn-sge3)"
    assert native(("elsewhere",)) == ""


def test_every_host_failed_is_no_exclusion() -> None:
    assert native(HOSTS) == ""
    # Unknown execution hosts: nothing can be checked, nothing excluded.
    assert native_specification(spec_of(), NativeOptions(), array=False,
                                avoid=("mn-sge2",)) == ""


def test_a_white_list_loses_the_failed_node() -> None:
    assert native(("mn-sge2",), white_list=["mn-sge1", "mn-sge2"]) == "-l hostname=mn-sge1"
    assert native(("mn-sge2",), white_list=["mn-sge1", "mn-sge2"], queue="all.q") == \
        "-q all.q@mn-sge1"
    # Pinned to the failed node: it waits for it.
    assert native(("mn-sge2",), white_list=["mn-sge2"]) == "-l hostname=mn-sge2"


def test_a_job_that_names_its_hosts_itself_is_left_alone() -> None:
    assert native(("mn-sge2",), resources=["h=mn-sge2"]) == "-l h=mn-sge2"
    assert placement(spec_of(resources=["hostname=mn-sge*"]).resources, ("mn-sge2",),
                     HOSTS) == Placement()


def test_a_resubmission_is_submitted_kept_off_the_node(harness: Harness,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness.scheduler, "peers", lambda: HOSTS)
    launch = dataclasses.replace(harness.launch_of([0], attempt=1), avoid=("mn-sge2",))
    harness.scheduler.launch(launch)
    assert harness.connection.submitted[-1]["native"] == "-l hostname=!mn-sge2"


def test_a_first_launch_does_not_ask_for_the_hosts(harness: Harness,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def peers() -> tuple[str, ...]:
        raise AssertionError("qconf -sel asked for a launch that avoids nothing")

    monkeypatch.setattr(harness.scheduler, "peers", peers)
    harness.launch([0])
    assert harness.connection.submitted[-1]["native"] == ""


# -- the scheduler's view --------------------------------------------------------------

def test_down_hosts_is_one_full_qstat(harness: Harness) -> None:
    harness.qstat.queues = dict(QUEUES)
    assert harness.scheduler.down_hosts() == {"mn-sge2": WORDS}
    assert harness.qstat.calls == [True]


def test_a_running_job_s_host_is_its_queue_instance_s(harness: Harness) -> None:
    [job_id] = harness.launch([0])
    harness.qstat.jobs = {("100", None): "r"}
    harness.qstat.places = {("100", None): "all.q@mn-sge2"}
    assert harness.poll([job_id])[job_id].host == "mn-sge2"


# -- a wait for failed nodes ---------------------------------------------------------------

def test_the_note_of_a_wait_for_a_failed_host() -> None:
    assert queue_note(QUEUES, hosts=["mn-sge2"]) == (
        "no queue instance can run them: all.q@mn-sge2 is in state au (a load threshold is "
        "exceeded; its execution daemon does not answer)")
    assert queue_note(QUEUES, hosts=["mn-sge1", "mn-sge2"]) == ""
    assert queue_note(QUEUES) == ""
    # Kept off the nodes that work, it waits for the failed one alone.
    assert "all.q@mn-sge2 is in state au" in queue_note(QUEUES, avoid=["mn-sge1", "mn-sge3"])
    assert queue_note(QUEUES, hosts=["mn-sge9"]) == "no queue instance on mn-sge9 exists"


def test_a_job_pinned_to_a_failed_host_is_told_why_it_waits(harness: Harness,
                                                             clock: Clock, tmp_path: Path
                                                             ) -> None:
    spec = JobSpec(function=print, resources=Resources.parse(white_list=["mn-sge2"]),
                   working_dir=str(tmp_path), copy_env=False)
    [job_id] = harness.scheduler.launch(Launch(spec=spec, tasks=[0], attempt=0,
                                               log_dir=str(tmp_path), runner=["runner"]))
    harness.qstat.queues = dict(QUEUES)
    harness.qstat.jobs = {("100", None): "qw"}
    harness.poll([job_id])
    status = harness.poll([job_id])[job_id]  # the second poll of a wait reads the queues
    assert status.status is Status.QUEUED
    assert status.note.startswith("no queue instance can run them: all.q@mn-sge2 is in "
                                  "state au ("), status.note
    assert "its execution daemon does not answer" in status.note


def test_states_read_to_explain_a_death_explain_a_wait_at_once(harness: Harness,
                                                                 clock: Clock,
                                                                 tmp_path: Path) -> None:
    harness.qstat.queues = dict(QUEUES)
    harness.scheduler.down_hosts()  # asked by the monitor about a job that fell silent
    spec = JobSpec(function=print, resources=Resources.parse(white_list=["mn-sge2"]),
                   working_dir=str(tmp_path), copy_env=False)
    [job_id] = harness.scheduler.launch(Launch(spec=spec, tasks=[0], attempt=1,
                                               log_dir=str(tmp_path), runner=["runner"]))
    harness.qstat.jobs = {("100", None): "qw"}
    assert "all.q@mn-sge2 is in state au" in harness.poll([job_id])[job_id].note
    assert harness.qstat.calls == [True, False]  # no second qstat -f
