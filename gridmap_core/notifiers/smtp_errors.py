"""What went wrong while sending mail, as one :class:`MailError` that says what to do."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping

from gridmap_core.errors import GridMapError
from gridmap_core.notifiers.smtp_config import SmtpConfig

__all__ = ["MailError", "describe_refusals", "make_error", "translate"]

_STOP_HINT = "or set SEND_ERROR_MAIL=False to stop mailing"
# Passwords shorter than this are not masked in messages: masking every "ab" in a
# message would garble it while hiding next to nothing.
_MIN_MASKED_PASSWORD = 4


class MailError(GridMapError, RuntimeError):
    """A mail could not be sent; the message says which server, why, and what to do."""


def make_error(config: SmtpConfig, problem: str, advice: str) -> MailError:
    text = (
        f"could not send mail via {config.server} (SMTP_SECURITY={config.security}): "
        f"{problem}; {advice}, {_STOP_HINT}"
    )
    text = " ".join(text.split())  # one line, whatever the server answered
    if len(config.password) >= _MIN_MASKED_PASSWORD:
        text = text.replace(config.password, "***")
    return MailError(text)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def describe_refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    if not refused:
        return "no recipient given"
    return ", ".join(f"{address} ({_reply(*reply)})" for address, reply in refused.items())


def _timed_out(error: BaseException) -> bool:
    # smtplib turns a timeout while reading a reply into SMTPServerDisconnected, raised
    # while handling the TimeoutError.
    return isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError)


def translate(config: SmtpConfig, stage: str, error: BaseException) -> MailError:
    """One MailError saying what went wrong while at ``stage`` and what to do."""
    security_advice = (
        "check SMTP_SECURITY: ssl for a server that speaks TLS from the start "
        "(usually port 465), starttls for one that upgrades (usually 587), none for "
        "plain SMTP (usually 25)"
    )
    if stage == "reading SMTP_CAFILE":
        return make_error(
            config, f"cannot load SMTP_CAFILE {config.cafile!r} ({error})",
            "set SMTP_CAFILE to a readable PEM file with the server's CA certificate",
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or str(error)
        advice = (
            "check that SMTP_CAFILE holds the CA that signed the server's certificate and "
            "that SMTP_SERVER names a host the certificate is for"
            if config.cafile else "set SMTP_CAFILE to the server's CA certificate (PEM)"
        )
        return make_error(config, f"the server's certificate could not be verified ({reason})",
                      advice)
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        return make_error(config, f"the TLS handshake failed while {stage} ({reason})",
                      security_advice)
    if isinstance(error, smtplib.SMTPNotSupportedError) and stage == "starting TLS":
        alternative = "" if config.user else ", or SMTP_SECURITY=none to send unencrypted"
        return make_error(
            config, "the server does not offer STARTTLS",
            f"set SMTP_SECURITY=ssl if it speaks TLS from the start (usually port 465)"
            f"{alternative}",
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return make_error(
            config,
            f"authentication failed for user {config.user!r} "
            f"(server: {_reply(error.smtp_code, error.smtp_error)})",
            "check SMTP_USER/SMTP_PASSWORD",
        )
    if stage == "logging in" and isinstance(error, smtplib.SMTPNotSupportedError):
        return make_error(
            config, "the server offers no login (AUTH)",
            "clear SMTP_USER if it needs none, or check SMTP_SECURITY and SMTP_SERVER "
            "(many servers offer AUTH only on the submission port 587 or 465)",
        )
    if stage == "logging in" and isinstance(error, ValueError):
        return make_error(
            config, "the user name or password has characters SMTP login cannot carry "
            "(only ASCII)", "check SMTP_USER/SMTP_PASSWORD",
        )
    if stage == "logging in" and type(error) is smtplib.SMTPException:
        # smtplib raises a bare SMTPException when no AUTH mechanism is shared.
        return make_error(config, f"authentication failed for user {config.user!r} ({error})",
                      "check SMTP_USER/SMTP_PASSWORD and that the server offers "
                      "AUTH PLAIN, LOGIN or CRAM-MD5")
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return make_error(
            config, f"the server refused every recipient: {describe_refusals(error.recipients)}",
            "check ERROR_MAIL_RECIPIENT",
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        return make_error(
            config, f"the server refused the sender {error.sender!r} "
            f"({_reply(error.smtp_code, error.smtp_error)})",
            "check ERROR_MAIL_SENDER, and SMTP_USER if the server wants a login first",
        )
    if isinstance(error, smtplib.SMTPDataError):
        return make_error(
            config, f"the server refused the message "
            f"({_reply(error.smtp_code, error.smtp_error)})",
            "the server's administrator can say why (size limit, spam filter, ...)",
        )
    if _timed_out(error):
        return make_error(
            config, f"no answer within {config.timeout:g} s while {stage}",
            "check SMTP_SERVER=host:port names a running mail server and "
            "SMTP_SECURITY (a TLS server waits silently for TLS), or raise SMTP_TIMEOUT",
        )
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return make_error(
            config, f"the server closed the connection while {stage} ({error})",
            security_advice,
        )
    if isinstance(error, smtplib.SMTPResponseException):
        return make_error(
            config, f"the server answered {_reply(error.smtp_code, error.smtp_error)} "
            f"while {stage}", "check SMTP_SERVER, SMTP_SECURITY, SMTP_USER and the message",
        )
    if isinstance(error, ConnectionRefusedError):
        return make_error(
            config, "the connection was refused (nothing listens on that port)",
            "set SMTP_SERVER=host:port to a running mail server",
        )
    if isinstance(error, socket.gaierror):
        return make_error(
            config, f"cannot resolve host {config.host!r} ({error.strerror or error})",
            "set SMTP_SERVER=host:port to a mail server's name or address",
        )
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        return make_error(config, f"{reason} while {stage}",
                      "check SMTP_SERVER=host:port and the network")
    return make_error(config, f"{type(error).__name__}: {error} while {stage}",
                  "check the message's From/To headers" if stage == "sending the mail"
                  else "check the SMTP_* settings")
