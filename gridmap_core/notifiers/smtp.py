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
"""

from __future__ import annotations

import ipaddress
import logging
import math
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from gridmap_core.errors import GridMapError

__all__ = ["DEFAULT_PORTS", "SECURITY_MODES", "MailError", "SmtpConfig", "send"]

logger = logging.getLogger(__name__)

#: The port each security mode uses when ``SMTP_SERVER`` names none.
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "ssl": 465}
SECURITY_MODES: tuple[str, ...] = tuple(DEFAULT_PORTS)

_SERVER_FORMS = "host, host:port or [IPv6 address]:port"
_STOP_HINT = "or set SEND_ERROR_MAIL=False to stop mailing"
# Passwords shorter than this are not masked in messages: masking every "ab" in a
# message would garble it while hiding next to nothing.
_MIN_MASKED_PASSWORD = 4


class MailError(GridMapError, RuntimeError):
    """A mail could not be sent; the message says which server, why, and what to do."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send mail.

    ``port`` 0 means the default port of the security mode (see :attr:`effective_port`).
    """

    host: str
    port: int = 0
    security: str = "none"
    user: str = ""
    password: str = ""
    timeout: float = 10.0
    cafile: str = ""

    def __post_init__(self) -> None:
        # Checked here as well as in from_settings so that a config built directly
        # fails at once, not halfway through sending a mail.
        if not self.host.strip():
            raise ValueError(f"SMTP_SERVER has an empty host name: give {_SERVER_FORMS}")
        if self.security not in SECURITY_MODES:
            raise ValueError(
                f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, "
                f"not {self.security!r}"
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int) \
                or not 0 <= self.port <= 65535:
            raise ValueError(
                f"SMTP_SERVER port must be a number from 1 to 65535 (or 0 for the default "
                f"of SMTP_SECURITY), not {self.port!r}"
            )
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) \
                or not 0 < self.timeout < math.inf:
            raise ValueError(
                f"SMTP_TIMEOUT must be a number of seconds above 0, not {self.timeout!r}"
            )
        if self.password and not self.user:
            raise ValueError("SMTP_PASSWORD is set but SMTP_USER is empty: set SMTP_USER too")

    @property
    def effective_port(self) -> int:
        """The port connected to: ``port``, or the security mode's default when 0."""
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def server(self) -> str:
        """``host:port`` as a person writes it (IPv6 addresses in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.effective_port}"

    def __repr__(self) -> str:
        # The password is replaced so that logs and tracebacks showing a config
        # never show it.
        password = "'***'" if self.password else "''"
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port!r}, "
            f"security={self.security!r}, user={self.user!r}, password={password}, "
            f"timeout={self.timeout!r}, cafile={self.cafile!r})"
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SmtpConfig:
        """Build a config from gridmap settings; missing keys take the defaults.

        Reads ``SMTP_SERVER`` (host, host:port or [IPv6]:port), ``SMTP_SECURITY``
        (none, starttls or ssl, any case), ``SMTP_USER``, ``SMTP_PASSWORD``,
        ``SMTP_TIMEOUT`` (seconds) and ``SMTP_CAFILE``. Raises :class:`ValueError`
        naming the setting and what it may be when a value is bad.
        """
        host, port = _parse_server(_text(settings, "SMTP_SERVER", "localhost"))
        security = _text(settings, "SMTP_SECURITY", "none").strip().lower() or "none"
        if security not in SECURITY_MODES:
            raise ValueError(
                f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)} (any case), "
                f"not {settings.get('SMTP_SECURITY')!r}"
            )
        return cls(
            host=host,
            port=port,
            security=security,
            user=_text(settings, "SMTP_USER", ""),
            password=_text(settings, "SMTP_PASSWORD", ""),
            timeout=_seconds(settings.get("SMTP_TIMEOUT", 10.0)),
            cafile=_text(settings, "SMTP_CAFILE", ""),
        )


def _text(settings: Mapping[str, Any], name: str, default: str) -> str:
    value = settings.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"SMTP_TIMEOUT must be a number of seconds above 0, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"SMTP_TIMEOUT must be a number of seconds above 0, not {value!r}"
        ) from None
    if not 0 < number < math.inf:
        raise ValueError(f"SMTP_TIMEOUT must be a number of seconds above 0, not {value!r}")
    return number


def _parse_server(text: str) -> tuple[str, int]:
    """``(host, port)`` from ``host``, ``host:port`` or ``[IPv6]:port``; port 0 if none."""
    value = text.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"SMTP_SERVER {text!r} lacks the closing ']': give {_SERVER_FORMS}")
        host, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"SMTP_SERVER {text!r} has {rest!r} after ']': give {_SERVER_FORMS}")
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif value.count(":") > 1:
        # A bare IPv6 address: its colons leave no room for a port.
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise ValueError(
                f"SMTP_SERVER {text!r} is neither host:port nor an IPv6 address: "
                f"give {_SERVER_FORMS}"
            ) from None
        host, port_text = value, None
    else:
        host, port_text = value, None
    host = host.strip()
    if not host:
        raise ValueError(f"SMTP_SERVER {text!r} has an empty host name: give {_SERVER_FORMS}")
    if port_text is None:
        return host, 0
    port_text = port_text.strip()
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(
            f"SMTP_SERVER port {port_text!r} must be a number from 1 to 65535: "
            f"give {_SERVER_FORMS}"
        )
    return host, int(port_text)


def send(message: EmailMessage, config: SmtpConfig) -> None:
    """Send ``message`` to its To/Cc/Bcc recipients, from its From address.

    Every socket operation (connect, TLS handshake, each command) is bounded by
    ``config.timeout``. Raises :class:`MailError` when the mail could not be sent.
    Recipients the server refuses while it takes others are logged as a warning: the
    mail went out, and raising would invite a resend to those who did get it.
    """
    if config.user and config.security == "none":
        raise _error(
            config,
            "refusing to send the password of SMTP_USER over an unencrypted connection",
            "set SMTP_SECURITY=starttls or SMTP_SECURITY=ssl (or clear SMTP_USER if the "
            "server needs no login)",
        )
    if not message.get_all("From"):
        raise _error(config, "the message has no From address", "set ERROR_MAIL_SENDER")
    if not any(message.get_all(field) for field in ("To", "Cc", "Bcc")):
        raise _error(config, "the message has no recipient", "set ERROR_MAIL_RECIPIENT")

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
        mail_error = _translate(config, stage, error)
        if stage == "logging in" and isinstance(error, ValueError):
            # A UnicodeEncodeError from login carries the password in its arguments.
            raise mail_error from None
        raise mail_error from error
    if refused:
        logger.warning(
            "mail via %s: the server refused %s (check ERROR_MAIL_RECIPIENT); "
            "the other recipients were sent the mail",
            config.server, _describe_refusals(refused),
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


def _error(config: SmtpConfig, problem: str, advice: str) -> MailError:
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


def _describe_refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    if not refused:
        return "no recipient given"
    return ", ".join(f"{address} ({_reply(*reply)})" for address, reply in refused.items())


def _timed_out(error: BaseException) -> bool:
    # smtplib turns a timeout while reading a reply into SMTPServerDisconnected, raised
    # while handling the TimeoutError.
    return isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError)


def _translate(config: SmtpConfig, stage: str, error: BaseException) -> MailError:
    """One MailError saying what went wrong while at ``stage`` and what to do."""
    security_advice = (
        "check SMTP_SECURITY: ssl for a server that speaks TLS from the start "
        "(usually port 465), starttls for one that upgrades (usually 587), none for "
        "plain SMTP (usually 25)"
    )
    if stage == "reading SMTP_CAFILE":
        return _error(
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
        return _error(config, f"the server's certificate could not be verified ({reason})",
                      advice)
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        return _error(config, f"the TLS handshake failed while {stage} ({reason})",
                      security_advice)
    if isinstance(error, smtplib.SMTPNotSupportedError) and stage == "starting TLS":
        alternative = "" if config.user else ", or SMTP_SECURITY=none to send unencrypted"
        return _error(
            config, "the server does not offer STARTTLS",
            f"set SMTP_SECURITY=ssl if it speaks TLS from the start (usually port 465)"
            f"{alternative}",
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return _error(
            config,
            f"authentication failed for user {config.user!r} "
            f"(server: {_reply(error.smtp_code, error.smtp_error)})",
            "check SMTP_USER/SMTP_PASSWORD",
        )
    if stage == "logging in" and isinstance(error, smtplib.SMTPNotSupportedError):
        return _error(
            config, "the server offers no login (AUTH)",
            "clear SMTP_USER if it needs none, or check SMTP_SECURITY and SMTP_SERVER "
            "(many servers offer AUTH only on the submission port 587 or 465)",
        )
    if stage == "logging in" and isinstance(error, ValueError):
        return _error(
            config, "the user name or password has characters SMTP login cannot carry "
            "(only ASCII)", "check SMTP_USER/SMTP_PASSWORD",
        )
    if stage == "logging in" and type(error) is smtplib.SMTPException:
        # smtplib raises a bare SMTPException when no AUTH mechanism is shared.
        return _error(config, f"authentication failed for user {config.user!r} ({error})",
                      "check SMTP_USER/SMTP_PASSWORD and that the server offers "
                      "AUTH PLAIN, LOGIN or CRAM-MD5")
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return _error(
            config, f"the server refused every recipient: {_describe_refusals(error.recipients)}",
            "check ERROR_MAIL_RECIPIENT",
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        return _error(
            config, f"the server refused the sender {error.sender!r} "
            f"({_reply(error.smtp_code, error.smtp_error)})",
            "check ERROR_MAIL_SENDER, and SMTP_USER if the server wants a login first",
        )
    if isinstance(error, smtplib.SMTPDataError):
        return _error(
            config, f"the server refused the message "
            f"({_reply(error.smtp_code, error.smtp_error)})",
            "the server's administrator can say why (size limit, spam filter, ...)",
        )
    if _timed_out(error):
        return _error(
            config, f"no answer within {config.timeout:g} s while {stage}",
            "check SMTP_SERVER=host:port names a running mail server and "
            "SMTP_SECURITY (a TLS server waits silently for TLS), or raise SMTP_TIMEOUT",
        )
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return _error(
            config, f"the server closed the connection while {stage} ({error})",
            security_advice,
        )
    if isinstance(error, smtplib.SMTPResponseException):
        return _error(
            config, f"the server answered {_reply(error.smtp_code, error.smtp_error)} "
            f"while {stage}", "check SMTP_SERVER, SMTP_SECURITY, SMTP_USER and the message",
        )
    if isinstance(error, ConnectionRefusedError):
        return _error(
            config, "the connection was refused (nothing listens on that port)",
            "set SMTP_SERVER=host:port to a running mail server",
        )
    if isinstance(error, socket.gaierror):
        return _error(
            config, f"cannot resolve host {config.host!r} ({error.strerror or error})",
            "set SMTP_SERVER=host:port to a mail server's name or address",
        )
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        return _error(config, f"{reason} while {stage}",
                      "check SMTP_SERVER=host:port and the network")
    return _error(config, f"{type(error).__name__}: {error} while {stage}",
                  "check the message's From/To headers" if stage == "sending the mail"
                  else "check the SMTP_* settings")
