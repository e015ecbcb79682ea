"""Running Slurm's commands: transient errors retried with growing pauses, refusals, timeouts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from gridmap_slurm import commands as slurm_commands
from gridmap_slurm.commands import Commands, SlurmError, is_transient, one_line

from tests.backends.slurm.fakes import Clock, done

pytestmark = pytest.mark.timeout(30)


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


def test_the_prefix_is_stripped_when_the_tool_is_run_by_its_full_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["/usr/bin/sbatch", "job.sh"]
    scripted(monkeypatch, [done(argv, 1, "", "sbatch: error: Batch job submission failed: "
                                              "Invalid account\n")])
    with pytest.raises(SlurmError) as refused:
        Commands().run(argv)
    assert str(refused.value) == ("sbatch failed (exit status 1): Batch job submission "
                                  "failed: Invalid account")


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

    monkeypatch.setattr("gridmap_slurm.commands.subprocess.run", run)
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
