"""The runner (``python -m gridmap_core.node.runner``) as a subprocess, against a stand-in
monitor served by a thread of the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from gridmap_core.model.serialization import SerializationError, dumps
from gridmap_core.node.runner import EXIT_SETUP, EXIT_STOPPED, EXIT_UNREACHABLE
from gridmap_core.transports import load_transport
from gridmap_core.wire.messages import decode_heartbeat, decode_result, encode_task
from gridmap_core.wire.protocol import (
    FROM_RUNNER,
    Codec,
    Header,
    Kind,
    MapKeys,
    ProtocolError,
    new_curve_keys,
    new_key,
    write_key_file,
)
from tests import PROJECT_ROOT
from tests.support import runner_jobs

pytestmark = pytest.mark.timeout(120)

ROOT = PROJECT_ROOT
MAP = "map-runner-test"
WAIT = 60.0  # generous: the machine may be loaded; no test waits this long when it works
# The CURVE keys of the stand-in monitor's maps, written to each key file with its MAC
# key: a real runner reads them there, as it reads a real map's.
CURVE = new_curve_keys()

Frames = list[bytes | memoryview]


@dataclass(frozen=True)
class Received:
    """A message the stand-in monitor accepted (payload copied out of zmq's buffer)."""

    header: Header
    payload: bytes


Answer = Callable[["Monitor", Received], "Frames | None"]


class Monitor:
    """A tiny monitor loop in a thread: a real zmq endpoint and a codec. ``answer``
    gets every authentic message and returns the reply's frames (None: no reply)."""

    def __init__(self, key: bytes, answer: Answer) -> None:
        self.codec = Codec(key, MAP)
        self.answer = answer
        self.address = ""
        self.received: list[Received] = []
        self.rejected = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-monitor", daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        assert self._ready.wait(WAIT), "the test monitor did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()
        if self.error is not None and exc[0] is None:
            raise self.error

    def kinds(self) -> list[Kind]:
        with self._lock:
            return [r.header.kind for r in self.received]

    def of_kind(self, kind: Kind) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.header.kind is kind]

    def reply(self, request: Received, kind: Kind, payload: bytes = b"") -> Frames:
        return self.codec.reply(request.header, kind, payload)

    def _run(self) -> None:
        endpoint = load_transport("zmq").serve({"interface": "127.0.0.1", "curve": CURVE})
        try:
            self.address = endpoint.address
            self._ready.set()
            while not self._stop.is_set():
                got = endpoint.receive(0.05)
                if got is None:
                    continue
                token, frames = got
                try:
                    message = self.codec.decode(frames, expect=FROM_RUNNER)
                except ProtocolError:
                    self.rejected += 1
                    continue
                record = Received(message.header, bytes(message.payload))
                with self._lock:
                    self.received.append(record)
                frames_out = self.answer(self, record)
                if frames_out is not None:
                    endpoint.reply(token, frames_out)
        except BaseException as error:
            self.error = error
        finally:
            endpoint.close()
            self._ready.set()


def serving(task_payload: bytes) -> Callable[[Monitor, Received], Frames]:
    """The usual monitor: TASK for a FETCH, ACK for everything else."""

    def answer(monitor: Monitor, message: Received) -> Frames:
        if message.header.kind is Kind.FETCH:
            return monitor.reply(message, Kind.TASK, task_payload)
        return monitor.reply(message, Kind.ACK)

    return answer


def task_of(function: Callable[..., Any], args: Sequence[Any] = (),
            kwargs: dict[str, Any] | None = None, working_dir: str | None = None) -> bytes:
    return encode_task(dumps(function), tuple(args), kwargs, working_dir or str(ROOT))


@pytest.fixture
def key() -> bytes:
    return new_key()


@pytest.fixture
def key_file(tmp_path: Path, key: bytes) -> Path:
    return write_key_file(tmp_path / "key", MapKeys(key, CURVE))


@dataclass
class Finished:
    code: int
    out: str
    err: str


def run_runner(address: str, key_file: Path, log_dir: Path, *extra: str,
               task: int = 7, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> Finished:
    """Run the runner to its end; its stdout goes to a file (the job's log)."""
    argv = [
        sys.executable, "-m", "gridmap_core.node.runner",
        "--address", address, "--map", MAP, "--key-file", str(key_file),
        "--task", str(task), *extra,
    ]
    out_path = log_dir / f"runner.{time.monotonic_ns()}.out"
    with open(out_path, "wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
            cwd=cwd or ROOT, env={**os.environ, **(env or {})},
        )
        try:
            _, err = process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"the runner did not end within {WAIT} s: {err.decode(errors='replace')}")
    return Finished(process.returncode, out_path.read_text(errors="replace"),
                    err.decode(errors="replace"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- setup failures ----------------------------------------------------------------


def test_an_unreachable_monitor_ends_the_runner_with_status_3(tmp_path: Path,
                                                              key_file: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_runner(address, key_file, tmp_path, "--give-up", "1")
    assert result.code == EXIT_UNREACHABLE, result.err
    assert time.monotonic() - started < WAIT
    assert "cannot reach the monitor" in result.err
    assert address in result.err


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path, key: bytes,
                                                  key_file: Path) -> None:
    key_file.chmod(0o644)
    result = run_runner(f"tcp://127.0.0.1:{free_port()}", key_file, tmp_path, "--give-up", "1")
    assert result.code == EXIT_SETUP, result.err
    assert "0644" in result.err and str(key_file) in result.err
    output = result.out + result.err
    assert key.hex() not in output.lower()
    assert key.hex().upper() not in output


def test_a_missing_key_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    result = run_runner(f"tcp://127.0.0.1:{free_port()}", missing, tmp_path, "--give-up", "1")
    assert result.code == EXIT_SETUP, result.err
    assert "cannot open key file" in result.err and str(missing) in result.err


# -- against a stand-in monitor ------------------------------------------------------


def test_fetch_heartbeats_result_and_ack(tmp_path: Path, key: bytes, key_file: Path) -> None:
    go_file = tmp_path / "go"
    marker = "job output 8d1f"
    payload = task_of(runner_jobs.print_and_wait, [marker, str(go_file)], {"value": 41})

    def answer(monitor: Monitor, message: Received) -> Frames:
        beats = monitor.of_kind(Kind.HEARTBEAT)
        if len(beats) >= 2 and marker in decode_heartbeat(beats[-1].payload).log_tail:
            go_file.touch()  # let the job finish once the monitor has seen enough
        return serving(payload)(monitor, message)

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--heartbeat", "0.2",
                            "--give-up", "20")
    assert result.code == 0, result.err
    kinds = monitor.kinds()
    assert kinds[0] is Kind.FETCH
    assert kinds[-1] is Kind.RESULT and kinds.count(Kind.RESULT) == 1
    assert kinds.count(Kind.HEARTBEAT) >= 2
    for message in monitor.received:
        assert (message.header.map_id, message.header.task_id, message.header.attempt) == (
            MAP, 7, 0)
    beats = [decode_heartbeat(m.payload) for m in monitor.of_kind(Kind.HEARTBEAT)]
    for beat in beats:
        assert beat.host_name == socket.gethostname()
        assert beat.memory > 0
        assert beat.cpu >= 0
        assert beat.processes >= 1
        assert beat.status
    assert any(marker in beat.log_tail for beat in beats)
    outcome = decode_result(monitor.of_kind(Kind.RESULT)[0].payload)
    assert outcome.ok, outcome.traceback
    assert outcome.value == 41
    assert outcome.host_name == socket.gethostname()
    assert marker in result.out


def test_the_task_runs_in_its_working_directory(tmp_path: Path, key: bytes,
                                                key_file: Path) -> None:
    working_dir = tmp_path / "work here"
    working_dir.mkdir()
    payload = task_of(runner_jobs.working_directory, working_dir=str(working_dir))
    with Monitor(key, serving(payload)) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    outcome = decode_result(monitor.of_kind(Kind.RESULT)[0].payload)
    assert outcome.ok, outcome.traceback
    assert os.path.realpath(outcome.value) == os.path.realpath(working_dir)


def test_a_missing_working_directory_is_an_error_result(tmp_path: Path, key: bytes,
                                                       key_file: Path) -> None:
    missing = tmp_path / "no such dir"
    payload = task_of(runner_jobs.working_directory, working_dir=str(missing))
    with Monitor(key, serving(payload)) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    outcome = decode_result(monitor.of_kind(Kind.RESULT)[0].payload)
    assert not outcome.ok
    assert isinstance(outcome.exception, FileNotFoundError)
    assert str(missing) in str(outcome.exception)


def test_a_closure_defined_in_the_test_runs(tmp_path: Path, key: bytes, key_file: Path) -> None:
    offset = 1000

    def shifted(x: int) -> int:
        return x + offset

    with Monitor(key, serving(task_of(shifted, [5]))) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    assert decode_result(monitor.of_kind(Kind.RESULT)[0].payload).value == 1005


def test_an_unpicklable_return_value_becomes_an_error_result(tmp_path: Path, key: bytes,
                                                             key_file: Path) -> None:
    payload = task_of(runner_jobs.unpicklable_value)
    with Monitor(key, serving(payload)) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    (message,) = monitor.of_kind(Kind.RESULT)
    outcome = decode_result(message.payload)
    assert not outcome.ok
    assert isinstance(outcome.exception, SerializationError)
    assert "lock" in str(outcome.exception)
    assert outcome.traceback is not None and "SerializationError" in outcome.traceback


def test_stop_in_answer_to_a_heartbeat_ends_the_runner_and_its_children(
        tmp_path: Path, key: bytes, key_file: Path) -> None:
    pid_file = tmp_path / "child.pid"
    payload = task_of(runner_jobs.start_child_and_sleep, [str(pid_file)])

    def answer(monitor: Monitor, message: Received) -> Frames:
        if message.header.kind is Kind.HEARTBEAT and pid_file.exists():
            return monitor.reply(message, Kind.STOP, b"cancelled by the test")
        return serving(payload)(monitor, message)

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--heartbeat", "0.2",
                            "--give-up", "20")
    assert result.code == EXIT_STOPPED, result.err
    assert "cancelled by the test" in result.err
    assert Kind.RESULT not in monitor.kinds()
    child = int(pid_file.read_text())
    deadline = time.monotonic() + WAIT
    while not _gone(child):
        assert time.monotonic() < deadline, f"the job's child {child} outlived the runner"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # type: ignore[no-any-return]
    except psutil.NoSuchProcess:
        return True


def test_stop_in_answer_to_fetch_ends_the_runner(tmp_path: Path, key: bytes,
                                                 key_file: Path) -> None:
    def answer(monitor: Monitor, message: Received) -> Frames:
        return monitor.reply(message, Kind.STOP, b"superseded by attempt 1")

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == EXIT_STOPPED, result.err
    assert "superseded by attempt 1" in result.err
    assert monitor.kinds() == [Kind.FETCH]


def test_a_reply_signed_with_another_key_is_ignored(tmp_path: Path, key: bytes,
                                                    key_file: Path) -> None:
    payload = task_of(runner_jobs.add, [20, 22])
    impostor = Codec(new_key(), MAP)

    def answer(monitor: Monitor, message: Received) -> Frames:
        if message.header.kind is Kind.FETCH and len(monitor.of_kind(Kind.FETCH)) == 1:
            # well formed, but a forgery: a STOP the runner must not obey
            return impostor.reply(message.header, Kind.STOP, b"forged stop")
        return serving(payload)(monitor, message)

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    assert "forged stop" not in result.err
    assert "failed authentication" in result.err
    fetches = monitor.of_kind(Kind.FETCH)
    assert len(fetches) == 2
    assert fetches[1].header.seq > fetches[0].header.seq  # a new message, not a replay
    assert decode_result(monitor.of_kind(Kind.RESULT)[0].payload).value == 42


@pytest.mark.parametrize(("task", "attempt"), [(8, 0), (7, 1)], ids=["task", "attempt"])
def test_an_authentic_reply_for_another_task_or_attempt_is_ignored(
        tmp_path: Path, key: bytes, key_file: Path, task: int, attempt: int) -> None:
    payload = task_of(runner_jobs.add, [1, 2])

    def answer(monitor: Monitor, message: Received) -> Frames:
        if message.header.kind is Kind.FETCH and len(monitor.of_kind(Kind.FETCH)) == 1:
            return monitor.codec.encode(Kind.STOP, task, attempt, b"meant for another")
        return serving(payload)(monitor, message)

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    assert "meant for another task" in result.err
    assert len(monitor.of_kind(Kind.FETCH)) == 2
    assert decode_result(monitor.of_kind(Kind.RESULT)[0].payload).value == 3


def test_the_array_index_variable_sets_the_task_id(tmp_path: Path, key: bytes,
                                                   key_file: Path) -> None:
    def answer(monitor: Monitor, message: Received) -> Frames:
        return monitor.reply(message, Kind.STOP)

    with Monitor(key, answer) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20",
                            "--attempt", "2", "--index-var", "SGE_TASK_ID",
                            "--first-index", "1", task=10, env={"SGE_TASK_ID": "3"})
    assert result.code == EXIT_STOPPED, result.err
    (fetch,) = monitor.of_kind(Kind.FETCH)
    assert fetch.header.task_id == 12
    assert fetch.header.attempt == 2


def test_a_missing_array_index_variable_is_a_setup_error(tmp_path: Path,
                                                         key_file: Path) -> None:
    assert "GRIDMAP_TEST_NO_SUCH_INDEX" not in os.environ
    result = run_runner(f"tcp://127.0.0.1:{free_port()}", key_file, tmp_path, "--give-up", "1",
                        "--index-var", "GRIDMAP_TEST_NO_SUCH_INDEX")
    assert result.code == EXIT_SETUP, result.err
    assert "GRIDMAP_TEST_NO_SUCH_INDEX" in result.err
