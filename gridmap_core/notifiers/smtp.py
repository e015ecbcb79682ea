"""Sending one e-mail over SMTP, for gridmap's error and completion mails.

:class:`SmtpConfig` holds where and how to send (built from the ``SMTP_*`` settings with
:meth:`SmtpConfig.from_settings`); :func:`send` delivers one
:class:`~email.message.EmailMessage` with it::

    config = SmtpConfig.from_settings(settings)
    send(message, config)

Three security modes: ``none`` (plain SMTP, port 25), ``starttls`` (plain connection
upgraded to TLS before anything else is said, port 587) and ``ssl`` (TLS from the first
byte, "SMTPS", port 465). TLS always verifies the server's certificate and host name,
against the system's CAs plus ``SMTP_CAFILE``. A password is never sent unencrypted.

Whatever goes wrong while sending (no server, no answer, refused login, untrusted
certificate, refused recipient, ...) is raised as a single :class:`MailError` whose
one-line message names the server, the problem and the setting to change.

This module holds the sending; the config is in :mod:`gridmap_core.notifiers.smtp_config`
and the making of each :class:`MailError`'s message in
:mod:`gridmap_core.notifiers.smtp_errors`; :class:`SmtpConfig` and :class:`MailError`
are importable from here too.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from gridmap_core.notifiers.smtp_config import DEFAULT_PORTS, SECURITY_MODES, SmtpConfig
from gridmap_core.notifiers.smtp_errors import (
    MailError,
    describe_refusals,
    make_error,
    translate,
)

__all__ = ["DEFAULT_PORTS", "SECURITY_MODES", "MailError", "SmtpConfig", "send"]

logger = logging.getLogger(__name__)


def send(message: EmailMessage, config: SmtpConfig) -> None:
    """Send ``message`` to its To/Cc/Bcc recipients, from its From address.

    Every socket operation (connect, TLS handshake, each command) is bounded by
    ``config.timeout``. Raises :class:`MailError` when the mail could not be sent.
    Recipients the server refuses while it takes others are logged as a warning: the
    mail went out, and raising would invite a resend to those who did get it.
    """
    if config.user and config.security == "none":
        raise make_error(
            config,
            "refusing to send the password of SMTP_USER over an unencrypted connection",
            "set SMTP_SECURITY=starttls or SMTP_SECURITY=ssl (or clear SMTP_USER if the "
            "server needs no login)",
        )
    if not message.get_all("From"):
        raise make_error(config, "the message has no From address", "set ERROR_MAIL_SENDER")
    if not any(message.get_all(field) for field in ("To", "Cc", "Bcc")):
        raise make_error(config, "the message has no recipient", "set ERROR_MAIL_RECIPIENT")

    stage = "reading SMTP_CAFILE"
    try:
        context = _tls_context(config) if config.security != "none" else None
        stage = "connecting"
        client = _connect(config, context)
        try:
            if config.security == "starttls":
                stage = "starting TLS"
                client.starttls(context=context)
            if config.user:
                stage = "logging in"
                client.login(config.user, config.password)
            stage = "sending the mail"
            refused = client.send_message(message)
        finally:
            _close(client)
    except (OSError, smtplib.SMTPException, ValueError) as error:
        mail_error = translate(config, stage, error)
        if stage == "logging in" and isinstance(error, ValueError):
            # A UnicodeEncodeError from login carries the password in its arguments.
            raise mail_error from None
        raise mail_error from error
    if refused:
        logger.warning(
            "mail via %s: the server refused %s (check ERROR_MAIL_RECIPIENT); "
            "the other recipients were sent the mail",
            config.server, describe_refusals(refused),
        )


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    # The default context verifies the certificate chain and the host name; SMTP_CAFILE
    # adds a CA (e.g. a site's own) and never replaces that verification.
    context = ssl.create_default_context()
    if config.cafile:
        context.load_verify_locations(cafile=config.cafile)
    return context


def _connect(config: SmtpConfig, context: ssl.SSLContext | None) -> smtplib.SMTP:
    # Passing the host to the constructor makes smtplib remember it for the TLS host
    # name check (server_hostname), in SMTP_SSL and in starttls(). smtplib closes the
    # socket itself when connecting or reading the greeting fails.
    if config.security == "ssl":
        return smtplib.SMTP_SSL(
            config.host, config.effective_port, timeout=config.timeout, context=context
        )
    return smtplib.SMTP(config.host, config.effective_port, timeout=config.timeout)


def _close(client: smtplib.SMTP) -> None:
    # QUIT is a courtesy: when it fails (the connection is already broken, or the server
    # hangs) the socket is closed anyway, and the failure does not hide the real one.
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
