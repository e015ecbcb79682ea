"""squeue, sacct and job completion log output into records (gridmap_slurm.states)."""

from __future__ import annotations

import pytest
from gridmap_slurm.states import Record, parse_jobcomp, parse_sacct, parse_squeue

from tests.backends.slurm.fakes import jobcomp_line

pytestmark = pytest.mark.timeout(30)

SQUEUE_OUTPUT = """\
878_1|RUNNING|None|0|
878_2|PENDING|Priority|0|
878_3|FAILED|NonZeroExitCode|512|
878_4|FAILED|JobLaunchFailure|9|
878_5|COMPLETED|None|0|
878_6|CANCELLED|None|15|

879_10|PENDING|JobHeldUser|N/A|
"""


def test_parse_squeue_reads_array_ids_and_the_raw_wait_status() -> None:
    records = parse_squeue(SQUEUE_OUTPUT)
    assert sorted(records) == ["878_1", "878_2", "878_3", "878_4", "878_5", "878_6", "879_10"]
    assert records["878_1"] == Record("878_1", "RUNNING", "None", 0, 0)
    assert records["878_2"] == Record("878_2", "PENDING", "Priority", 0, 0)
    assert records["878_3"] == Record("878_3", "FAILED", "NonZeroExitCode", 2, 0)
    assert records["878_4"] == Record("878_4", "FAILED", "JobLaunchFailure", 0, 9)
    assert records["878_6"].signal == 15
    assert records["879_10"] == Record("879_10", "PENDING", "JobHeldUser", None, None)


def test_parse_squeue_of_nothing() -> None:
    assert parse_squeue("") == {}
    assert parse_squeue("\n\n") == {}


def test_parse_sacct_keeps_job_lines_only() -> None:
    text = (
        "878_1|FAILED|2:0|None\n"
        "878_1.batch|FAILED|2:0|\n"
        "878_1.extern|COMPLETED|0:0|\n"
        "28|CANCELLED by 0|0:0|None\n"
        "28.batch|CANCELLED|0:15|\n"
        "29|TIMEOUT|0:0|TimeLimit\n"
        "30|FAILED|0:9|JobLaunchFailure\n"
        "31|OUT_OF_MEMORY|0:125|OutOfMemory\n"
    )
    records = parse_sacct(text)
    assert sorted(records) == ["28", "29", "30", "31", "878_1"]
    assert records["878_1"] == Record("878_1", "FAILED", "None", 2, 0)
    assert records["28"] == Record("28", "CANCELLED", "None", 0, 0)
    assert records["29"] == Record("29", "TIMEOUT", "TimeLimit", 0, 0)
    assert records["30"] == Record("30", "FAILED", "JobLaunchFailure", 0, 9)
    assert records["31"].state == "OUT_OF_MEMORY"


def test_parse_sacct_without_the_reason_column() -> None:
    assert parse_sacct("6500_2|FAILED|2:0\n") == {
        "6500_2": Record("6500_2", "FAILED", "", 2, 0)}


def test_parse_jobcomp_reads_the_exit_code_not_the_derived_one() -> None:
    records = parse_jobcomp([jobcomp_line(52, "FAILED", "0:9")])
    assert records == {"52": Record("52", "FAILED", "", 0, 9)}
    assert parse_jobcomp([jobcomp_line(53, "FAILED", "3:0")])["53"].exit_code == 3


def test_parse_jobcomp_keys_array_elements_by_array_and_task() -> None:
    lines = [jobcomp_line(52, "COMPLETED", "0:0", array=(2, 47)),
             jobcomp_line(2, "FAILED", "2:0", array=(2, 50))]
    records = parse_jobcomp(lines)
    assert sorted(records) == ["2_47", "2_50"]
    assert records["2_47"] == Record("2_47", "COMPLETED", "", 0, 0)
    assert records["2_50"] == Record("2_50", "FAILED", "", 2, 0)


def test_parse_jobcomp_is_not_confused_by_a_name_with_spaces_and_equals_signs() -> None:
    line = jobcomp_line(60, "TIMEOUT", "0:0", name="a b=c x=y ExitCode=1:0",
                        array=(58, 3))
    assert parse_jobcomp([line]) == {"58_3": Record("58_3", "TIMEOUT", "", 0, 0)}


def test_parse_jobcomp_ignores_keys_written_inside_a_job_name() -> None:
    line = jobcomp_line(61, "FAILED", "2:0", name="x JobState=COMPLETED ArrayJobId=7 "
                                                 "ArrayTaskId=1")
    assert parse_jobcomp([line]) == {"61": Record("61", "FAILED", "", 2, 0)}


def test_parse_jobcomp_a_later_line_wins() -> None:
    lines = [jobcomp_line(70, "NODE_FAIL", "0:0", array=(70, 1)),
             jobcomp_line(71, "COMPLETED", "0:0"),
             jobcomp_line(70, "COMPLETED", "0:0", array=(70, 1))]
    records = parse_jobcomp(lines)
    assert records["70_1"].state == "COMPLETED"
    assert records["71"].state == "COMPLETED"


def test_parse_jobcomp_skips_lines_it_cannot_read() -> None:
    assert parse_jobcomp(["", "garbage", "UserId=alice JobState=FAILED"]) == {}


def test_cancelled_by_a_user_is_cancelled() -> None:
    assert parse_squeue("5_1|CANCELLED by 1000|None|0|")["5_1"].state == "CANCELLED"
    assert parse_sacct("5_1|CANCELLED by 1000|0:0|None")["5_1"].state == "CANCELLED"
