"""``gridmap watch MAP``: the status page of any map, running or long finished, served
from its journal by a process of its own.

The page of ``status_page=True`` lives in the submitting process and ends with it;
this one needs only the map's session directory. Each request reads the journal
afresh (read-only), so a page of a running map follows the monitor writing it, and
the page of a map whose monitor is gone still shows everything it recorded.

It is guarded as the other page is (see :mod:`gridmap_core.watching.server`): bound to
127.0.0.1 unless told otherwise, and every page and answer needs the token printed
with the address; the same headers forbid caching, referrers and anything loaded from
elsewhere.

Paths: ``/`` (``?page=N``, ``?state=failed,dead``), ``/job/N`` (the job at position N),
``/api/summary`` (the figures on top, as JSON), ``/api/throughput.svg``, and the
static files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import signal
import sys
import threading
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import SplitResult, quote

from gridmap_core.journal.store import JOURNAL, JournalError
from gridmap_core.model.config import ConfigError
from gridmap_core.watching.journal_html import error_page, job_page, map_page
from gridmap_core.watching.journal_view import (
    STATES,
    JournalReader,
    error_of,
    failures,
    history,
    page_of_tasks,
    summary,
    task_at,
    throughput,
)
from gridmap_core.watching.server import (
    BadRequest,
    GuardedHandler,
    PageServer,
    listen,
    page_base,
    parse_address,
    whole_number,
)
from gridmap_core.watching.throughput import throughput_chart

__all__ = ["JournalPage", "watch"]
logger = logging.getLogger(__name__)

STATIC = {"status.css": "text/css", "journal.css": "text/css",
          "journal.js": "text/javascript"}
DEFAULT_ADDRESS = "127.0.0.1:0"
REFUSED = (b"403 refused: this page needs the token printed with its address when "
           b"`gridmap watch` started (?token=...)\n")


class _Server(PageServer):
    reader: JournalReader


class JournalPage:
    """The page of the map whose session directory is ``directory``, served at
    ``address`` from :meth:`start` until :meth:`close`."""

    def __init__(self, directory: str | Path, address: str | None = None, *,
                 token: str | None = None) -> None:
        self.directory = Path(directory)
        self.reader = JournalReader(self.directory)
        self.token = token or secrets.token_urlsafe(18)
        address = address or DEFAULT_ADDRESS
        try:
            self.host, self._port = parse_address(address)
        except ValueError:
            raise ValueError(f"the page's address {address!r} is not host:port (e.g. "
                             f"{DEFAULT_ADDRESS} for any free port on this machine only)"
                             ) from None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> JournalPage:
        """Listen and serve on a thread of this process; OSError says why it cannot."""
        try:
            server = listen(_Server, self.host, self._port, _Handler)
        except OSError as error:
            raise OSError(f"gridmap watch cannot listen on {self.host}:{self._port}: "
                          f"{error.strerror or error}; give a free host:port (port 0 picks "
                          "one)") from None
        server.reader = self.reader
        server.token = self.token
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.1}, name="gridmap-watch", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the page is not started: call start() first")
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        """The page's address without the token."""
        return page_base(self.host, self.port)

    @property
    def url(self) -> str:
        """The page's address, token included: what the user opens."""
        return f"{self.base}/?token={quote(self.token)}"

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.reader.close()

    def __enter__(self) -> JournalPage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch(directory: Path, *, address: str | None = DEFAULT_ADDRESS) -> None:
    """Serve the page of the map in session directory ``directory`` until Ctrl-C or
    SIGTERM, having printed its address (token included) on stdout. ``address`` is
    ``host:port`` (None: 127.0.0.1 and any free port).

    JournalError when the directory holds no journal, ConfigError when the address is
    not ``host:port`` or cannot be listened on; a journal that cannot be read later
    (damaged, removed) is said on the page, which tries again at each request.
    """
    directory = Path(directory)
    if not (directory / JOURNAL).is_file():
        raise JournalError(f"map journal {directory / JOURNAL} does not exist: "
                           f"{directory} is not the session directory of a map of this "
                           "gridmap, or the map's MAP_KEEP_TIME ran out and it was removed")
    stop = threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: FrameType | None) -> None:
            stop.set()
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        page = JournalPage(directory, address).start()
    except (ValueError, OSError) as error:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        raise ConfigError(str(error)) from None
    try:
        name = _name_of(page)
        print(f"gridmap: status page of {name}: {page.url}", flush=True)
        print("gridmap: serving until Ctrl-C", file=sys.stderr, flush=True)
        # Waits in short steps, so that Ctrl-C is seen at once.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        page.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _name_of(page: JournalPage) -> str:
    try:
        return page.reader.journal().map_record().name
    except JournalError:
        return str(page.directory)


class _Handler(GuardedHandler):
    server: _Server
    server_version = "gridmap-watch"
    static = STATIC
    refused = REFUSED
    log = logger
    log_name = "gridmap watch"

    def answer(self, url: SplitResult, query: dict[str, list[str]]) -> None:
        try:
            self._answer(url, query)
        except JournalError as error:
            self.server.reader.forget()  # opened again at the next request
            if url.path.startswith("/api/"):
                self._send(HTTPStatus.SERVICE_UNAVAILABLE,
                           json.dumps({"error": str(error)}).encode(), "application/json")
            else:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, error_page(str(error)).encode(),
                           "text/html")

    def _answer(self, url: SplitResult, query: dict[str, list[str]]) -> None:
        token = self.server.token
        if url.path == "/":
            journal = self.server.reader.journal()
            page = _number(query, "page", 1)
            states = _states(query)
            now = summary(journal)
            shown = [(row, error_of(journal, row)) for row in failures(journal)]
            rows, page, pages = page_of_tasks(journal, page, states)
            self._send(HTTPStatus.OK, map_page(now, shown, rows, page, pages, states,
                                               token).encode(), "text/html")
        elif url.path.startswith("/job/"):
            position = whole_number(url.path.removeprefix("/job/"), "a job's position")
            journal = self.server.reader.journal()
            row = task_at(journal, position)
            if row is None:
                self._send(HTTPStatus.NOT_FOUND, b"404 no such job\n", "text/plain")
                return
            self._send(HTTPStatus.OK, job_page(summary(journal), row, history(journal, row.id),
                                               error_of(journal, row), token).encode(),
                       "text/html")
        elif url.path == "/api/summary":
            self._send(HTTPStatus.OK, json.dumps(summary(
                self.server.reader.journal()).as_dict()).encode(), "application/json")
        elif url.path == "/api/throughput.svg":
            journal = self.server.reader.journal()
            now = summary(journal)
            _, step, bars = throughput(journal, now.map, now.now)
            self._send(HTTPStatus.OK, throughput_chart(bars, step, now.total).encode(),
                       "image/svg+xml")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404 not found\n", "text/plain")

    def _write(self, body: bytes) -> None:
        with contextlib.suppress(ConnectionError):  # the reader left: nothing to say
            super()._write(body)


def _number(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    return whole_number(values[0], f"{name}=") if values else default


def _states(query: dict[str, list[str]]) -> tuple[str, ...]:
    """The states ``?state=`` asks for (comma-separated), in the order given."""
    asked = [part.strip() for value in query.get("state", []) for part in value.split(",")]
    unknown = [state for state in asked if state and state not in STATES]
    if unknown:
        raise BadRequest(f"state={unknown[0][:40]!r} is not a job state; the states are "
                         f"{', '.join(STATES)}")
    return tuple(dict.fromkeys(state for state in asked if state))
