"""gridmap_core.notifiers.smtp against real SMTP servers (aiosmtpd) and broken ones."""

from __future__ import annotations

import gc
import socket
import struct
import time
import traceback
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gridmap_core.notifiers.smtp import MailError, SmtpConfig, send
from tests.support.smtp_server import closed_port, hanging_server, running_smtp_server

PASSWORD = "correct-horse-battery"
USERS = {"ann": PASSWORD}


def png_image() -> bytes:
    """A valid 32x32 RGB PNG whose compressed bytes cover CR, LF, NUL, dots and 8-bit."""
    width = height = 32
    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 13 + c * 101) % 256 for x in range(width) for c in range(3))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def make_message(to: str = "ann@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "gridmap <error@gridmap.test>"
    message["To"] = to
    message["Subject"] = "job 3 of map 'fit' failed"
    message.set_content("Traceback (most recent call last):\n  ...\nValueError: bad\n")
    return message


@contextmanager
def no_unclosed_sockets() -> Iterator[None]:
    """Fail when the block leaves a socket for the garbage collector to close."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaks = [str(w.message) for w in caught
             if issubclass(w.category, ResourceWarning) and "socket" in str(w.message)]
    assert not leaks, leaks


def send_failing(message: EmailMessage, config: SmtpConfig) -> tuple[str, str]:
    """Send, expecting a MailError: its message, and the whole traceback chain as text.

    Also checks that the failed attempt closed its connection.
    """
    with no_unclosed_sockets():
        with pytest.raises(MailError) as caught:
            send(message, config)
        text = str(caught.value)
        chain = "".join(traceback.format_exception(caught.value))
        del caught  # its traceback holds smtplib's objects; let gc see them go
    assert "\n" not in text, text
    assert config.server in text, text
    return text, chain


def test_plain_delivery_keeps_envelope_headers_body_and_attachment(tmp_path: Path) -> None:
    image = png_image()
    message = make_message("ann@example.org, Bob <bob@example.org>")
    message["Cc"] = "carl@example.org"
    message["Bcc"] = "dora@example.org"
    message.replace_header("Subject", "map 'fit' finished — 3 failures")
    message.add_attachment(image, maintype="image", subtype="png", filename="memory.png")

    with running_smtp_server(tmp_path) as server, no_unclosed_sockets():
        send(message, SmtpConfig(server.host, server.port))
        [received] = server.wait_for(1)

    assert received.mail_from == "error@gridmap.test"
    assert sorted(received.rcpt_tos) == ["ann@example.org", "bob@example.org",
                                         "carl@example.org", "dora@example.org"]
    assert (received.login, received.tls) == (None, False)
    got = received.message
    assert got["From"] == "gridmap <error@gridmap.test>"
    assert got["To"] == "ann@example.org, Bob <bob@example.org>"
    assert got["Subject"] == "map 'fit' finished — 3 failures"
    assert got["Bcc"] is None  # the blind copy went in the envelope only
    body = got.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Traceback (most recent call last):\n  ...\nValueError: bad\n"
    [attachment] = list(got.iter_attachments())
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_filename() == "memory.png"
    assert attachment.get_content() == image


def test_starttls_with_login(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, security="starttls", users=USERS) as server, \
            no_unclosed_sockets():
        send(make_message(), SmtpConfig("localhost", server.port, "starttls", "ann", PASSWORD,
                                        cafile=server.cafile))
        [received] = server.wait_for(1)
    assert (received.login, received.tls) == ("ann", True)
    assert received.rcpt_tos == ["ann@example.org"]


def test_smtps_with_login_verifies_ip_address_certificate(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, security="ssl", users=USERS) as server, \
            no_unclosed_sockets():
        send(make_message(), SmtpConfig("127.0.0.1", server.port, "ssl", "ann", PASSWORD,
                                        cafile=server.cafile))
        [received] = server.wait_for(1)
    assert (received.login, received.tls) == ("ann", True)
    assert received.message["Subject"] == "job 3 of map 'fit' failed"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_wrong_password_is_an_authentication_error_without_the_password(
        tmp_path: Path, security: str) -> None:
    wrong = "Tr0ub4dor&3-wrong"
    with running_smtp_server(tmp_path, security=security, users=USERS) as server:
        config = SmtpConfig("localhost", server.port, security, "ann", wrong,
                            cafile=server.cafile)
        text, chain = send_failing(make_message(), config)
        assert server.messages == []
    assert "authentication failed" in text.lower()
    assert "SMTP_USER/SMTP_PASSWORD" in text
    assert wrong not in chain
    assert PASSWORD not in chain


def test_login_the_server_requires_but_no_user_set(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, security="starttls", users=USERS) as server:
        text, _ = send_failing(make_message(), SmtpConfig(
            "localhost", server.port, "starttls", cafile=server.cafile))
        assert server.messages == []
    assert "530" in text
    assert "SMTP_USER" in text


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_untrusted_certificate(tmp_path: Path, security: str) -> None:
    with running_smtp_server(tmp_path, security=security, users=USERS) as server:
        text, _ = send_failing(make_message(), SmtpConfig(
            "localhost", server.port, security, "ann", PASSWORD))
        assert server.messages == []
    assert "certificate could not be verified" in text
    assert "SMTP_CAFILE" in text


def test_certificate_for_another_host(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, security="ssl", users=USERS,
                             certificate_names=["localhost"]) as server:
        text, _ = send_failing(make_message(), SmtpConfig(
            "127.0.0.1", server.port, "ssl", "ann", PASSWORD, cafile=server.cafile))
        assert server.messages == []
    assert "certificate could not be verified" in text
    assert "mismatch" in text
    assert "SMTP_SERVER names a host the certificate is for" in text


def test_unreadable_cafile(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    text, _ = send_failing(make_message(), SmtpConfig(
        "127.0.0.1", closed_port(), "ssl", cafile=str(missing)))
    assert "SMTP_CAFILE" in text
    assert str(missing) in text


def test_starttls_requested_but_not_offered(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, security="none") as server:
        text, _ = send_failing(make_message(), SmtpConfig(
            "127.0.0.1", server.port, "starttls"))
        assert server.messages == []
    assert "does not offer STARTTLS" in text
    assert "SMTP_SECURITY=ssl" in text


def test_tls_against_a_plain_server(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, security="none") as server:
        text, _ = send_failing(make_message(), SmtpConfig("127.0.0.1", server.port, "ssl"))
    assert "TLS handshake failed" in text
    assert "SMTP_SECURITY" in text


def test_password_over_plain_smtp_is_refused_before_connecting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        text, _ = send_failing(make_message(), SmtpConfig("127.0.0.1", port, "none",
                                                          "ann", PASSWORD))
        # The kernel queues any connection attempt for accept(): none came.
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert "unencrypted" in text
    assert "SMTP_SECURITY=starttls" in text
    assert PASSWORD not in text


def test_message_without_recipient_is_refused_before_connecting() -> None:
    message = make_message()
    del message["To"]
    text, _ = send_failing(message, SmtpConfig("127.0.0.1", closed_port()))
    assert "no recipient" in text
    assert "ERROR_MAIL_RECIPIENT" in text


def test_server_down_fails_fast() -> None:
    started = time.monotonic()
    text, _ = send_failing(make_message(), SmtpConfig("127.0.0.1", closed_port(), timeout=5))
    assert time.monotonic() - started < 2
    assert "refused" in text
    assert "SMTP_SERVER=host:port" in text


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_hanging_server_times_out(security: str) -> None:
    with hanging_server() as endpoint:
        started = time.monotonic()
        text, _ = send_failing(make_message(), SmtpConfig(
            endpoint.host, endpoint.port, security, timeout=1))
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 10
    assert "no answer within 1 s" in text
    assert "SMTP_TIMEOUT" in text


def test_refused_recipient(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path, refuse_recipients=True) as server:
        text, _ = send_failing(make_message("nobody@example.org"),
                               SmtpConfig(server.host, server.port))
        assert server.messages == []
    assert "refused every recipient" in text
    assert "nobody@example.org" in text
    assert "550" in text
    assert "ERROR_MAIL_RECIPIENT" in text


def test_some_recipients_refused_is_sent_and_logged(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with running_smtp_server(tmp_path, refuse_recipients={"gone@example.org"}) as server:
        send(make_message("ann@example.org, gone@example.org"),
             SmtpConfig(server.host, server.port))
        [received] = server.wait_for(1)
    assert received.rcpt_tos == ["ann@example.org"]
    [record] = [r for r in caplog.records if r.name == "gridmap_core.notifiers.smtp"]
    assert record.levelname == "WARNING"
    assert "gone@example.org" in record.getMessage()
    assert "ann@example.org" not in record.getMessage()


@pytest.mark.parametrize(("server", "host", "port"), [
    ("mail.example.org", "mail.example.org", 0),
    ("mail.example.org:2525", "mail.example.org", 2525),
    (" mail.example.org : 2525 ", "mail.example.org", 2525),
    ("192.0.2.7:25", "192.0.2.7", 25),
    ("[2001:db8::1]:587", "2001:db8::1", 587),
    ("[::1]", "::1", 0),
    ("2001:db8::25", "2001:db8::25", 0),
])
def test_from_settings_server_forms(server: str, host: str, port: int) -> None:
    config = SmtpConfig.from_settings({"SMTP_SERVER": server})
    assert (config.host, config.port) == (host, port)


def test_from_settings_ipv6_server_is_written_back_in_brackets() -> None:
    config = SmtpConfig.from_settings({"SMTP_SERVER": "[2001:db8::1]:587"})
    assert config.server == "[2001:db8::1]:587"


@pytest.mark.parametrize(("security", "mode", "port"), [
    ("none", "none", 25), ("STARTTLS", "starttls", 587), (" Ssl ", "ssl", 465),
])
def test_from_settings_default_port_per_security_mode(security: str, mode: str,
                                                      port: int) -> None:
    config = SmtpConfig.from_settings({"SMTP_SERVER": "mx", "SMTP_SECURITY": security})
    assert (config.security, config.port, config.effective_port) == (mode, 0, port)
    explicit = SmtpConfig.from_settings({"SMTP_SERVER": "mx:2500", "SMTP_SECURITY": security})
    assert explicit.effective_port == 2500


def test_from_settings_reads_every_key() -> None:
    config = SmtpConfig.from_settings({
        "SMTP_SERVER": "smtp.example.org:587", "SMTP_SECURITY": "starttls",
        "SMTP_USER": "ann", "SMTP_PASSWORD": PASSWORD, "SMTP_TIMEOUT": "2.5",
        "SMTP_CAFILE": "/etc/site-ca.pem", "UNRELATED": object(),
    })
    assert config == SmtpConfig("smtp.example.org", 587, "starttls", "ann", PASSWORD, 2.5,
                                "/etc/site-ca.pem")


def test_from_settings_missing_keys_take_defaults() -> None:
    assert SmtpConfig.from_settings({}) == SmtpConfig("localhost", 0, "none", "", "", 10.0, "")
    assert SmtpConfig.from_settings({"SMTP_TIMEOUT": 3}).timeout == 3.0


@pytest.mark.parametrize(("settings", "expected"), [
    ({"SMTP_SECURITY": "tls"}, ["SMTP_SECURITY", "none, starttls, ssl", "'tls'"]),
    ({"SMTP_SERVER": "mx:smtp"}, ["SMTP_SERVER", "1 to 65535", "'smtp'"]),
    ({"SMTP_SERVER": "mx:0"}, ["SMTP_SERVER", "1 to 65535"]),
    ({"SMTP_SERVER": "mx:65536"}, ["SMTP_SERVER", "1 to 65535"]),
    ({"SMTP_SERVER": "mx:-25"}, ["SMTP_SERVER", "1 to 65535"]),
    ({"SMTP_SERVER": "mx:"}, ["SMTP_SERVER", "1 to 65535"]),
    ({"SMTP_SERVER": ""}, ["SMTP_SERVER", "empty host", "host:port"]),
    ({"SMTP_SERVER": ":25"}, ["SMTP_SERVER", "empty host"]),
    ({"SMTP_SERVER": "[]:25"}, ["SMTP_SERVER", "empty host"]),
    ({"SMTP_SERVER": "[2001:db8::1:25"}, ["SMTP_SERVER", "']'"]),
    ({"SMTP_SERVER": "[2001:db8::1]25"}, ["SMTP_SERVER", "after ']'"]),
    ({"SMTP_SERVER": "mx:25:26"}, ["SMTP_SERVER", "[IPv6 address]:port"]),
    ({"SMTP_TIMEOUT": 0}, ["SMTP_TIMEOUT", "above 0"]),
    ({"SMTP_TIMEOUT": "-1"}, ["SMTP_TIMEOUT", "above 0"]),
    ({"SMTP_TIMEOUT": "soon"}, ["SMTP_TIMEOUT", "above 0", "'soon'"]),
    ({"SMTP_TIMEOUT": "nan"}, ["SMTP_TIMEOUT", "above 0"]),
    ({"SMTP_TIMEOUT": "inf"}, ["SMTP_TIMEOUT", "above 0"]),
    ({"SMTP_TIMEOUT": True}, ["SMTP_TIMEOUT", "above 0"]),
    ({"SMTP_PASSWORD": PASSWORD}, ["SMTP_PASSWORD", "SMTP_USER"]),
    ({"SMTP_USER": 7}, ["SMTP_USER", "string"]),
])
def test_from_settings_bad_values(settings: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        SmtpConfig.from_settings(settings)
    for part in expected:
        assert part in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(("fields", "setting"), [
    ({"security": "SSL"}, "SMTP_SECURITY"),
    ({"port": 70000}, "SMTP_SERVER"),
    ({"host": " "}, "SMTP_SERVER"),
    ({"timeout": 0.0}, "SMTP_TIMEOUT"),
    ({"password": PASSWORD}, "SMTP_PASSWORD"),
])
def test_config_built_directly_is_checked_too(fields: dict[str, Any], setting: str) -> None:
    arguments: dict[str, Any] = {"host": "mx", **fields}
    with pytest.raises(ValueError, match=setting):
        SmtpConfig(**arguments)


def test_repr_hides_the_password() -> None:
    config = SmtpConfig("mx", 587, "starttls", "ann", PASSWORD)
    for text in (repr(config), str(config), f"{config}", repr([config])):
        assert PASSWORD not in text
        assert "password='***'" in text
        assert "user='ann'" in text
    assert "password=''" in repr(SmtpConfig("mx"))
