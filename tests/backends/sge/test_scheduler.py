"""The Grid Engine scheduler over a fake DRMAA connection and qstat: launches, polls, cancels."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from gridmap_sge import scheduler as sge_scheduler
from gridmap_sge.native import NativeOptions
from gridmap_sge.qstat import QstatError

from gridmap_core.backend.drmaa import INCREMENT_PLACEHOLDER, DrmaaError, Ending
from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.model.death import DeathKind
from tests.backends.sge.fakes import Clock, Harness

pytestmark = pytest.mark.timeout(30)


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
    assert error.kind is DeathKind.SCHEDULER_ERROR
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
    assert answer["100.2"].kind is DeathKind.SCHEDULER_ERROR
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
    assert status == JobStatus(Status.UNKNOWN, "Grid Engine no longer lists job 100, and "
                               "reported no ending for it", kind=DeathKind.VANISHED)
    assert harness.qstat.calls == [False, False, False]  # never ran: no node to blame


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

    # Between reads, the note stays as the states last read tell it.
    clock.now += 30
    assert harness.poll([job_id])[job_id].note == explained.note
    harness.qstat.queues = {"all.q@node1": "", "all.q@node2": "u"}
    clock.now += 30
    assert harness.poll([job_id])[job_id].note == ""  # node1 is back
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


def _running_on(harness: Harness, place: str) -> list[str]:
    """Launch two jobs, seen running: the first in queue instance ``place``."""
    ids = harness.launch([0, 1])
    harness.qstat.jobs = {("100", 1): "r", ("100", 2): "r"}
    harness.qstat.places = {("100", 1): place, ("100", 2): "all.q@node2"}
    assert harness.poll(ids)["100.1"].status is Status.RUNNING
    return ids


@pytest.mark.parametrize("state", ["au", "u", "E", "dE"])
def test_a_job_killed_on_a_failed_node_died_of_its_node(harness: Harness,
                                                        state: str) -> None:
    ids = _running_on(harness, "all.q@node1")
    harness.qstat.queues = {"all.q@node1": state, "all.q@node2": ""}
    harness.connection.ended["100.1"] = Ending("100.1", signal="SIGKILL")
    harness.connection.ended["100.2"] = Ending("100.2", signal="SIGKILL")
    answer = harness.poll(ids)
    assert answer["100.1"].kind is DeathKind.NODE_FAILED
    assert answer["100.1"].cause.startswith("killed by SIGKILL; its node failed: all.q@node1 "
                                            f"is in state {state} (")
    assert answer["100.1"].resubmit is True
    # Its neighbour's node answers: killed by someone.
    assert answer["100.2"] == JobStatus(Status.ENDED, "killed by SIGKILL", None,
                                        kind=DeathKind.KILLED, host="node2")
    assert answer["100.1"].host == "node1"  # where it ran
    assert harness.qstat.calls == [False, True]  # one qstat -f, for both


def test_a_job_that_vanished_from_a_failed_node_died_of_its_node(harness: Harness,
                                                                 clock: Clock) -> None:
    ids = _running_on(harness, "all.q@node1")
    harness.qstat.jobs = {("100", 2): "r"}
    harness.qstat.queues = {"all.q@node1": "au"}
    assert harness.poll(ids) == {"100.2": JobStatus(Status.RUNNING, host="node2")}
    clock.now += 30
    status = harness.poll(ids)["100.1"]
    assert status.status is Status.UNKNOWN and status.kind is DeathKind.NODE_FAILED
    assert status.cause.endswith("; its node failed: all.q@node1 is in state au (its "
                                 "execution daemon does not answer)")


def test_a_kill_on_a_node_that_answers_is_a_kill(harness: Harness) -> None:
    ids = _running_on(harness, "all.q@node1")
    harness.qstat.queues = {"all.q@node1": "a", "all.q@node2": ""}  # only loaded
    harness.connection.ended["100.1"] = Ending("100.1", signal="SIGTERM")
    status = harness.poll(ids)["100.1"]
    assert status == JobStatus(Status.ENDED, "killed by SIGTERM", None, kind=DeathKind.KILLED,
                               host="node1")


def test_a_kill_stays_a_kill_when_queue_states_cannot_be_read(harness: Harness) -> None:
    _running_on(harness, "all.q@node1")
    harness.connection.ended["100.1"] = Ending("100.1", signal="SIGKILL")
    harness.qstat.error = QstatError("qstat -f -xml -u alice exited 1: cannot reach qmaster")
    answer = harness.poll(["100.1"])  # only the ended job: the poll needs no qstat
    assert answer == {"100.1": JobStatus(Status.ENDED, "killed by SIGKILL", None,
                                         kind=DeathKind.KILLED, host="node1")}


@pytest.mark.parametrize("ending", [
    Ending("100.1", exited=True, exit_status=1),
    Ending("100.1", aborted=True, usage={"ru_wallclock": "5"}),
])
def test_other_deaths_on_a_failed_node_ask_nothing_more(
        harness: Harness, monkeypatch: pytest.MonkeyPatch, ending: Ending) -> None:
    monkeypatch.setattr(sge_scheduler, "accounting_failure", lambda job_id: (100, "qdel"))
    ids = _running_on(harness, "all.q@node1")
    harness.qstat.queues = {"all.q@node1": "au"}
    harness.connection.ended["100.1"] = ending
    status = harness.poll(ids)["100.1"]
    assert status.kind in (DeathKind.EXITED, DeathKind.CANCELLED)
    assert harness.qstat.calls == [False, False]  # no qstat -f


def test_a_job_that_waits_again_has_no_node(harness: Harness) -> None:
    # Rescheduled (Rq): where it ran before is not where it dies.
    ids = _running_on(harness, "all.q@node1")
    harness.qstat.jobs = {("100", 1): "Rq", ("100", 2): "r"}
    harness.qstat.places = {("100", 2): "all.q@node2"}
    harness.poll(ids)
    harness.qstat.queues = {"all.q@node1": "au"}
    harness.connection.ended["100.1"] = Ending("100.1", signal="SIGKILL")
    assert harness.poll(ids)["100.1"].kind is DeathKind.KILLED
