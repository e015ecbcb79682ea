"""``qstat -xml`` into job and queue states, and why jobs wait (gridmap_sge.qstat)."""

from __future__ import annotations

import pytest
from gridmap_sge.qstat import QstatError, expand_tasks, node_failure, parse_qstat, queue_note

pytestmark = pytest.mark.timeout(30)


def test_expand_tasks() -> None:
    assert expand_tasks("7") == [7]
    assert expand_tasks("17-30:1") == list(range(17, 31))
    assert expand_tasks("1,3,5-9:2") == [1, 3, 5, 7, 9]
    assert expand_tasks("2-10:4") == [2, 6, 10]
    assert expand_tasks("") == []


# `qstat -xml -u alice` as Grid Engine 8.1.9 prints it: running elements one by one
# (with their element number in <tasks>), pending ones as a range, a non-array job
# without <tasks>, a held job and one in error state.
QSTAT_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>r</state>
      <JAT_start_time>2024-05-02T10:15:32.120</JAT_start_time>
      <queue_name>all.q@node1</queue_name>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>r</state>
      <JAT_start_time>2024-05-02T10:15:32.124</JAT_start_time>
      <queue_name>all.q@node1</queue_name>
      <slots>1</slots>
      <tasks>16</tasks>
    </job_list>
    <job_list state="running">
      <JB_job_number>18</JB_job_number>
      <JAT_prio>0.50500</JAT_prio>
      <JB_name>single</JB_name>
      <JB_owner>alice</JB_owner>
      <state>r</state>
      <JAT_start_time>2024-05-02T10:16:01.003</JAT_start_time>
      <queue_name>all.q@node2</queue_name>
      <slots>2</slots>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>qw</state>
      <JB_submission_time>2024-05-02T10:15:30.001</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
      <tasks>17-30:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>19</JB_job_number>
      <JAT_prio>0.00000</JAT_prio>
      <JB_name>held</JB_name>
      <JB_owner>alice</JB_owner>
      <state>hqw</state>
      <JB_submission_time>2024-05-02T10:16:10.500</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
    <job_list state="pending">
      <JB_job_number>21</JB_job_number>
      <JAT_prio>0.50500</JAT_prio>
      <JB_name>broken</JB_name>
      <JB_owner>alice</JB_owner>
      <state>Eqw</state>
      <JB_submission_time>2024-05-02T10:17:44.912</JB_submission_time>
      <queue_name></queue_name>
      <slots>1</slots>
    </job_list>
  </job_info>
</job_info>
"""


# `qstat -f -xml -u alice`: queue instances, with the running jobs inside them; an
# instance whose daemon does not answer, and one that can run jobs (no <state>).
QSTAT_FULL_XML = """<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <Queue-List>
      <name>all.q@node1</name>
      <qtype>BIP</qtype>
      <slots_used>1</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>4</slots_total>
      <load_avg>0.01000</load_avg>
      <arch>lx-amd64</arch>
      <job_list state="running">
        <JB_job_number>16</JB_job_number>
        <JAT_prio>0.55500</JAT_prio>
        <JB_name>batch</JB_name>
        <JB_owner>alice</JB_owner>
        <state>r</state>
        <JAT_start_time>2024-05-02T10:15:32.120</JAT_start_time>
        <slots>1</slots>
        <tasks>1</tasks>
      </job_list>
    </Queue-List>
    <Queue-List>
      <name>all.q@node2</name>
      <qtype>BIP</qtype>
      <slots_used>0</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>4</slots_total>
      <arch>lx-amd64</arch>
      <state>au</state>
    </Queue-List>
    <Queue-List>
      <name>long.q@node2</name>
      <qtype>BIP</qtype>
      <slots_used>0</slots_used>
      <slots_resv>0</slots_resv>
      <slots_total>1</slots_total>
      <arch>lx-amd64</arch>
      <state>d</state>
    </Queue-List>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>16</JB_job_number>
      <JAT_prio>0.55500</JAT_prio>
      <JB_name>batch</JB_name>
      <JB_owner>alice</JB_owner>
      <state>qw</state>
      <JB_submission_time>2024-05-02T10:15:30.001</JB_submission_time>
      <slots>1</slots>
      <tasks>2-4:1</tasks>
    </job_list>
  </job_info>
</job_info>
"""


def test_parse_qstat_jobs_by_number_and_element() -> None:
    snapshot = parse_qstat(QSTAT_XML)
    assert snapshot.queues == {}
    assert snapshot.state("16.1") == "r"
    assert snapshot.state("16.16") == "r"
    assert snapshot.state("16.17") == "qw"
    assert snapshot.state("16.20") == "qw"
    assert snapshot.state("16.30") == "qw"
    assert snapshot.state("16.31") is None
    assert snapshot.state("16.2") is None  # ended, or never part of the array
    assert snapshot.state("16") is None  # an array is only listed by its elements
    assert snapshot.state("18") == "r"
    assert snapshot.state("19") == "hqw"
    assert snapshot.state("21") == "Eqw"
    assert snapshot.state("123") is None
    assert len(snapshot.jobs) == 2 + 14 + 3
    # Where each running job runs; a waiting one runs nowhere.
    assert snapshot.place("16.1") == "all.q@node1" and snapshot.place("18") == "all.q@node2"
    assert snapshot.place("16.17") == "" and snapshot.place("21") == ""
    assert snapshot.place("123") == ""


def test_parse_qstat_full_reads_queue_instances() -> None:
    snapshot = parse_qstat(QSTAT_FULL_XML)
    # The running job's own <state> inside a Queue-List is not the queue's state.
    assert snapshot.queues == {"all.q@node1": "", "all.q@node2": "au", "long.q@node2": "d"}
    assert snapshot.state("16.1") == "r"
    assert [snapshot.state(f"16.{i}") for i in (2, 3, 4)] == ["qw"] * 3
    # Listed inside its queue instance, a running job has no <queue_name>: it is there.
    assert snapshot.place("16.1") == "all.q@node1" and snapshot.place("16.2") == ""


def test_parse_qstat_without_jobs() -> None:
    empty = ("<?xml version='1.0'?>\n<job_info  xmlns:xsd=\"x\">\n  <queue_info>\n"
             "  </queue_info>\n  <job_info>\n  </job_info>\n</job_info>\n")
    snapshot = parse_qstat(empty)
    assert snapshot.jobs == {} and snapshot.queues == {}


@pytest.mark.parametrize("text", ["", "<job_info><queue_info>", "error: no such user\n"])
def test_unparsable_qstat_is_a_qstat_error(text: str) -> None:
    with pytest.raises(QstatError, match="could not parse"):
        parse_qstat(text)


def test_queue_note_when_every_instance_is_unreachable() -> None:
    note = queue_note({"all.q@node1": "u", "all.q@node2": "u"})
    assert note.startswith("no queue instance can run them: ")
    assert "all.q@node1 is in state u (its execution daemon does not answer)" in note
    assert "all.q@node2 is in state u (its execution daemon does not answer)" in note


def test_queue_note_names_every_reason_of_an_instance() -> None:
    note = queue_note({"all.q@node1": "au"})
    assert note == ("no queue instance can run them: all.q@node1 is in state au (a load "
                    "threshold is exceeded; its execution daemon does not answer)")


def test_queue_note_is_empty_while_one_instance_can_run_jobs() -> None:
    assert queue_note({"all.q@node1": "u", "all.q@node2": ""}) == ""
    assert queue_note({}) == ""


def test_queue_note_limited_to_the_wanted_queues() -> None:
    queues = {"all.q@node1": "", "long.q@node1": "d", "long.q@node2": "E"}
    note = queue_note(queues, ["long.q"])
    assert "long.q@node1 is in state d (it is disabled)" in note
    assert "long.q@node2 is in state E" in note
    assert "all.q" not in note
    assert queue_note(queues, ["all.q"]) == ""
    assert queue_note(queues, ["long.q@node2"]).endswith(
        "long.q@node2 is in state E (it is in error state (see `qstat -explain E`))")
    assert queue_note(queues, ["all.q", "long.q"]) == ""
    assert queue_note(queues, [""]) == ""  # an empty name limits nothing


def test_queue_note_for_a_queue_that_does_not_exist() -> None:
    queues = {"all.q@node1": ""}
    assert queue_note(queues, ["gpu.q"]) == "no queue instance of gpu.q exists"
    assert queue_note(queues, ["gpu.q", "big.q"]) == "no queue instance of gpu.q, big.q exists"


def test_node_failure_is_a_daemon_that_does_not_answer_or_an_error_state() -> None:
    queues = {"all.q@n1": "au", "all.q@n2": "E", "all.q@n3": "d", "all.q@n4": "",
              "all.q@n5": "auE"}
    assert node_failure(queues, "all.q@n1") == ("all.q@n1 is in state au (its execution "
                                                "daemon does not answer)")
    assert node_failure(queues, "all.q@n2") == ("all.q@n2 is in state E (it is in error "
                                                "state (see `qstat -explain E`))")
    assert node_failure(queues, "all.q@n5") == (
        "all.q@n5 is in state auE (its execution daemon does not answer; it is in error "
        "state (see `qstat -explain E`))")
    assert node_failure(queues, "all.q@n3") is None  # disabled: its jobs run on
    assert node_failure(queues, "all.q@n4") is None
    assert node_failure(queues, "all.q@gone") is None
