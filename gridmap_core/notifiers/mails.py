"""The mails themselves: one per failed or dead job, a digest of many, and the
completion summary. Pure functions of :class:`Report` snapshots, so they can be
written and tested without a server."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from gridmap_core.model.job import Job

__all__ = ["Report", "completion_mail", "digest_mail", "error_mail", "report_of"]

LOG_TAIL = 4096  # characters of a job's log in its mail
TRACEBACK_TAIL = 16384


@dataclass(frozen=True)
class Report:
    """What a mail says about one job, taken when the event happened (the Job object
    changes afterwards: a resubmitted job starts over)."""

    name: str
    job_id: str
    what: str  # "failed", "died" or "resubmitted"
    host: str = ""
    backend: str = ""
    cause: str = ""
    exception: str = ""
    traceback: str = ""
    log_tail: str = ""
    num_resubmits: int = 0
    track_cpu: tuple[float, ...] = ()
    track_mem: tuple[float, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        if self.what == "failed":
            return f"job {self.name} failed: {self.exception or 'it raised'}"
        if self.what == "resubmitted":
            return f"job {self.name} died and was resubmitted: {self.cause}"
        return f"job {self.name} died: {self.cause}"


def _tail(path: str, size: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def report_of(job: Job, what: str) -> Report:
    """Snapshot ``job`` for a mail about its ``what`` (failed, died, resubmitted)."""
    beat = job.heart_beat or {}
    logs = [str(beat.get("log_tail") or "")]
    for path in (job.log_stdout_fn, job.log_stderr_fn):
        if path:
            logs.append(_tail(path, LOG_TAIL))
    exception = "" if job.ret is None or what != "failed" else \
        f"{type(job.ret).__name__}: {job.ret}"
    return Report(
        name=job.name,
        job_id="" if job.id in (-1, "") else str(job.id),
        what=what,
        host=job.host_name,
        backend=job.backend,
        cause=job.cause_of_death,
        exception=exception,
        traceback=(job.traceback or "")[-TRACEBACK_TAIL:],
        log_tail="\n".join(log for log in logs if log)[-LOG_TAIL:],
        num_resubmits=job.num_resubmits,
        track_cpu=tuple(job.track_cpu),
        track_mem=tuple(job.track_mem),
    )


def _new(subject: str, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="gridmap")
    return message


def _section(report: Report, resubmit_limit: int) -> str:
    lines = [
        f"Job: {report.name}",
        f"Job id: {report.job_id or 'unknown'}",
        f"Host: {report.host or 'unknown'}",
        f"Backend: {report.backend or 'unknown'}",
        f"What happened: {report.what}",
    ]
    if report.exception:
        lines.append(f"Exception: {report.exception}")
    if report.cause:
        lines.append(f"Cause of death: {report.cause}")
    lines.append(f"Resubmits: {report.num_resubmits} of {resubmit_limit}")
    if report.track_cpu:
        lines.append(f"CPU: last {report.track_cpu[-1]:.0f} %, peak {max(report.track_cpu):.0f} %"
                     f" over {len(report.track_cpu)} heartbeats")
    if report.track_mem:
        lines.append(f"Memory: last {report.track_mem[-1]:.1f} MB, "
                     f"peak {max(report.track_mem):.1f} MB")
    if report.traceback:
        lines += ["", "Traceback:", report.traceback.rstrip()]
    if report.log_tail:
        lines += ["", "Log tail:", report.log_tail.rstrip()]
    return "\n".join(lines)


def _attach(message: EmailMessage, images: Sequence[tuple[str, bytes]]) -> None:
    for filename, data in images:
        message.add_attachment(data, maintype="image", subtype="png", filename=filename)


def error_mail(report: Report, sender: str, recipients: Sequence[str], resubmit_limit: int,
               images: Sequence[tuple[str, bytes]] = ()) -> EmailMessage:
    """The mail about one failed, dead or resubmitted job, with its plots attached."""
    message = _new(f"gridmap: {report.headline}"[:200], sender, recipients)
    message.set_content(_section(report, resubmit_limit) + "\n")
    _attach(message, images)
    return message


def digest_mail(reports: Sequence[Report], sender: str, recipients: Sequence[str],
                resubmit_limit: int, images: Sequence[tuple[str, bytes]] = ()) -> EmailMessage:
    """One mail about many jobs that failed or died at about the same time."""
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.what] = counts.get(report.what, 0) + 1
    summary = ", ".join(f"{count} {what}" for what, count in counts.items())
    message = _new(f"gridmap: {len(reports)} jobs failed or died ({summary})", sender,
                   recipients)
    rule = "\n" + "-" * 72 + "\n"
    intro = (f"{len(reports)} jobs failed or died within a short time ({summary}); "
             "one mail for all of them instead of one each.\n")
    message.set_content(intro + rule + rule.join(_section(r, resubmit_limit) for r in reports)
                        + "\n")
    _attach(message, images)
    return message


def completion_mail(summary: Mapping[str, Any], failed: Sequence[Report], sender: str,
                    recipients: Sequence[str]) -> EmailMessage:
    """The mail saying a map has ended, with its counts and what failed."""
    total, succeeded = summary.get("total", 0), summary.get("succeeded", 0)
    name = summary.get("name") or "map"
    verdict = "finished" if succeeded == total else "finished with failures"
    message = _new(f"gridmap: {name} {verdict}: {succeeded} of {total} jobs succeeded",
                   sender, recipients)
    lines = [
        f"Map: {name}",
        f"Backend: {summary.get('backend', '')}",
        f"Jobs: {total}",
        f"Succeeded: {succeeded}",
        f"Failed or died: {summary.get('failed', 0)}",
        f"Cancelled: {summary.get('cancelled', 0)}",
        f"Wall time: {float(summary.get('wall_time', 0.0)):.1f} s",
    ]
    if failed:
        lines += ["", "Failed or dead jobs:"]
        lines += [f"  {report.headline}" for report in failed]
    message.set_content("\n".join(lines) + "\n")
    return message
