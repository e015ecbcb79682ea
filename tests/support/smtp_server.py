"""Real SMTP servers for tests: an in-process aiosmtpd server, and two broken ones.

:func:`running_smtp_server` runs aiosmtpd on 127.0.0.1 on a free port, in plain SMTP,
STARTTLS or SMTPS mode, optionally requiring a login, and records every mail it
receives::

    with running_smtp_server(tmp_path, security="starttls", users={"ann": "pw"}) as server:
        send(message, SmtpConfig("localhost", server.port, "starttls", "ann", "pw",
                                 cafile=server.cafile))
        [received] = server.wait_for(1)

For TLS it makes a throwaway CA and a certificate for localhost and 127.0.0.1 signed by
it (with the ``openssl`` command); clients trust the CA through ``server.cafile``.

:func:`hanging_server` accepts connections and never answers; :func:`closed_port` is a
port nothing listens on.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import ipaddress
import logging
import selectors
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from PIL import Image

__all__ = [
    "SECURITY_MODES",
    "Endpoint",
    "Received",
    "Server",
    "closed_port",
    "hanging_server",
    "make_certificates",
    "png_sizes",
    "running_smtp_server",
]

HOST = "127.0.0.1"
SECURITY_MODES = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class Received:
    """One mail the server took: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    #: The user that logged in on the connection that sent it (None: no login).
    login: str | None
    #: Whether the connection was encrypted when the mail was sent.
    tls: bool


@dataclass(frozen=True)
class Endpoint:
    """A listening address."""

    host: str
    port: int


@dataclass
class Server:
    """A running test SMTP server and what it received."""

    host: str
    port: int
    security: str
    #: PEM file of the CA that clients must trust for TLS ("" when there is no TLS).
    cafile: str
    messages: list[Received] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def add(self, received: Received) -> None:
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` mails, once they have arrived; AssertionError if they don't."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(
                    f"the SMTP server on {self.host}:{self.port} received "
                    f"{len(self.messages)} mail(s) within {timeout:g} s, expected {count}"
                )
            return list(self.messages[:count])


class _Handler:
    """aiosmtpd handler: records mails, optionally demands a login and refuses recipients."""

    def __init__(self, server: Server, users: Mapping[str, str] | None,
                 refuse_recipients: bool | Collection[str]) -> None:
        self.server = server
        self.users = dict(users) if users is not None else None
        self.refuse_recipients = refuse_recipients

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        if self.users is not None and isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if user in self.users and self.users[user] == password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # Login is demanded here rather than with aiosmtpd's auth_required: aiosmtpd
        # counts only STARTTLS as TLS for auth_require_tls, not an SMTPS connection, and
        # auth_required without auth_require_tls makes it warn for every connection.
        if self.users is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        refuse = self.refuse_recipients
        if refuse is True or (not isinstance(refuse, bool) and address in refuse):
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # SMTP carries lines ending in CRLF; as a Unix mailbox would, store them with LF
        # so that text parts read back exactly as they were written.
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        self.server.add(Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            login=session.auth_data if session.authenticated else None,
            tls=tls,
        ))
        return "250 2.0.0 Message accepted for delivery"


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd 1.4 sets its own deprecated Session.login_data after every successful
    # AUTH and warns about that itself; the warning says nothing about the test.
    return "login_data is deprecated" not in record.getMessage()


class _Controller(Controller):
    """aiosmtpd's threaded controller, listening on a free port the system picks."""

    def _trigger_server(self) -> None:
        # Controller connects to self.port to make aiosmtpd create its SMTP object;
        # with port 0 that is the port actually bound, known only once listening.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def make_certificates(directory: Path, names: Sequence[str] = ("localhost", "127.0.0.1"),
                      ) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate and key it signed for ``names`` (hosts or IPs).

    Returns ``(ca_certificate, server_certificate, server_key)`` as PEM files.
    A CA separate from the server's certificate keeps verification as strict as
    against a real server (Python 3.13's default context rejects self-signed leaves
    that lack CA extensions).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, request = directory / "server.key", directory / "server.csr"
    cert = directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {', '.join(map(_subject_alt_name, names))}\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    # EC keys: generating them takes milliseconds, RSA ones up to a second.
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [openssl, "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(ca_cert),
         "-days", "2", "-subj", "/CN=gridmap test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-new", *new_key, "-keyout", str(key), "-out", str(request),
         "-subj", f"/CN={names[0]}"],
        [openssl, "x509", "-req", "-in", str(request), "-CA", str(ca_cert),
         "-CAkey", str(ca_key), "-set_serial", "2", "-days", "2",
         "-extfile", str(extensions), "-out", str(cert)],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return ca_cert, cert, key


def _subject_alt_name(name: str) -> str:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return f"DNS:{name}"
    return f"IP:{name}"


@contextmanager
def running_smtp_server(
    tmp_path: Path,
    *,
    security: str = "none",
    users: Mapping[str, str] | None = None,
    refuse_recipients: bool | Collection[str] = False,
    certificate_names: Sequence[str] = ("localhost", "127.0.0.1"),
) -> Iterator[Server]:
    """Run a real SMTP server on 127.0.0.1 until the block ends.

    ``security``: "none" (plain SMTP), "starttls" (offers and requires STARTTLS before
    MAIL) or "ssl" (TLS from the first byte). ``users``: user name to password; when
    given, mail is only taken after AUTH PLAIN or LOGIN with one of them.
    ``refuse_recipients``: True answers every RCPT with 550; a collection of addresses,
    just those. ``certificate_names``: the host names and IP addresses the TLS
    certificate is valid for.
    """
    if security not in SECURITY_MODES:
        raise ValueError(f"security must be one of {SECURITY_MODES}, not {security!r}")
    cafile = ""
    tls_context: ssl.SSLContext | None = None
    if security != "none":
        ca_cert, cert, key = make_certificates(tmp_path / "smtp-tls", certificate_names)
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cert, key)
        cafile = str(ca_cert)
    server = Server(host=HOST, port=0, security=security, cafile=cafile)
    handler = _Handler(server, users, refuse_recipients)
    options: dict[str, Any] = {
        # A fixed name: aiosmtpd would otherwise look up this machine's FQDN, which
        # can take seconds where DNS is missing.
        "server_hostname": "localhost",
        "authenticator": handler.authenticate,
        # aiosmtpd does not count an SMTPS connection as TLS for auth_require_tls, so
        # AUTH must be allowed "without TLS" there; with STARTTLS it waits for TLS.
        "auth_require_tls": security == "starttls",
        "ready_timeout": 10.0,
    }
    if security == "starttls":
        options.update(tls_context=tls_context, require_starttls=True)
    elif security == "ssl":
        options.update(ssl_context=tls_context)
    controller = _Controller(handler, hostname=HOST, port=0, **options)
    aiosmtpd_log = logging.getLogger("mail.log")
    aiosmtpd_log.addFilter(_not_login_data_deprecation)
    try:
        controller.start()
        server.port = controller.port
        try:
            yield server
        finally:
            controller.stop()
    finally:
        aiosmtpd_log.removeFilter(_not_login_data_deprecation)


@contextmanager
def hanging_server() -> Iterator[Endpoint]:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""
    listener = socket.create_server((HOST, 0))
    listener.setblocking(False)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve() -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not stop.is_set():
                if selector.select(timeout=0.05):
                    try:
                        connection, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    # Kept open, unread, so the client sees a live, silent server.
                    accepted.append(connection)

    thread = threading.Thread(target=serve, name="hanging-smtp", daemon=True)
    thread.start()
    try:
        yield Endpoint(HOST, listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        # Freed again at once; the system picks ports to hand out among thousands, so
        # nothing else takes this one during the test.
        port: int = probe.getsockname()[1]
    return port


def png_sizes(received: Received) -> dict[str, tuple[int, int]]:
    """Each attachment's file name and pixel size; every attachment must be a PNG."""
    sizes = {}
    for part in received.message.iter_attachments():
        assert part.get_content_type() == "image/png"
        sizes[part.get_filename()] = Image.open(io.BytesIO(part.get_content())).size
    return sizes
