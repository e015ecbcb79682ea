"""What Slurm says about a job, read from squeue, sacct and the job completion log,
and what it means for the monitor (:class:`~gridmap_core.backend.scheduler.JobStatus`).

Pure parsing, so every state and exit code is unit-tested without a cluster.
Decisions rest on the job's state, not on the exit code of a killed job: sacct fills
that in late and changes it after a slurmdbd restart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from gridmap_core.wire.exit_kinds import kind_of_exit, worth_resubmitting
from gridmap_core.wire.exits import (
    describe_exit,
    name_of_signal,
)

from .options import memory_mb

__all__ = [
    "SACCT_FIELDS",
    "SQUEUE_FORMAT",
    "Record",
    "describe",
    "parse_jobcomp",
    "parse_sacct",
    "parse_squeue",
    "pending_note",
]

QUEUED_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD",
                           "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING",
                            "UPDATE_DB", "POWER_UP_NODE"})
# Stopped to go on later: scontrol suspend (SUSPENDED), or SIGSTOP sent through Slurm
# with its allocation kept (STOPPED).
SUSPENDED_STATES = frozenset({"SUSPENDED", "STOPPED"})
# Pending reasons that no waiting will clear.
_HOPELESS = {
    "BadConstraints": "its constraints cannot be satisfied by any node",
    "DependencyNeverSatisfied": "a job it depends on failed",
}
_HELD = ("JobHeldUser", "JobHeldAdmin")
# What squeue and sacct are asked for, in the order the parsers read it.
SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,exit_code:|,NodeList:|"
SACCT_FIELDS = "JobID,State,ExitCode,Reason,NodeList"
# A batch job whose output or error file slurmd could not open ends FAILED with
# slurmd's error code in place of a wait status: ESLURMD_IO_ERROR (4021 in Slurm 22.05,
# "Slurmd could not connect IO"), which reads as signal 53. Its reason,
# JobLaunchFailure, says less: Slurm gives it to every batch job killed by a signal.
_IO_ERROR = 4021
_IO_ERROR_SIGNAL = _IO_ERROR & 0x7F


@dataclass(frozen=True)
class Record:
    """One job's state as a Slurm tool reported it."""

    job_id: str  # "123_4" for an array element
    state: str  # "COMPLETED", "OUT_OF_MEMORY", … ("CANCELLED by 0" is cut to "CANCELLED")
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    # The node it ran on (or was to start on), where the tool said; not part of what
    # the record says about the job's state.
    node: str = field(default="", compare=False)


def _wait_status(text: str) -> tuple[int | None, int | None]:
    """squeue's exit_code is the raw wait status (512 means exit 2)."""
    if not text.strip().isdigit():
        return None, None
    status = int(text)
    return (status >> 8) & 0xFF, status & 0x7F


def _exit_pair(text: str) -> tuple[int | None, int | None]:
    """sacct's and the completion log's ``exit:signal``."""
    code, _, sig = text.strip().partition(":")
    if not code.isdigit():
        return None, None
    return int(code), int(sig) if sig.isdigit() else 0


def _state(text: str) -> str:
    return text.strip().split(" ", 1)[0].rstrip("+")


def _node(text: str) -> str:
    """A node list as squeue and sacct print it: "" for none ("(null)", "None
    assigned")."""
    text = text.strip()
    return "" if not text or text.startswith(("(", "None")) else text


def parse_squeue(text: str) -> dict[str, Record]:
    """``squeue -h -r -t all -O`` :data:`SQUEUE_FORMAT` output (the node list may be
    left out)."""
    records = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 4 or not fields[0]:
            continue
        code, sig = _wait_status(fields[3])
        node = _node(fields[4]) if len(fields) > 4 else ""
        records[fields[0]] = Record(fields[0], _state(fields[1]), fields[2], code, sig, node)
    return records


def parse_sacct(text: str) -> dict[str, Record]:
    """``sacct -X -n -P -o`` :data:`SACCT_FIELDS` output (job lines only; the reason
    and node list may be left out)."""
    records = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 3 or not fields[0] or "." in fields[0]:
            continue
        code, sig = _exit_pair(fields[2])
        reason = fields[3] if len(fields) > 3 else ""
        node = _node(fields[4]) if len(fields) > 4 else ""
        records[fields[0]] = Record(fields[0], _state(fields[1]), reason, code, sig, node)
    return records


# The completion log's values are not quoted, and a job name may hold spaces and
# "Key=value" text: the name runs from " Name=" to the last " JobState=", and keys are
# read only before and after it.
_JOBCOMP_KEYS = re.compile(
    r"(?:^| )(JobId|JobState|ArrayJobId|ArrayTaskId|ExitCode|NodeList)=(\S*)")


def _jobcomp_fields(line: str) -> dict[str, str]:
    head, named, rest = line.partition(" Name=")
    if named:
        cut = rest.rfind(" JobState=")
        rest = rest[cut:] if cut >= 0 else ""
    values: dict[str, str] = {}
    for part in (head, rest):
        for key, value in _JOBCOMP_KEYS.findall(part):
            values[key] = value  # the last ExitCode= (DerivedExitCode= is another key)
    return values


def parse_jobcomp(lines: Iterable[str]) -> dict[str, Record]:
    """Lines of jobcomp/filetxt's log; a later line for the same job wins (requeues)."""
    records = {}
    for line in lines:
        values = _jobcomp_fields(line)
        if "JobId" not in values or "JobState" not in values:
            continue
        job_id = values["JobId"]
        if values.get("ArrayJobId") and values.get("ArrayTaskId"):
            job_id = f"{values['ArrayJobId']}_{values['ArrayTaskId']}"
        code, sig = _exit_pair(values.get("ExitCode", ""))
        records[job_id] = Record(job_id, _state(values["JobState"]), "", code, sig,
                                 _node(values.get("NodeList", "")))
    return records


def pending_note(record: Record) -> str:
    """Why a pending job waits, when the reason is worth telling the user."""
    reason = record.reason
    if reason in _HELD:
        return f"job {record.job_id} is held ({reason}); release it with scontrol release " \
               f"{record.job_id}"
    if reason in ("", "None", "Priority", "Resources", "BeginTime"):
        return ""
    return f"Slurm holds job {record.job_id} back: {reason} (see scontrol show job " \
           f"{record.job_id})"


# End states that are not the job's doing, by their cause and kind of death; each may be
# resubmitted.
_NOT_ITS_FAULT = {
    "NODE_FAIL": ("its node failed (NODE_FAIL)", DeathKind.NODE_FAILED),
    "BOOT_FAIL": ("its node failed to boot (BOOT_FAIL)", DeathKind.NODE_FAILED),
    "PREEMPTED": ("preempted by Slurm for another job", DeathKind.PREEMPTED),
}


def describe(record: Record, resources: Resources, err_log: str | None = None) -> JobStatus:
    """The :class:`JobStatus` for what Slurm reported; an end's ``kind`` says what kind
    of death its state is."""
    state = record.state
    if state in QUEUED_STATES:
        hopeless = _HOPELESS.get(record.reason)
        if hopeless:
            return JobStatus(Status.ERROR, f"Slurm will never start job {record.job_id}: "
                             f"{hopeless} ({record.reason})", resubmit=False,
                             kind=DeathKind.SCHEDULER_ERROR)
        return JobStatus(Status.QUEUED, note=pending_note(record))
    if state in RUNNING_STATES:
        return JobStatus(Status.RUNNING)
    if state in SUSPENDED_STATES:
        return JobStatus(Status.SUSPENDED)
    if state == "OUT_OF_MEMORY":
        memory = resources.h_vmem or resources.mem_free
        limit = ""
        if memory:
            per_cpu = memory_mb(memory)
            limit = f" of {per_cpu * resources.num_slots} MB (--mem-per-cpu={per_cpu}"
            limit += f" x {resources.num_slots} CPUs)" if resources.num_slots > 1 else ")"
        return JobStatus(Status.ENDED, f"out of memory: Slurm killed it over its memory "
                         f"limit{limit}", None, resubmit=False, kind=DeathKind.OUT_OF_MEMORY)
    if state in ("TIMEOUT", "DEADLINE"):
        limit = f" (h_rt={resources.h_rt} s)" if resources.h_rt is not None else ""
        what = "its deadline passed" if state == "DEADLINE" else "runtime limit exceeded"
        return JobStatus(Status.ENDED, f"{what}: Slurm ended it at its time limit{limit}",
                         None, resubmit=False, kind=DeathKind.TIME_LIMIT)
    if state == "CANCELLED":
        return JobStatus(Status.ENDED, "cancelled in Slurm (scancel)", None, resubmit=False,
                         kind=DeathKind.CANCELLED)
    if state in _NOT_ITS_FAULT:
        cause, kind = _NOT_ITS_FAULT[state]
        return JobStatus(Status.ENDED, cause, None, kind=kind)
    if state == "REVOKED":
        # Withdrawn from this cluster by Slurm itself: a cancel, not the job's doing.
        return JobStatus(Status.ENDED, "revoked: a federated sibling cluster ran it", None,
                         resubmit=False, kind=DeathKind.CANCELLED)
    if state == "FAILED" and record.signal == _IO_ERROR_SIGNAL:
        return _launch_failure(record, _log_not_opened(err_log))
    if record.signal:
        return JobStatus(Status.ENDED, describe_exit(None, name_of_signal(record.signal)), None,
                         kind=DeathKind.KILLED)
    if state in ("COMPLETED", "FAILED"):
        return JobStatus(Status.ENDED, describe_exit(record.exit_code, None, err_log),
                         record.exit_code, kind=kind_of_exit(record.exit_code, DeathKind.EXITED),
                         resubmit=worth_resubmitting(record.exit_code))
    # A state this module does not know: neither it nor its exit code says what kind
    # of death it was.
    return JobStatus(Status.ENDED, f"ended in Slurm state {state}", record.exit_code,
                     kind=DeathKind.OTHER)


def _log_not_opened(err_log: str | None) -> str:
    """The job's log directory, when it is on this host but the job's log file is not:
    Slurm opens the file on the node before the job starts, so the node could not."""
    if not err_log:
        return ""
    log_dir = os.path.dirname(err_log)
    return log_dir if os.path.isdir(log_dir) and not os.path.exists(err_log) else ""


def _launch_failure(record: Record, log_dir: str) -> JobStatus:
    """A job that slurmd could not start because it could not open its log files.
    With its log directory here (``log_dir``) but no log file in it, the node did not
    see the directory: temp_dir is not shared with the node, and every job of the map
    would fail the same way, so it is not resubmitted."""
    where = f"node {record.node}" if record.node else "its node"
    if log_dir:
        return JobStatus(
            Status.ENDED,
            f"Slurm could not start it: the job's log directory {log_dir} could not be "
            f"opened on {where} (its log files were never made): temp_dir must be on "
            "storage that the nodes share with this host. Set DEFAULT_TEMP_DIR (or pass "
            "temp_dir=) to a directory that every node mounts at the same path, such as "
            "one in your home directory",
            None, resubmit=False, kind=DeathKind.SCHEDULER_ERROR, host=record.node)
    return JobStatus(Status.ENDED, f"Slurm could not start it: slurmd could not open its "
                     f"output or error file on {where} (ESLURMD_IO_ERROR, reported as "
                     "signal 53); that node's slurmd log says which", None,
                     kind=DeathKind.SCHEDULER_ERROR, host=record.node)
