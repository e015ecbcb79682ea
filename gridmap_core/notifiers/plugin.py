"""Registers the built-in notifiers through the ``gridmap`` entry-point group.

Imported whenever gridmap reads its plugin registry, so the notifiers themselves (and
smtplib, matplotlib) are loaded only when a map uses them.
"""

from __future__ import annotations

import socket
from typing import Any

from gridmap_core.model.setting import Setting, seconds, text
from gridmap_core.plugins.manager import hookimpl
from gridmap_core.plugins.types import NotifierSpec


def _default_smtp_server() -> str:
    # The original's guess: this host's domain (its name's last three parts).
    return ".".join(socket.gethostname().split(".")[-3:])


#: The email notifier's settings: where and how mail is sent (SEND_ERROR_MAIL,
#: ERROR_MAIL_* and CREATE_PLOTS are gridmap's own, as they were the original's).
EMAIL_SETTINGS = (
    Setting("SMTP_SERVER", text, _default_smtp_server, "SMTP server for mails"),
    Setting("SMTP_SECURITY", text, "none",
            "how mail is sent: none (plain SMTP), starttls, or ssl (SMTPS)"),
    Setting("SMTP_USER", text, "", "user to log in to the SMTP server as (empty: none)"),
    Setting("SMTP_PASSWORD", text, "", "password for SMTP_USER", secret=True),
    Setting("SMTP_TIMEOUT", seconds, 10, "seconds a mail may take to send"),
    Setting("SMTP_CAFILE", text, "",
            "CA certificates to trust for starttls/ssl besides the system's"),
)


def email_notifier(settings: Any) -> Any:
    """The email notifier, with its own settings read from the map's."""
    from gridmap_core.notifiers.mailer import EmailNotifier  # smtplib: only when used

    return EmailNotifier(settings.including(EMAIL_SETTINGS))


@hookimpl
def gridmap_notifiers() -> list[NotifierSpec]:
    """The built-in notifiers: ``email`` (the default) and ``log``."""
    return [
        NotifierSpec(
            name="email",
            factory=email_notifier,
            description="mail on failed and dead jobs (with CPU/memory plots) and, when "
            "asked, on completion",
            settings=EMAIL_SETTINGS,
        ),
        NotifierSpec(
            name="log",
            factory="gridmap_core.notifiers.log:LogNotifier",
            description="one log line per job event, through the logging module",
        ),
    ]
