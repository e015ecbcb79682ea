"""Jobs of Grid Engine that another process submitted (adopted by a new monitor): how
they ended, read from ``qacct``, and how they are deleted, with ``qdel``.

DRMAA reports the endings of its own session's jobs only, and a session cannot control
another's jobs for certain: an adopted job's end comes from its accounting record (one
``qacct -j NUMBER`` per array, answering for all its elements), and it is deleted with
``qdel``, which takes the ids as the scheduler gives them (``123.4``, or ``123`` for a
whole array).

An accounting record says less than DRMAA: not whether a ``failed 100`` job was
deleted or killed over a limit, nor the limits the job asked for.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from gridmap_core.backend.drmaa import Ending
from gridmap_core.backend.scheduler import JobStatus, Status
from gridmap_core.errors import GridMapError
from gridmap_core.model.death import DeathKind
from gridmap_core.model.resources import Resources
from gridmap_core.wire.exits import name_of_signal

from .endings import describe_ending

__all__ = ["DeleteError", "Record", "delete", "describe_record", "parse_qacct",
           "read_accounting"]

_TIMEOUT = 60.0
_AFTER_JOB = 100  # "failed" code of a job that Grid Engine ended: deleted, or over a limit
_SIGNALLED = 128  # an exit status above this is 128 + the signal that killed it


class DeleteError(GridMapError, RuntimeError):
    """qdel failed for a job that Grid Engine still has."""


@dataclass(frozen=True)
class Record:
    """A job's accounting record: the parts that say how it ended."""

    job_id: str  # "123.4" for an array element, "123" for a job of its own
    failed: int = 0
    failed_text: str = ""
    exit_status: int | None = None
    host: str = ""


def parse_qacct(text: str) -> dict[str, Record]:
    """``qacct -j`` output, by job id; of two records of one job (it ran again), the
    later."""
    records: dict[str, Record] = {}
    for fields in _blocks(text):
        number = fields.get("jobnumber", "")
        if not number.isdigit():
            continue
        task = fields.get("taskid", "undefined")
        job_id = f"{number}.{task}" if task.isdigit() else number
        code, _, why = fields.get("failed", "0").partition(":")
        exit_text = fields.get("exit_status", "").split(" ", 1)[0]
        records[job_id] = Record(job_id, int(code) if code.strip().isdigit() else 0,
                                 why.strip(), int(exit_text) if exit_text.isdigit() else None,
                                 fields.get("hostname", ""))
    return records


def _blocks(text: str) -> list[dict[str, str]]:
    """The records of qacct's output, each its fields by name; a line of "=" parts them."""
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if line.startswith("==="):
            blocks.append({})
            continue
        key, _, value = line.strip().partition(" ")
        if key:
            blocks[-1][key] = value.strip()
    return blocks


def read_accounting(number: str) -> dict[str, Record]:
    """The accounting records of job (or array) ``number``; none while it has none, or
    qacct cannot be run."""
    try:
        done = subprocess.run(["qacct", "-j", number], capture_output=True, text=True,
                              timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_qacct(done.stdout) if done.returncode == 0 else {}


def describe_record(record: Record, err_log: str = "") -> JobStatus:
    """The :class:`JobStatus` of a job that ended as ``record`` says."""
    host = record.host
    if record.failed == _AFTER_JOB:
        how = (f"killed by {name_of_signal(record.exit_status - _SIGNALLED)}"
               if record.exit_status is not None and record.exit_status > _SIGNALLED
               else f"exit status {record.exit_status}")
        return JobStatus(Status.ENDED, f"ended by Grid Engine, deleted (qdel) or over a limit "
                         f"of its own ({how}; its accounting record says failed "
                         f"{record.failed}: {record.failed_text})", None, resubmit=False,
                         kind=DeathKind.KILLED, host=host)
    if record.failed:
        ending = Ending(record.job_id, aborted=True)
        status = describe_ending(ending, Resources(), err_log or None,
                                 (record.failed, record.failed_text), lambda _: host)
    elif record.exit_status is not None and record.exit_status > _SIGNALLED:
        ending = Ending(record.job_id,
                        signal=name_of_signal(record.exit_status - _SIGNALLED))
        status = describe_ending(ending, Resources(), err_log or None)
    else:
        ending = Ending(record.job_id, exited=True, exit_status=record.exit_status)
        status = describe_ending(ending, Resources(), err_log or None)
    return status._replace(host=status.host or host)


def delete(targets: Sequence[str]) -> None:
    """Delete jobs (``123.4``) and whole arrays (``123``) in one qdel; those Grid Engine
    no longer has are ignored."""
    if not targets:
        return
    command = [qdel_path(), *targets]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DeleteError(f"{' '.join(command)} failed: {error}") from None
    if done.returncode == 0:
        return
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    problems = [line for line in lines if "does not exist" not in line
                and "registered" not in line and "deleted" not in line]
    if problems:
        raise DeleteError(f"{' '.join(command)} exited {done.returncode}: "
                          f"{'; '.join(problems)[:300]}")


def qdel_path() -> str:
    """qdel, by its path here when it is on PATH."""
    return shutil.which("qdel") or "qdel"
