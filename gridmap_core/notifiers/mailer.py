"""The ``email`` notifier: a mail per failed or dead job (a digest when many fail at
once) and, when asked, one when the map completes.

Mails are composed and sent by a thread of their own, so a slow or hung mail server
never holds up the monitor; at the end of the map the executor waits a bounded time
for what is still being sent. Failures gathered within ERROR_MAIL_WINDOW seconds go
out together: one mail each up to ERROR_MAIL_DIGEST of them, one digest beyond.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any

from gridmap_core.model.job import Job
from gridmap_core.notifiers.mails import Report, completion_mail, digest_mail, error_mail, report_of
from gridmap_core.notifiers.plots import PlotError, usage_plots
from gridmap_core.notifiers.smtp import MailError, SmtpConfig, send

__all__ = ["EmailNotifier"]
logger = logging.getLogger(__name__)

DIGEST_PLOTS = 3  # jobs whose plots a digest carries
_SMTP_KEYS = ("SMTP_SERVER", "SMTP_SECURITY", "SMTP_USER", "SMTP_PASSWORD", "SMTP_TIMEOUT",
              "SMTP_CAFILE")


def recipients_of(value: str) -> list[str]:
    return [address.strip() for address in value.replace(";", ",").split(",")
            if address.strip()]


class EmailNotifier:
    """Mails about failed and dead jobs and finished maps (see the module's doc)."""

    def __init__(self, settings: Any) -> None:
        self.send_errors = bool(settings["SEND_ERROR_MAIL"])
        self.smtp = SmtpConfig.from_settings({key: settings[key] for key in _SMTP_KEYS})
        # The original's default SMTP_SERVER is a guess from this host's name, wrong on
        # most machines: a program that set up no mail is not warned that it failed
        # (the failure is logged at info level), so that a first run stays quiet.
        sources = getattr(settings, "sources", {})
        self.server_guessed = sources.get("SMTP_SERVER") == "default"
        self.sender = str(settings["ERROR_MAIL_SENDER"])
        self.recipients = recipients_of(str(settings["ERROR_MAIL_RECIPIENT"]))
        if not self.recipients:
            raise ValueError("ERROR_MAIL_RECIPIENT is empty: set it to the address(es) to "
                             "mail, or set SEND_ERROR_MAIL=False")
        self.create_plots = bool(settings["CREATE_PLOTS"])
        self.digest_over = max(1, int(settings["ERROR_MAIL_DIGEST"]))
        self.window = float(settings["ERROR_MAIL_WINDOW"])
        self.interval = float(settings["HEARTBEAT_FREQUENCY"])
        self.resubmit_limit = int(settings["NUM_RESUBMITS"])
        self.sent = 0
        self._condition = threading.Condition()
        self._pending: list[Report] = []  # failures waiting for their window to close
        self._first_at = 0.0
        self._outbox: list[EmailMessage] = []  # composed mails waiting to be sent
        self._flush = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()

    # -- lifecycle hooks ----------------------------------------------------------

    def gridmap_job_failed(self, job: Job) -> None:
        self._report(job, "failed")

    def gridmap_job_died(self, job: Job) -> None:
        self._report(job, "died")

    def gridmap_job_resubmitted(self, job: Job) -> None:
        self._report(job, "resubmitted")

    def gridmap_map_finished(self, jobs: Sequence[Job], summary: Mapping[str, Any]) -> None:
        completion = None
        if summary.get("completion_mail"):
            failed = [report_of(job, "died" if job.cause_of_death else "failed")
                      for job in jobs if job.failed]
            completion = completion_mail(summary, failed, self.sender, self.recipients)
        with self._condition:
            self._flush = True  # the map is over: no reason to wait for more failures
            if completion is not None:
                self._outbox.append(completion)
            self._wake()

    def close(self, timeout: float) -> None:
        """Send what is waiting, for at most ``timeout`` seconds."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
            thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            self._warn("abandoned", "mails still being sent after %.0f s were abandoned "
                       "(SMTP server %s too slow; see SMTP_TIMEOUT)", timeout, self.smtp.server)

    # -- the sending thread -------------------------------------------------------

    def _report(self, job: Job, what: str) -> None:
        if not self.send_errors:
            return
        report = report_of(job, what)
        with self._condition:
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(report)
            self._wake()

    def _wake(self) -> None:
        """Start the sending thread, or tell it there is work (lock held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="gridmap-mail",
                                            daemon=True)
            self._thread.start()
        self._condition.notify_all()

    def _serve(self) -> None:
        while True:
            with self._condition:
                while not (self._pending or self._outbox or self._closing):
                    self._condition.wait()
                if self._pending:
                    deadline = self._first_at + self.window
                    while not (self._flush or self._closing) and time.monotonic() < deadline:
                        self._condition.wait(deadline - time.monotonic())
                reports, self._pending = self._pending, []
                composed, self._outbox = self._outbox, []
                closing = self._closing and not reports and not composed
            if closing:
                return
            for message in self._compose(reports) + composed:
                self._send(message)

    def _compose(self, reports: list[Report]) -> list[EmailMessage]:
        if not reports:
            return []
        if len(reports) <= self.digest_over:
            return [error_mail(report, self.sender, self.recipients, self.resubmit_limit,
                               self._plots(report)) for report in reports]
        images = [(f"{report.name}-{filename}", data) for report in reports[:DIGEST_PLOTS]
                  for filename, data in self._plots(report)]
        return [digest_mail(reports, self.sender, self.recipients, self.resubmit_limit,
                            images)]

    def _plots(self, report: Report) -> list[tuple[str, bytes]]:
        if not self.create_plots:
            return []
        try:
            return usage_plots(report.track_cpu, report.track_mem, self.interval,
                               f"job {report.name}")
        except PlotError as error:
            self._warn("plot", "no CPU/memory plots in error mails: %s", error)
        except Exception as error:  # a plot is never worth losing the mail for
            self._warn("plot", "no CPU/memory plots in error mails: %s: %s",
                       type(error).__name__, error)
        return []

    def _send(self, message: EmailMessage) -> None:
        try:
            send(message, self.smtp)
            self.sent += 1
        except Exception as error:
            why = str(error) if isinstance(error, MailError) else \
                f"{type(error).__name__}: {error}"
            if self.server_guessed:
                why += (f" (SMTP_SERVER is not set: {self.smtp.host} is its default, "
                        "guessed from this host's name; set SMTP_SERVER to get error "
                        "mails)")
            self._warn("send", "mail %r not sent: %s", message["Subject"], why)

    def _warn(self, kind: str, text: str, *args: Any) -> None:
        """Log a kind of failure once as a warning (at info level when no mail server
        was set up); its repeats at debug level."""
        first = logging.INFO if self.server_guessed else logging.WARNING
        level = logging.DEBUG if kind in self._warned else first
        self._warned.add(kind)
        logger.log(level, text, *args)
