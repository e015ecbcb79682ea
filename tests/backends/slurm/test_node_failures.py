"""Slurm's failed nodes, without a cluster: sinfo's failed nodes in Slurm's words (the
scheduler's down_hosts), a resubmission that avoids them (--exclude, or a white_list
less them, never every node), the node a job ran on (JobStatus.host), and the note of
a job that waits for nodes that all failed. The words are those Slurm 22.05 printed on
the three-node test cluster after a node was killed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from gridmap_slurm.cluster import Cluster
from gridmap_slurm.nodes import SINFO_FAILED, failed_nodes, wait_note
from gridmap_slurm.options import SlurmOptions, allowed_nodes, job_options

from gridmap_core.backend.scheduler import Status
from tests.backends.slurm.fakes import Clock, Harness, make_spec

pytestmark = pytest.mark.timeout(30)

NODES = ("mn-slurm1", "mn-slurm2", "mn-slurm3")
# sinfo -h -N -t down,no_respond,fail -O NodeList:|,NodeHost:|,StateComplete:|,Reason:|
# 15 s after the node was killed, then 30 s after.
NOT_RESPONDING = "mn-slurm2|mn-slurm2|mixed+completing+not_responding|none|\n"
DOWN = "mn-slurm2|mn-slurm2|down+not_responding|Not responding|\n"


def test_failed_nodes_are_told_in_slurm_s_words() -> None:
    assert failed_nodes(NOT_RESPONDING) == {
        "mn-slurm2": "Slurm says mn-slurm2 is MIXED+COMPLETING+NOT_RESPONDING"}
    assert failed_nodes(DOWN) == {
        "mn-slurm2": "Slurm says mn-slurm2 is DOWN+NOT_RESPONDING: Not responding"}


def test_a_node_whose_host_name_differs_is_known_by_both() -> None:
    found = failed_nodes("node7|n7.cluster.example|down*|Not responding|\n"
                         "node8|node8|fail|disk errors|\n")
    assert found == {
        "node7": "Slurm says node7 is DOWN+NOT_RESPONDING: Not responding",
        "n7.cluster.example": "Slurm says node7 is DOWN+NOT_RESPONDING: Not responding",
        "node8": "Slurm says node8 is FAIL: disk errors",
    }


def test_no_failed_node_is_an_empty_answer() -> None:
    assert failed_nodes("") == {}


# -- resubmissions that avoid a failed node ------------------------------------------------

def test_a_job_without_a_white_list_excludes_the_failed_node() -> None:
    options = SlurmOptions(nodes=NODES)
    assert job_options(make_spec(), options, ["mn-slurm2"]) == ["--exclude=mn-slurm2"]
    # Any spelling of the host: the runner's may be its full name.
    assert job_options(make_spec(), options, ["MN-SLURM2.cluster"]) == ["--exclude=mn-slurm2"]
    assert job_options(make_spec(), options, ["elsewhere"]) == []


def test_every_node_failed_is_no_exclusion() -> None:
    assert job_options(make_spec(), SlurmOptions(nodes=NODES), NODES) == []


def test_a_white_list_loses_the_failed_node() -> None:
    options = SlurmOptions(nodes=NODES)
    spec = make_spec(white_list=["mn-slurm1", "mn-slurm2"])
    assert job_options(spec, options, ["mn-slurm2"]) == ["--nodelist=mn-slurm1"]
    spec = make_spec(white_list=["mn-slurm1", "mn-slurm2", "mn-slurm3"])
    assert job_options(spec, options, ["mn-slurm2"]) == ["--exclude=mn-slurm2"]


def test_a_job_pinned_to_the_failed_node_waits_for_it() -> None:
    spec = make_spec(white_list=["mn-slurm2"])
    assert job_options(spec, SlurmOptions(nodes=NODES), ["mn-slurm2"]) == [
        "--nodelist=mn-slurm2"]


@pytest.mark.parametrize("raw", ["--exclude=mn-slurm3", "-w mn-slurm1", "--nodelist=mn-slurm1"])
def test_a_job_that_names_its_nodes_itself_is_left_alone(raw: str) -> None:
    options = SlurmOptions(nodes=NODES)
    assert "--exclude=mn-slurm2" not in job_options(make_spec(resources=[raw]), options,
                                                    ["mn-slurm2"])
    site = SlurmOptions(nodes=NODES, extra=tuple(raw.split()))
    assert "--exclude=mn-slurm2" not in job_options(make_spec(), site, ["mn-slurm2"])


def test_unknown_nodes_avoid_nothing() -> None:
    assert job_options(make_spec(), SlurmOptions(), ["mn-slurm2"]) == []


def test_the_nodes_a_job_may_run_on() -> None:
    options = SlurmOptions(nodes=NODES)
    assert allowed_nodes(make_spec().resources, options) == NODES
    assert allowed_nodes(make_spec().resources, options, ["mn-slurm2"]) == (
        "mn-slurm1", "mn-slurm3")
    assert allowed_nodes(make_spec(white_list=["mn-slurm2"]).resources, options,
                         ["mn-slurm2"]) == ("mn-slurm2",)
    assert allowed_nodes(make_spec().resources, SlurmOptions()) is None


def test_a_resubmission_is_submitted_with_the_exclusion(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(cluster=Cluster(nodes=NODES), options=SlurmOptions(nodes=NODES))
    launch = dataclasses.replace(harness.launch_of([0], attempt=1), avoid=("mn-slurm2",))
    harness.scheduler.launch(launch)
    [sbatch] = harness.slurm.of("sbatch")
    assert "--exclude=mn-slurm2" in sbatch


# -- the scheduler's view --------------------------------------------------------------

def test_down_hosts_is_one_sinfo_of_the_failed_nodes(harness: Harness) -> None:
    harness.slurm.replies["sinfo"] = [(0, DOWN, "")]
    assert harness.scheduler.down_hosts() == {
        "mn-slurm2": "Slurm says mn-slurm2 is DOWN+NOT_RESPONDING: Not responding"}
    assert harness.slurm.of("sinfo") == [SINFO_FAILED]


def test_down_hosts_raises_when_sinfo_fails(harness: Harness) -> None:
    harness.slurm.replies["sinfo"] = [(1, "", "sinfo: error: Unable to contact slurm "
                                       "controller (connect failure)")]
    with pytest.raises(RuntimeError, match="Unable to contact slurm controller"):
        harness.scheduler.down_hosts()


def test_a_job_requeued_off_its_dead_node_keeps_that_node(harness: Harness,
                                                          clock: Clock) -> None:
    [job_id] = harness.launch([0])
    harness.slurm.squeue_lines = ["878_1|RUNNING|None|0|mn-slurm2|"]
    assert harness.poll([job_id])[job_id].host == "mn-slurm2"
    # Slurm put it back in the queue when the node went DOWN: no node while it waits.
    harness.slurm.squeue_lines = ["878_1|PENDING|BeginTime|0||"]
    harness.slurm.replies["sinfo"] = [(0, "", "")]
    status = harness.poll([job_id])[job_id]
    assert status.status is Status.QUEUED and status.host == "mn-slurm2"


# -- a wait for failed nodes ---------------------------------------------------------------

def test_the_note_of_a_wait_for_failed_nodes() -> None:
    down = failed_nodes(DOWN)
    assert wait_note(["mn-slurm2"], down) == (
        "the only node they may run on, mn-slurm2, failed: Slurm says mn-slurm2 is "
        "DOWN+NOT_RESPONDING: Not responding")
    assert wait_note(["mn-slurm1", "mn-slurm2"], down) == ""
    both = {**down, "mn-slurm1": "Slurm says mn-slurm1 is DOWN"}
    assert wait_note(["mn-slurm1", "mn-slurm2"], both) == (
        "every node they may run on failed: Slurm says mn-slurm1 is DOWN; Slurm says "
        "mn-slurm2 is DOWN+NOT_RESPONDING: Not responding")
    assert wait_note([], down) == ""


def test_a_job_pinned_to_a_failed_node_is_told_why_it_waits(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(nodes=NODES), options=SlurmOptions(nodes=NODES))
    [pinned] = harness.launch([0], white_list=["mn-slurm2"])
    [free] = harness.launch([1])
    # Slurm 22.05 gives a job pinned to a DOWN node no reason.
    harness.slurm.squeue_lines = ["878_1|PENDING|None|0|mn-slurm2|",
                                  "879_1|PENDING|Priority|0||"]
    harness.slurm.replies["sinfo"] = [(0, DOWN, "")]
    answer = harness.poll([pinned, free])
    assert answer[pinned].note == ("the only node they may run on, mn-slurm2, failed: Slurm "
                                   "says mn-slurm2 is DOWN+NOT_RESPONDING: Not responding")
    assert answer[free].note == ""  # two other nodes may run it
    # The failed nodes are read again only after a while; the note stays meanwhile.
    clock.now += 5
    assert harness.poll([pinned])[pinned].note == answer[pinned].note
    assert len(harness.slurm.of("sinfo")) == 1
    # Back in service: read again, the note is gone.
    clock.now += 30
    harness.slurm.replies["sinfo"] = [(0, "", "")]
    assert harness.poll([pinned])[pinned].note == ""


def test_running_jobs_read_no_node_states(harness: Harness, clock: Clock) -> None:
    ids = harness.launch([0, 1])
    harness.slurm.squeue_lines = ["878_1|RUNNING|None|0|mn-slurm1|",
                                  "878_2|RUNNING|None|0|mn-slurm3|"]
    harness.poll(ids)
    assert harness.slurm.of("sinfo") == []


def test_a_failing_sinfo_leaves_the_wait_as_slurm_explains_it(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(nodes=NODES), options=SlurmOptions(nodes=NODES))
    [job_id] = harness.launch([0], white_list=["mn-slurm2"])
    harness.slurm.squeue_lines = ["878_1|PENDING|JobHeldUser|0||"]
    harness.slurm.replies["sinfo"] = [(1, "", "sinfo: error: Socket timed out")]
    assert "scontrol release 878_1" in harness.poll([job_id])[job_id].note


def test_nodes_read_to_explain_a_death_explain_a_wait_at_once(
        make_harness: Callable[..., Harness], clock: Clock) -> None:
    harness = make_harness(cluster=Cluster(nodes=NODES), options=SlurmOptions(nodes=NODES))
    harness.slurm.replies["sinfo"] = [(0, DOWN, "")]
    harness.scheduler.down_hosts()  # asked by the monitor about a job that fell silent
    [job_id] = harness.launch([0], white_list=["mn-slurm2"])
    harness.slurm.squeue_lines = ["878_1|PENDING|None|0|mn-slurm2|"]
    assert "mn-slurm2 is DOWN+NOT_RESPONDING" in harness.poll([job_id])[job_id].note
    assert len(harness.slurm.of("sinfo")) == 1
