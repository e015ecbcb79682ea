"""``gridmap watch``'s page over HTTP, on journals written with the Journal API: counts,
failures first, paging, the throughput chart, the token, and a damaged journal."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from gridmap_core.journal.store import JOURNAL, Journal, MapRecord
from gridmap_core.model.serialization import dumps
from gridmap_core.watching.journal_page import JournalPage, watch
from gridmap_core.watching.journal_view import error_of, interval_for, traceback_in
from gridmap_core.watching.throughput import duration
from gridmap_core.wire.beacon import MonitorRecord, write_monitor
from gridmap_core.wire.messages import encode_error, encode_value

SVG = "{http://www.w3.org/2000/svg}"


class Boom(Exception):
    """A job's error whose class the page must not need to import."""


def synthetic_map(directory: Path, count: int, *, failed: frozenset[int] = frozenset(),
                  dead: frozenset[int] = frozenset(), running: int = 0, queued: int = 0,
                  state: str = "succeeded", name: str = "synthetic") -> Path:
    """A journal of ``count`` jobs: the last ``queued`` still queued, the ``running``
    before them running, the rest ended (``failed`` raised, ``dead`` died, the others
    returned)."""
    directory.mkdir(parents=True, exist_ok=True)
    created = time.time() - 120
    record = MapRecord("0123456789ab", name, "local", created, "submitter.example", 4242,
                       str(directory.parent), "running", None, {"MAP_KEEP_TIME": 3600})
    journal = Journal.create(directory, record)
    journal.add_spec(0, b"spec", b"function")
    journal.add_tasks((index, 0, index, f"{name}-{index}", dumps(((index,), {})))
                      for index in range(count))
    journal.launched([(index, 0, f"local.{index}") for index in range(count - queued)])
    for index in range(count - queued - running, count - queued):
        journal.started(index, 0, f"local.{index}", "node-b")
    for index in range(count - queued - running):
        journal.started(index, 0, f"local.{index}", "node-a")
        if index in dead:
            journal.ended(index, 0, "dead", f"job {index} was killed by signal 9", "killed")
        elif index in failed:
            try:
                raise Boom(f"job {index} was told to fail")
            except Boom as error:
                payload = encode_error(error, "node-a")
            journal.store_result(index, 0, payload, ok=False, host="node-a")
        else:
            journal.store_result(index, 0, encode_value(index * 10, "node-a"), ok=True,
                                 host="node-a")
    journal.flush()
    if state != "running":
        journal.set_state(state)
    journal.close()
    return directory


def get(page: JournalPage, path: str, token: str | None = None) -> tuple[int, bytes]:
    sep = "&" if "?" in path else "?"
    url = f"{page.base}{path}{sep}token={page.token if token is None else token}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def rows_of(html: bytes) -> list[int]:
    """The positions of the rows of the job table, in the page's order."""
    return [int(found) for found in re.findall(rb'<tr id="job-(\d+)"', html)]


def test_counts_and_failures_first(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 30, failed=frozenset({3, 17}),
                              dead=frozenset({9}), running=2, queued=4, state="running")
    with JournalPage(directory) as page:
        status, body = get(page, "/api/summary")
        assert status == 200
        summary = json.loads(body)
        assert summary["counts"] == {"queued": 4, "running": 2, "succeeded": 21, "failed": 2,
                                     "dead": 1, "cancelled": 0}
        assert summary["total"] == 30 and summary["done"] == 24
        assert summary["state"] == "running" and summary["ended"] is None
        assert summary["name"] == "synthetic" and summary["host"] == "submitter.example"

        status, html = get(page, "/")
        assert status == 200
        text = html.decode()
        assert '<td class="number" id="count-succeeded">21</td>' in text
        assert '<td class="number" id="count-dead">1</td>' in text
        assert "Failures (3)" in text
        # The failures come before the table, dead first, each with its cause.
        failures = re.findall(r'<li id="failure-(\d+)" data-state="(\w+)"', text)
        assert failures == [("9", "dead"), ("3", "failed"), ("17", "failed")]
        assert text.index('id="failures"') < text.index('id="jobs"')
        assert "job 9 was killed by signal 9" in text
        assert "Boom: job 3 was told to fail" in text
        assert 'href="/job/3?token=' in text
        assert rows_of(html) == list(range(30))
        assert 'id="map-id">0123456789ab<' in text and 'id="backend">local<' in text
        assert 'id="host">submitter.example (process 4242)<' in text
        assert 'id="seconds-label">Age<' in text
        assert "none: the session directory has no readable monitor.json" in text


def test_the_monitor_of_a_running_map(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 3, running=1, state="running")
    write_monitor(directory, MonitorRecord("zmq", "tcp://10.0.0.1:5555", "login-1", 777,
                                           time.time()))
    with JournalPage(directory) as page:
        monitor = json.loads(get(page, "/api/summary")[1])["monitor"]
        assert monitor == "serving, on login-1 (process 777)"
        past = time.time() - 60
        os.utime(directory / "monitor.json", (past, past))
        monitor = json.loads(get(page, "/api/summary")[1])["monitor"]
        assert monitor.startswith("silent for 60 s, last on login-1 (process 777)"), monitor
        assert "silent for 60 s" in get(page, "/")[1].decode()


def test_a_job_page_shows_its_traceback_without_unpickling_it(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 5, failed=frozenset({2}))
    with JournalPage(directory) as page:
        status, html = get(page, "/job/2")
        assert status == 200
        text = html.decode()
        assert '<span id="job-state">failed</span>' in text
        assert 'id="error">test_journal_page.Boom: job 2 was told to fail<' in text or \
            'id="error">tests.watching.test_journal_page.Boom: job 2 was told to fail<' in text
        assert "Traceback (most recent call last)" in text and "raise Boom" in text
        assert "<td>running</td>" in text and "<td>failed</td>" in text
        assert get(page, "/job/99")[0] == 404
        assert get(page, "/job/-1")[0] == 400


def test_reading_a_traceback_never_unpickles(tmp_path: Path) -> None:
    """A payload whose unpickling would run code gives its traceback text all the same,
    and the code does not run."""
    marker = tmp_path / "ran"

    class Trap:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    import pickle

    payload = pickle.dumps((False, Trap(), "Traceback (most recent call last):\nX: y\n", "h"))
    assert traceback_in(payload) == "Traceback (most recent call last):\nX: y\n"
    assert not marker.exists()
    assert traceback_in(b"not a pickle") == ""


def test_the_table_is_paged(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 250, failed=frozenset({150}))
    with JournalPage(directory) as page:
        html = get(page, "/")[1]
        assert rows_of(html) == list(range(100))
        assert b'id="page">page 1 of 3<' in html and b'id="previous"' not in html
        html = get(page, "/?page=2")[1]
        assert rows_of(html) == list(range(100, 200))
        assert b'id="page">page 2 of 3<' in html
        assert b'id="previous" href="/?token=' in html and b"page=1" in html
        assert b"page=3" in html
        html = get(page, "/?page=3")[1]
        assert rows_of(html) == list(range(200, 250)) and b'id="next"' not in html
        # Past the end: the last page.
        assert rows_of(get(page, "/?page=9")[1]) == list(range(200, 250))
        # A filter keeps to its states, and its links keep it.
        html = get(page, "/?state=failed")[1]
        assert rows_of(html) == [150] and b"page 1 of 1" in html
        for bad in ("/?page=x", "/?page=-2", "/?state=lost", "/?page=" + "9" * 40):
            status, body = get(page, bad)
            assert status == 400 and body.startswith(b"400 bad request: "), (bad, body)


def test_the_throughput_chart(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 40)
    # Spread the ends over ten minutes, as a real map's would be.
    with sqlite3.connect(directory / JOURNAL) as db:
        created = db.execute("SELECT created FROM map").fetchone()[0]
        db.execute("UPDATE tasks SET ended = ? + 15 * position", (created,))
        db.execute("UPDATE map SET ended = ? + 600", (created,))
    with JournalPage(directory) as page:
        status, svg = get(page, "/api/throughput.svg")
        assert status == 200
        root = ElementTree.fromstring(svg)
        assert root.get("aria-label") == "Jobs ended per 5 s (bars) and in all (line)"
        bars = root.findall(f"{SVG}rect")[1:]  # the first is the background
        assert len(bars) == 40
        line = root.find(f"{SVG}polyline")
        assert line is not None
        # The line rises to the top: every job ended.
        assert line.get("points", "").split()[-1].endswith(f",{28.0:.1f}")
        html = get(page, "/")[1].decode()
        assert 'id="seconds-label">Wall time<' in html
        assert 'id="seconds">10 min<' in html
    assert [interval_for(span) for span in (10, 120, 600, 3600, 86400 * 30)] == [
        0.1, 1, 5, 30, 21600]
    assert [duration(seconds) for seconds in (0.25, 42, 185, 300, 3600, 7620, 90000)] == [
        "0.2 s", "42 s", "3 min 05 s", "5 min", "1 h", "2 h 07 min", "1 d 01 h"]


def test_every_request_needs_the_token(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 3, name="secretive")
    with JournalPage(directory) as page:
        assert page.host == "127.0.0.1"
        for path in ("/", "/?page=2", "/job/0", "/api/summary", "/api/throughput.svg"):
            for token in ("", "x" * len(page.token), page.token[:-1]):
                status, body = get(page, path, token=token)
                assert status == 403, (path, token)
                assert body.startswith(b"403 refused") and b"secretive" not in body
        assert get(page, "/")[0] == 200
        # Scripts and styles hold nothing of the map and need no token.
        for name in ("journal.js", "journal.css", "status.css"):
            status, _ = get(page, f"/static/{name}", token="")
            assert status == 200
        assert get(page, "/nowhere")[0] == 404


def test_a_damaged_journal_is_an_error_page_naming_the_file(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 3)
    with JournalPage(directory) as page:
        assert get(page, "/")[0] == 200
        for name in os.listdir(directory):
            if name.startswith(JOURNAL + "-"):
                os.remove(directory / name)
        (directory / JOURNAL).write_bytes(b"this is not a database" * 400)
        status, html = get(page, "/")
        assert status == 503
        assert f"map journal {directory / JOURNAL}".encode() in html
        assert b"damaged" in html
        status, body = get(page, "/api/summary")
        assert status == 503 and str(directory / JOURNAL) in json.loads(body)["error"]
        # The server goes on; a journal removed meanwhile is said the same way.
        (directory / JOURNAL).unlink()
        status, html = get(page, "/job/0")
        assert status == 503 and b"does not exist" in html
        assert str(directory / JOURNAL).encode() in html


def test_watch_needs_a_journal_and_an_address_it_can_use(tmp_path: Path) -> None:
    from gridmap_core.journal.store import JournalError
    from gridmap_core.model.config import ConfigError

    with pytest.raises(JournalError, match=re.escape(str(tmp_path / JOURNAL))):
        watch(tmp_path)
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 1)
    with pytest.raises(ConfigError, match="'nowhere' is not host:port"):
        watch(directory, address="nowhere")
    with JournalPage(directory) as taken, pytest.raises(
            ConfigError, match=f"cannot listen on 127.0.0.1:{taken.port}"):
        watch(directory, address=f"127.0.0.1:{taken.port}")


def test_the_journal_is_only_read(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 3, failed=frozenset({1}))
    before = (directory / JOURNAL).read_bytes()
    with JournalPage(directory) as page:
        for path in ("/", "/job/1", "/api/summary", "/api/throughput.svg"):
            assert get(page, path)[0] == 200
        journal = page.reader.journal()
        with pytest.raises(Exception, match="readonly"):
            journal.query("DELETE FROM tasks")
        row = journal.tasks()[1]
        assert "Boom: job 1 was told to fail" in error_of(journal, row)
    assert (directory / JOURNAL).read_bytes() == before


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_watch_prints_its_address_and_serves_until_stopped(tmp_path: Path,
                                                         stop: signal.Signals) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 3, name="watched")
    program = ("import sys; from pathlib import Path; "
               "from gridmap_core.watching.journal_page import watch; watch(Path(sys.argv[1]))")
    process = subprocess.Popen([sys.executable, "-c", program, str(directory)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.fullmatch(r"gridmap: status page of watched: "
                             r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)\n", line)
        assert found, line
        with urllib.request.urlopen(found.group(1), timeout=10) as answer:
            assert answer.status == 200 and b"watched" in answer.read()
        process.send_signal(stop)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_texts_from_the_journal_are_escaped(tmp_path: Path) -> None:
    directory = synthetic_map(tmp_path / "gridmap-0123456789ab", 2, dead=frozenset({1}),
                              name='<img src=x onerror="alert(1)">')
    with sqlite3.connect(directory / JOURNAL) as db:
        db.execute("UPDATE tasks SET cause = '<script>alert(2)</script>', host = '<i>h</i>'")
    with JournalPage(directory) as page:
        for path in ("/", "/job/1"):
            html = get(page, path)[1].decode()
            assert "<img src=x" not in html and "<script>alert" not in html
            assert "<i>h</i>" not in html and "&lt;i&gt;h&lt;/i&gt;" in html
            assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in get(page, "/")[1].decode()
