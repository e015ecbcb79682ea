"""The status page's web server: the standard library's threading HTTP server, run on
a daemon thread of the submitting process.

Every page and every answer of the API needs the map's token, a random string printed
with the page's address when the map starts: another user of the machine can reach a
port on localhost, but cannot guess the token. A request without it gets 403 before
anything about the map is read. The token never reaches other sites: pages forbid
referrers and load nothing from elsewhere.

The guard, the answers' headers and the handling of bad requests are shared with the
page of ``gridmap watch`` (:mod:`gridmap_core.watching.journal_page`) through
:class:`GuardedHandler`, :class:`PageServer` and :func:`listen`.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import selectors
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, ClassVar, TypeVar
from urllib.parse import SplitResult, parse_qs, quote, urlsplit

from gridmap_core.watching.board import Board, thin
from gridmap_core.watching.charts import line_chart

__all__ = ["HEADERS", "BadRequest", "GuardedHandler", "PageServer", "StatusServer", "listen",
           "page_base", "parse_address", "whole_number"]
logger = logging.getLogger(__name__)

STATIC = {"status.js": "text/javascript", "job.js": "text/javascript",
          "status.css": "text/css"}
PAGES = {"/": "index.html"}
JOB_PAGE = re.compile(r"^/job/([^/]*)$")
JOB_API = re.compile(r"^/api/job/([^/]*)(?:/(cpu|memory)\.svg)?$")
# A job's index or a version: ASCII digits only (``\d`` and ``int`` also take other
# scripts' digits), and few enough that ``int`` never meets its 4300-digit limit.
NUMBER = re.compile(r"[0-9]{1,18}")
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'; "
                               "form-action 'none'; base-uri 'none'",
}


def parse_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as a pair; ValueError says what is wrong."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"STATUS_PAGE_ADDRESS={value!r} is not host:port (e.g. "
                         "127.0.0.1:0 for any free port on this machine only)")
    return host.strip("[]") or "127.0.0.1", int(port)


def page_base(host: str, port: int) -> str:
    """The address of a page served on ``host``:``port``, without its token: a wildcard
    host is named by this machine's name, a v6 one is bracketed."""
    if host in ("0.0.0.0", "::"):
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class PageServer(ThreadingHTTPServer):
    """A server of guarded pages: a thread per request, and the token they need."""

    daemon_threads = True
    token: str


_S = TypeVar("_S", bound=PageServer)


def listen(server_class: type[_S], host: str, port: int,
           handler: type[BaseHTTPRequestHandler]) -> _S:
    """``server_class`` bound to ``host``:``port`` (IPv6 when the host is); OSError when
    it cannot listen there."""
    if ":" in host:
        server_class = type(f"{server_class.__name__}6", (server_class,),
                            {"address_family": socket.AF_INET6})
    return server_class((host, port), handler)


class _Server(PageServer):
    board: Board
    heartbeat: float


class StatusServer:
    """Serves ``board`` at ``address`` until :meth:`close`."""

    def __init__(self, board: Board, address: str, *, heartbeat: float = 10.0) -> None:
        host, port = parse_address(address)
        self.token = secrets.token_urlsafe(18)
        try:
            self._server = listen(_Server, host, port, _Handler)
        except OSError as error:
            raise OSError(f"the status page cannot listen on {host}:{port}: "
                          f"{error.strerror or error}; set STATUS_PAGE_ADDRESS to a free "
                          "host:port (port 0 picks one)") from None
        self._server.board = board
        self._server.token = self.token
        self._server.heartbeat = heartbeat
        self.host = host
        self.port = int(self._server.server_address[1])
        # serve_forever would notice close() only at its next poll, which every map
        # would wait for at its end: a pipe wakes this loop at once instead.
        self._server.timeout = 0
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="gridmap-status-page",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The page's address, token included: what the user opens."""
        return f"{page_base(self.host, self.port)}/?token={quote(self.token)}"

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                events = selector.select()
                if any(key.fileobj == self._wake_r for key, _ in events):
                    return
                self._server.handle_request()  # a thread per request

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class BadRequest(ValueError):
    """A request the page cannot answer as asked: 400, with this message."""


def whole_number(text: str, what: str) -> int:
    """``text`` as a whole number; BadRequest says ``what`` it should have been."""
    if not NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"
        raise BadRequest(f"{what} must be a whole number of at most 18 digits, not {shown!r}")
    return int(text)


class GuardedHandler(BaseHTTPRequestHandler):
    """The requests of a page that needs its token: the static files (the same for
    every map) are served to anyone, anything else only with ``?token=``, and then by
    :meth:`answer`. Every answer carries :data:`HEADERS`."""

    server: PageServer
    sys_version = ""
    #: The static files served, by name, with their content types.
    static: ClassVar[dict[str, str]] = {}
    #: The body of the 403 a request without the token gets: says where the token is.
    refused: ClassVar[bytes] = b"403 refused\n"
    #: Where the page's requests are logged (at debug level), and as what.
    log: ClassVar[logging.Logger] = logger
    log_name: ClassVar[str] = "page"

    def log_message(self, format: str, *args: Any) -> None:
        self.log.debug(f"{self.log_name}: " + format, *args)

    def do_GET(self) -> None:
        # Whatever the request holds, it gets an answer and the server goes on.
        try:
            self._get()
        except BadRequest as error:
            self._send(HTTPStatus.BAD_REQUEST, f"400 bad request: {error}\n".encode(),
                       "text/plain")
        except ValueError:  # an address the standard library cannot split, say
            self._send(HTTPStatus.BAD_REQUEST, b"400 bad request: malformed address\n",
                       "text/plain")

    def _get(self) -> None:
        url = urlsplit(self.path)
        name = url.path.removeprefix("/static/")
        if name != url.path and name in self.static:  # the same for every map: no token
            self._send(HTTPStatus.OK, _asset(name), self.static[name])
            return
        query = parse_qs(url.query)
        given = (query.get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._send(HTTPStatus.FORBIDDEN, self.refused, "text/plain")
            return
        self.answer(url, query)

    def answer(self, url: SplitResult, query: dict[str, list[str]]) -> None:
        """Answer a request that gave the token: ``url`` split, ``query`` parsed."""
        raise NotImplementedError

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self._write(body)

    def _write(self, body: bytes) -> None:
        self.wfile.write(body)


class _Handler(GuardedHandler):
    server: _Server
    server_version = "gridmap-status"
    static = STATIC
    refused = (b"403 refused: this page needs the token printed with its address "
               b"when the map started (?token=...)\n")
    log_name = "status page"

    def answer(self, url: SplitResult, query: dict[str, list[str]]) -> None:
        board = self.server.board
        if url.path in PAGES:
            self._send(HTTPStatus.OK, _asset(PAGES[url.path]), "text/html")
        elif match := JOB_PAGE.match(url.path):
            whole_number(match.group(1), "a job's index")
            self._send(HTTPStatus.OK, _asset("job.html"), "text/html")
        elif url.path == "/api/jobs":
            since = (query.get("since") or ["0"])[0]
            self._json(board.snapshot(whole_number(since, "since=")))
        elif match := JOB_API.match(url.path):
            self._job(board, whole_number(match.group(1), "a job's index"), match.group(2))
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404 not found\n", "text/plain")

    def _job(self, board: Board, index: int, chart: str | None) -> None:
        if chart is None:
            detail = board.detail(index)
            if detail is None:
                self._send(HTTPStatus.NOT_FOUND, b"404 no such job\n", "text/plain")
            else:
                self._json(detail)
            return
        job = board.job(index)
        if job is None:
            self._send(HTTPStatus.NOT_FOUND, b"404 no such job\n", "text/plain")
            return
        track = list(job.track_cpu if chart == "cpu" else job.track_mem)
        seconds = (len(track) - 1) * self.server.heartbeat
        title = f"{'CPU' if chart == 'cpu' else 'Memory'} of {job.name}"
        svg = line_chart(thin(track), title, "%" if chart == "cpu" else "MB", seconds=seconds)
        self._send(HTTPStatus.OK, svg.encode(), "image/svg+xml")

    def _json(self, value: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(value, default=str).encode(), "application/json")

def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()
