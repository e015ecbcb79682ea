"""Where and how to send mail: :class:`SmtpConfig`, read from the ``SMTP_*`` settings."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PORTS", "SECURITY_MODES", "SmtpConfig"]

#: The port each security mode uses when ``SMTP_SERVER`` names none.
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "ssl": 465}
SECURITY_MODES: tuple[str, ...] = tuple(DEFAULT_PORTS)

_SERVER_FORMS = "host, host:port or [IPv6 address]:port"


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
