"""What the runner needs of the submitting host's file system, and how it says so on a
node that does not share it: the map's session directory (exit status 7, with what to
do), the job's working directory; a temporary directory copied in from the
submitter's environment that the node lacks is dropped, not used."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from gridmap_core.node.runner import EXIT_NOT_SHARED
from gridmap_core.wire.exit_kinds import kind_of_exit, worth_resubmitting
from gridmap_core.wire.exits import describe_exit
from gridmap_core.wire.messages import decode_result
from gridmap_core.wire.protocol import Kind, MapKeys, new_key, write_key_file
from tests.node.test_runner import CURVE, Monitor, free_port, run_runner, serving, task_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def key() -> bytes:
    return new_key()


@pytest.fixture
def key_file(tmp_path: Path, key: bytes) -> Path:
    return write_key_file(tmp_path / "key", MapKeys(key, CURVE))


def test_a_session_directory_the_node_does_not_see_ends_the_runner_with_status_7(
        tmp_path: Path) -> None:
    session = tmp_path / "temp_dir" / "gridmap-0123456789ab"
    result = run_runner(f"tcp://127.0.0.1:{free_port()}", session / "key", tmp_path,
                        "--give-up", "1")
    assert result.code == EXIT_NOT_SHARED, result.err
    assert str(session) in result.err and socket.gethostname() in result.err
    assert "not shared" in result.err and "DEFAULT_TEMP_DIR" in result.err
    # The backends read it back as a cause that says so, and do not resubmit it.
    log = tmp_path / "runner.err"
    log.write_text(result.err)
    cause = describe_exit(EXIT_NOT_SHARED, None, str(log))
    assert "session directory" in cause and "temp_dir is not shared" in cause, cause
    assert str(session) in cause, cause
    assert kind_of_exit(EXIT_NOT_SHARED).value == "runner failed"
    assert not worth_resubmitting(EXIT_NOT_SHARED) and worth_resubmitting(2)


def test_a_session_directory_without_its_key_is_still_a_setup_error(tmp_path: Path) -> None:
    result = run_runner(f"tcp://127.0.0.1:{free_port()}", tmp_path / "gone-key", tmp_path,
                        "--give-up", "1")
    assert result.code == 2, result.err


def test_a_temporary_directory_the_node_lacks_is_dropped(tmp_path: Path, key: bytes,
                                                        key_file: Path) -> None:
    def temporary_directories() -> dict[str, Any]:
        import os

        return {"variables": {name: os.environ.get(name) for name in ("TMPDIR", "TMP")}}

    missing = str(tmp_path / "submitters-own-tmp")
    present = tmp_path / "present"
    present.mkdir()
    with Monitor(key, serving(task_of(temporary_directories))) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20",
                            env={"TMPDIR": missing, "TMP": str(present)})
    assert result.code == 0, result.err
    value = decode_result(monitor.of_kind(Kind.RESULT)[0].payload).value
    assert value["variables"] == {"TMPDIR": None, "TMP": str(present)}
    assert "TMPDIR" in result.err and missing in result.err


def test_a_working_directory_the_node_lacks_is_explained(tmp_path: Path, key: bytes,
                                                        key_file: Path) -> None:
    def here() -> str:
        import os

        return os.getcwd()

    missing = tmp_path / "submitters-cwd"
    with Monitor(key, serving(task_of(here, working_dir=str(missing)))) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    outcome = decode_result(monitor.of_kind(Kind.RESULT)[0].payload)
    assert isinstance(outcome.exception, FileNotFoundError)
    message = str(outcome.exception)
    assert str(missing) in message and socket.gethostname() in message
    assert "working_dir" in message, message
