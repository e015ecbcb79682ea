"""The rules that find a job dead (gridmap_core/map/liveness.py), and the payloads of
protocol messages (gridmap_core/wire/messages.py)."""

from __future__ import annotations

import json
import os
import pickle
import threading
import traceback

import pytest

from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.map.liveness import (
    Limits,
    Verdict,
    idle_warning,
    is_idle,
    judge_heartbeat,
    judge_silence,
    judge_status,
)
from gridmap_core.model.death import DeathKind
from gridmap_core.model.job import RemoteError
from gridmap_core.model.serialization import dumps
from gridmap_core.wire.exits import EXIT_JOB_DIED, EXIT_LOST, EXIT_SETUP, EXIT_UNREACHABLE
from gridmap_core.wire.messages import (
    MAX_LOG_TAIL,
    Heartbeat,
    decode_heartbeat,
    decode_result,
    decode_task,
    encode_error,
    encode_heartbeat,
    encode_task,
    encode_value,
)

LIMITS = Limits(max_silence=30.0, idle_threshold=5.0, max_idle_time=60.0)


def beat(cpu: float = 50.0, memory: int = 100 * 2**20, status: str = "running") -> Heartbeat:
    return Heartbeat(cpu=cpu, memory=memory, host_name="node1", status=status)


# -- judge_heartbeat ---------------------------------------------------------------


def test_memory_over_the_limit_is_out_of_memory() -> None:
    limits = Limits(30.0, 5.0, 60.0, memory_limit=150 * 2**20)
    verdict = judge_heartbeat(beat(memory=300 * 2**20), 0.0, limits)
    assert verdict is not None
    assert verdict.cause.startswith("out of memory")
    assert "300 MB" in verdict.cause and "h_vmem=150 MB" in verdict.cause
    assert not verdict.resubmit  # it would grow past its limit again


def test_memory_at_or_under_the_limit_or_without_one_is_fine() -> None:
    limit = 150 * 2**20
    assert judge_heartbeat(beat(memory=limit), 0.0, Limits(30.0, 5.0, 60.0, limit)) is None
    assert judge_heartbeat(beat(memory=10 * limit), 0.0, LIMITS) is None


def test_idle_means_sleeping_at_low_cpu() -> None:
    assert is_idle(beat(cpu=0.0, status="sleeping"), LIMITS)
    assert is_idle(beat(cpu=5.0, status="sleeping"), LIMITS)  # at the threshold
    assert not is_idle(beat(cpu=5.1, status="sleeping"), LIMITS)  # busy
    assert not is_idle(beat(cpu=0.0, status="running"), LIMITS)
    assert not is_idle(beat(cpu=0.0, status="disk-sleep"), LIMITS)  # waiting on a disk


def test_cpu_below_what_can_be_measured_is_idle_at_short_heartbeat_intervals() -> None:
    # One clock tick (10 ms) in half a second reads 2 %: the sampling's own cost.
    assert is_idle(beat(cpu=2.0, status="sleeping"), LIMITS, 0.5)
    assert not is_idle(beat(cpu=20.0, status="sleeping"), LIMITS, 0.5)
    assert not is_idle(beat(cpu=6.0, status="sleeping"), LIMITS, 10.0)  # 0.6 s of CPU


def test_the_idle_limit_is_in_seconds() -> None:
    idle = beat(cpu=0.5, status="sleeping")
    assert judge_heartbeat(idle, 59.9, LIMITS) is None
    verdict = judge_heartbeat(idle, 60.0, LIMITS)
    assert verdict is not None and verdict.cause.startswith("idle")
    assert "for 60 s" in verdict.cause and "MAX_IDLE_TIME=60" in verdict.cause
    assert verdict.resubmit


def test_the_cause_names_the_settings_that_gave_the_limit() -> None:
    limits = Limits(30.0, 5.0, 30.0,
                    idle_setting="MAX_IDLE_HEARTBEATS=3 x HEARTBEAT_FREQUENCY=10 = 30 s")
    verdict = judge_heartbeat(beat(cpu=0.0, status="sleeping"), 31.0, limits)
    assert verdict is not None and "MAX_IDLE_HEARTBEATS=3 x HEARTBEAT_FREQUENCY=10" in verdict.cause


def test_zero_max_idle_time_turns_idle_detection_off() -> None:
    limits = Limits(30.0, 5.0, max_idle_time=0)
    assert judge_heartbeat(beat(cpu=0.0, status="sleeping"), 1e9, limits) is None
    assert idle_warning(1e9, limits) is None


def test_an_idle_job_is_warned_of_from_half_its_limit() -> None:
    assert idle_warning(0.0, LIMITS) is None
    assert idle_warning(29.9, LIMITS) is None
    warning = idle_warning(31.0, LIMITS)
    assert warning == "idle for 31 s; it will be killed at 60 s (MAX_IDLE_TIME=60)"


# -- judge_silence -----------------------------------------------------------------


def test_silence_up_to_the_limit_is_fine() -> None:
    assert judge_silence(0.0, True, "tcp://10.0.0.1:5555", LIMITS) is None
    assert judge_silence(30.0, True, "tcp://10.0.0.1:5555", LIMITS) is None
    assert judge_silence(30.0, False, "tcp://10.0.0.1:5555", LIMITS) is None


def test_silence_after_fetching_means_missing_heartbeats() -> None:
    verdict = judge_silence(31.0, True, "tcp://10.0.0.1:5555", LIMITS)
    assert verdict is not None
    assert verdict.cause.startswith("no heartbeat for 31 s")
    assert "MAX_TIME_BETWEEN_HEARTBEATS=30" in verdict.cause
    assert verdict.resubmit


def test_silence_without_any_contact_names_the_monitor_address() -> None:
    verdict = judge_silence(45.0, False, "tcp://10.0.0.1:5555", LIMITS)
    assert verdict is not None
    assert "tcp://10.0.0.1:5555" in verdict.cause
    assert "without contacting the monitor" in verdict.cause
    assert not verdict.cause.startswith("no heartbeat")


# -- judge_status ------------------------------------------------------------------


def test_an_ended_job_with_a_cause_keeps_it() -> None:
    verdict = judge_status(JobStatus(Status.ENDED, "killed by SIGKILL"), "j1")
    assert verdict == Verdict("killed by SIGKILL", True)


def test_an_ended_job_without_a_cause_gets_one_with_its_exit_status() -> None:
    verdict = judge_status(JobStatus(Status.ENDED, exit_status=1), "j1")
    assert verdict is not None
    assert verdict.cause == "ended without sending a result (exit status 1)"
    plain = judge_status(JobStatus(Status.ENDED), "j1")
    assert plain is not None and plain.cause == "ended without sending a result"
    zero = judge_status(JobStatus(Status.ENDED, exit_status=0), "j1")
    assert zero is not None and "exit status" not in zero.cause


def test_an_exit_status_already_in_the_cause_is_not_repeated() -> None:
    cause = "the runner could not start (exit status 2)"
    verdict = judge_status(JobStatus(Status.ENDED, cause, exit_status=2), "j1")
    assert verdict is not None and verdict.cause == cause
    other = judge_status(JobStatus(Status.ENDED, "out of memory", exit_status=137), "j1")
    assert other is not None and other.cause == "out of memory (exit status 137)"


def test_error_and_unknown_states_are_dead_with_a_default_cause() -> None:
    error = judge_status(JobStatus(Status.ERROR), "4711")
    assert error is not None and "4711" in error.cause and "error state" in error.cause
    unknown = judge_status(JobStatus(Status.UNKNOWN), "4711")
    assert unknown is not None and "4711" in unknown.cause and "no longer knows" in unknown.cause
    given = judge_status(JobStatus(Status.ERROR, "queue all.q@n1 in state E"), "4711")
    assert given is not None and given.cause == "queue all.q@n1 in state E"


def test_queued_and_running_jobs_are_alive() -> None:
    assert judge_status(JobStatus(Status.QUEUED), "j") is None
    assert judge_status(JobStatus(Status.RUNNING, "anything", exit_status=1), "j") is None


@pytest.mark.parametrize("status", [Status.ENDED, Status.ERROR, Status.UNKNOWN])
def test_the_resubmit_flag_is_carried(status: Status) -> None:
    no = judge_status(JobStatus(status, "deleted by user", resubmit=False), "j")
    yes = judge_status(JobStatus(status, "deleted by user", resubmit=True), "j")
    assert no is not None and not no.resubmit
    assert yes is not None and yes.resubmit


# -- kinds of death ----------------------------------------------------------------


def test_each_rule_gives_its_kind_of_death() -> None:
    limits = Limits(30.0, 5.0, 60.0, memory_limit=150 * 2**20)
    memory = judge_heartbeat(beat(memory=300 * 2**20), 0.0, limits)
    idle = judge_heartbeat(beat(cpu=0.0, status="sleeping"), 61.0, LIMITS)
    unheard = judge_silence(31.0, True, "tcp://10.0.0.1:5555", LIMITS)
    silent = judge_silence(45.0, False, "tcp://10.0.0.1:5555", LIMITS)
    assert [v.kind if v else None for v in (memory, idle, unheard, silent)] == [
        DeathKind.OUT_OF_MEMORY, DeathKind.IDLE, DeathKind.NO_HEARTBEAT, DeathKind.SILENT]


@pytest.mark.parametrize(("status", "kind"), [
    (JobStatus(Status.ENDED, exit_status=EXIT_UNREACHABLE), DeathKind.UNREACHABLE),
    (JobStatus(Status.ENDED, exit_status=EXIT_LOST), DeathKind.MONITOR_LOST),
    (JobStatus(Status.ENDED, exit_status=EXIT_SETUP), DeathKind.RUNNER_FAILED),
    (JobStatus(Status.ENDED, exit_status=EXIT_JOB_DIED), DeathKind.EXITED),
    (JobStatus(Status.ENDED, exit_status=-9), DeathKind.KILLED),
    (JobStatus(Status.ENDED, "killed by SIGKILL"), DeathKind.OTHER),
    (JobStatus(Status.ERROR), DeathKind.SCHEDULER_ERROR),
    (JobStatus(Status.UNKNOWN), DeathKind.VANISHED),
    # What the scheduler says wins over what the exit status suggests.
    (JobStatus(Status.ENDED, "out of memory", 137, kind=DeathKind.OUT_OF_MEMORY),
     DeathKind.OUT_OF_MEMORY),
    (JobStatus(Status.ENDED, "killed by SIGKILL", kind=DeathKind.KILLED), DeathKind.KILLED),
])
def test_a_schedulers_report_gives_a_kind_of_death(status: JobStatus, kind: DeathKind) -> None:
    verdict = judge_status(status, "j1")
    assert verdict is not None and verdict.kind is kind


# -- TASK payloads -----------------------------------------------------------------


def test_a_task_round_trips() -> None:
    base = 10

    def scaled(x: int, factor: int = 1) -> int:
        return (x + base) * factor

    payload = encode_task(dumps(scaled), (2,), {"factor": 3}, "/some/dir")
    task = decode_task(payload)
    assert task.function(*task.args, **task.kwargs) == 36
    assert task.args == (2,)
    assert dict(task.kwargs) == {"factor": 3}
    assert task.working_dir == "/some/dir"
    assert decode_task(memoryview(payload)).working_dir == "/some/dir"


def test_a_task_without_kwargs_has_empty_kwargs() -> None:
    task = decode_task(encode_task(dumps(len), ["abc"], None, "."))  # type: ignore[arg-type]
    assert task.args == ("abc",)  # a list of arguments travels as a tuple
    assert dict(task.kwargs) == {}
    assert task.function(*task.args) == 3


# -- HEARTBEAT payloads ------------------------------------------------------------


def test_a_heartbeat_round_trips_as_json() -> None:
    sent = Heartbeat(cpu=12.5, memory=123456, host_name="node7", status="sleeping",
                     processes=3, log_tail="line one\nline two\n")
    payload = encode_heartbeat(sent)
    assert json.loads(payload) == sent.as_dict()  # JSON, never pickle
    assert decode_heartbeat(payload) == sent
    assert decode_heartbeat(memoryview(payload)) == sent


def test_a_heartbeat_with_integer_cpu_and_only_the_required_fields() -> None:
    got = decode_heartbeat(b'{"cpu":3,"memory":42}')
    assert got == Heartbeat(cpu=3.0, memory=42, host_name="")
    assert isinstance(got.cpu, float)


@pytest.mark.parametrize("payload", [
    b"[1, 2]", b'"text"', b"7", b"null",
    b"not json", b"\xff\xfe\x00",
])
def test_a_heartbeat_that_is_not_a_json_object_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_heartbeat(payload)


@pytest.mark.parametrize("fields", [
    {"memory": 1}, {"cpu": 1.0}, {},
    {"cpu": "1.0", "memory": 1}, {"cpu": 1.0, "memory": 1.5},
    {"cpu": None, "memory": 1}, {"cpu": 1.0, "memory": "1"},
])
def test_a_heartbeat_without_numeric_cpu_and_memory_is_refused(fields: dict[str, object]
                                                               ) -> None:
    with pytest.raises(ValueError, match="cpu and memory"):
        decode_heartbeat(json.dumps(fields).encode())


def test_a_heartbeat_with_a_non_numeric_process_count_is_refused_as_value_error() -> None:
    # decode_heartbeat promises "ValueError if it is not one"; the monitor catches only
    # ValueError around it.
    with pytest.raises(ValueError):
        decode_heartbeat(b'{"cpu":1,"memory":2,"processes":null}')


def test_huge_heartbeat_fields_are_truncated() -> None:
    log = "".join(f"line {i}\n" for i in range(5000))
    payload = json.dumps({"cpu": 1, "memory": 2, "log_tail": log, "host_name": "h" * 1000,
                          "status": "s" * 100}).encode()
    got = decode_heartbeat(payload)
    assert len(got.log_tail) == MAX_LOG_TAIL
    assert got.log_tail == log[-MAX_LOG_TAIL:]  # the end of the log, not its start
    assert got.log_tail.endswith("line 4999\n")
    assert len(got.host_name) == 255
    assert len(got.status) == 32


# -- RESULT payloads ---------------------------------------------------------------


def test_a_value_round_trips() -> None:
    value = {"a": [1, 2.5, None], "b": b"\x00" * 10}
    outcome = decode_result(encode_value(value, "node3"))
    assert outcome.ok
    assert outcome.value == value
    assert outcome.exception is None
    assert outcome.host_name == "node3"


def _fail_deeply(x: int) -> None:
    raise KeyError(f"no such thing {x}")


def test_an_exception_round_trips_with_its_traceback() -> None:
    try:
        _fail_deeply(7)
    except KeyError as error:
        payload = encode_error(error, "node4")
    outcome = decode_result(payload)
    assert not outcome.ok
    assert isinstance(outcome.exception, KeyError)
    assert outcome.exception.args == ("no such thing 7",)
    assert outcome.traceback is not None
    assert "_fail_deeply" in outcome.traceback
    assert "KeyError: 'no such thing 7'" in outcome.traceback
    assert outcome.host_name == "node4"
    assert outcome.value is None


class NeedsTwoArguments(Exception):
    """Pickles (its args hold one value), but cannot be rebuilt from them."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first}/{second}")


class HoldsALock(Exception):
    def __init__(self) -> None:
        super().__init__("has a lock")
        self.lock = threading.Lock()


@pytest.mark.parametrize("error", [NeedsTwoArguments("a", "b"), HoldsALock()])
def test_an_exception_that_cannot_travel_becomes_a_remote_error(error: Exception) -> None:
    outcome = decode_result(encode_error(error, "node5"))
    assert not outcome.ok
    assert isinstance(outcome.exception, RemoteError)
    assert type(error).__qualname__ in str(outcome.exception)
    assert str(error) in str(outcome.exception)
    assert outcome.traceback is not None and type(error).__name__ in outcome.traceback
    assert outcome.host_name == "node5"


def test_an_exception_with_a_traceback_object_travels() -> None:
    try:
        raise RuntimeError("with frames")
    except RuntimeError as error:
        assert error.__traceback__ is not None
        outcome = decode_result(encode_error(error, "n"))
    assert isinstance(outcome.exception, RuntimeError)
    assert traceback.format_exception_only(outcome.exception) == ["RuntimeError: with frames\n"]


@pytest.mark.parametrize("payload", [
    b"not a pickle at all",
    b"",
    pickle.dumps(42),  # a pickle, but not a result
    b"cno_such_module_for_gridmap_tests\nThing\n.",  # a class missing on this host
    os.urandom(64),
])
def test_a_result_that_cannot_be_opened_is_a_remote_error_outcome(payload: bytes) -> None:
    outcome = decode_result(payload)
    assert not outcome.ok
    assert isinstance(outcome.exception, RemoteError)
    assert "could not be unpickled" in str(outcome.exception)
