"""The status page over HTTP: token, rows, live changes, a job's page, and refusals."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from gridmap_core import GridMapExecutor, grid_map
from gridmap_core.model.config import ConfigError
from gridmap_core.model.job import Job, JobState
from gridmap_core.watching.board import Board, thin
from gridmap_core.watching.charts import line_chart
from tests.support.watched import HeldMap

SVG = "{http://www.w3.org/2000/svg}"


def test_rows_follow_the_map_and_every_request_needs_the_token(tmp_path: Path) -> None:
    with HeldMap(tmp_path, count=3, processes=2, fail=1) as held:
        rows = held.wait(lambda r: len(r) == 3 and r[0]["state"] == r[1]["state"] == "running"
                         and r[0]["memory"] is not None)
        assert rows[2]["state"] == "submitted"
        assert rows[0]["host"] == socket.gethostname()
        assert rows[0]["id"].startswith("local.")
        assert 0 <= rows[0]["cpu"] <= 200 and rows[0]["memory"] > 1

        for path in ("/", "/api/jobs", "/api/job/0", "/api/job/0/cpu.svg", "/job/0"):
            for token in ("", "x" * len(held.token), held.token[:-1]):
                status, body = held.get(path, token=token)
                assert status == 403, (path, token, body)
                assert b"token" in body and b"held" not in body
        assert held.get("/")[0] == 200
        assert held.get("/nowhere")[0] == 404
        assert held.get("/api/job/99")[0] == 404

        status, body = held.get("/api/jobs")
        version = json.loads(body)["version"]
        status, body = held.get(f"/api/jobs?since={version}")
        assert json.loads(body)["jobs"] == [] or all(  # only heartbeats changed since
            row["state"] == "running" for row in json.loads(body)["jobs"])

        held.release(0)
        rows = held.wait(lambda r: r[0]["state"] == "done" and r[2]["state"] == "running")
        assert rows[0]["cpu"] is None  # ended jobs show no current usage
        held.release(1)
        rows = held.wait(lambda r: r[1]["state"] == "failed")
        status, body = held.get("/api/job/1")
        detail = json.loads(body)
        assert detail["error"] == "ValueError: job 1 was told to fail"
        assert "raise ValueError" in detail["traceback"]
        assert "job 1 is waiting" in detail["log_tail"]
        assert len(detail["track_cpu"]) == len(detail["track_mem"]) >= 1
        snapshot = json.loads(held.get("/api/jobs")[1])
        assert snapshot["counts"]["done"] == 1 and snapshot["counts"]["failed"] == 1
        assert snapshot["name"] == "held" and snapshot["backend"] == "local"
        held.release(2)
        held.wait(lambda r: r[2]["state"] == "done")
    assert held.error is None and held.results is not None
    assert held.results[0::2] == [0, 20] and isinstance(held.results[1], ValueError)


def test_a_job_page_its_charts_and_the_static_files(tmp_path: Path) -> None:
    with HeldMap(tmp_path, count=1, processes=1) as held:
        held.wait(lambda r: r and r[0]["memory"] is not None)
        status, page = held.get("/job/0")
        assert status == 200 and b'src="/static/job.js"' in page
        for chart, label in (("cpu", "CPU of held"), ("memory", "Memory of held")):
            status, svg = held.get(f"/api/job/0/{chart}.svg")
            assert status == 200
            root = ElementTree.fromstring(svg)
            assert root.get("aria-label") == label
            # A line, or a dot while the job has sent a single heartbeat.
            assert (root.find(f"{SVG}polyline") is not None
                    or root.find(f"{SVG}circle") is not None)
        # Scripts and styles are the same for every map and hold nothing of it.
        for name in ("status.js", "job.js", "status.css"):
            status, body = held.get(f"/static/{name}", token="")
            assert status == 200 and body
        assert held.get("/static/../board.py", token="")[0] == 403


def test_responses_forbid_caching_framing_and_referrers(tmp_path: Path) -> None:
    import urllib.request

    with HeldMap(tmp_path, count=1, processes=1) as held, \
            urllib.request.urlopen(held.url, timeout=10) as response:
        headers = response.headers
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Content-Type"].startswith("text/html")


def test_the_address_is_printed_and_bound_to_localhost(capfd: pytest.CaptureFixture[str]) -> None:
    with GridMapExecutor("local", status_page=True) as executor:
        assert list(executor.map(abs, [-1, -2])) == [1, 2]
        assert executor.status is not None
        server = executor.status.server
        assert server is not None
        assert server.host == "127.0.0.1"
        url = executor.status.url
        assert executor.status.startup < 1.0
    err = capfd.readouterr().err
    assert f"gridmap: status page of gridmap_job: {url}" in err
    assert url is not None and "token=" in url
    # The page is gone with its executor.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0])), 2)


def test_the_setting_turns_it_on_for_grid_map(monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GRIDMAP_STATUS_PAGE", "yes")
    assert grid_map(abs, [-3], local=True) == [3]
    assert "gridmap: status page of gridmap_job: http://127.0.0.1:" in capfd.readouterr().err
    assert grid_map(abs, [-3], local=True, status_page=False) == [3]
    assert "status page" not in capfd.readouterr().err


def test_tokens_differ_from_map_to_map() -> None:
    urls = set()
    for _ in range(3):
        with GridMapExecutor("local", status_page=True) as executor:
            executor.submit(abs, -1).result()
            assert executor.status is not None
            urls.add(executor.status.url.split("token=")[1])  # type: ignore[union-attr]
    assert len(urls) == 3 and all(len(token) >= 24 for token in urls)


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:http", ":99999", ""])
def test_a_bad_address_is_refused_before_anything_runs(address: str) -> None:
    with pytest.raises(ConfigError, match="STATUS_PAGE_ADDRESS"):
        GridMapExecutor("local", status_page=True,
                        settings={"STATUS_PAGE_ADDRESS": address})


def test_a_port_in_use_is_a_clear_error_before_submission(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("GRIDMAP_STATUS_PAGE_ADDRESS", f"127.0.0.1:{port}")
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: "
                                              ".*STATUS_PAGE_ADDRESS"):
            grid_map(lambda _: marker.touch(), [1], local=True, status_page=True)
    assert not marker.exists()


def test_board_rows_carry_only_what_changed() -> None:
    board = Board("m")
    jobs = [Job(abs, [i], name=f"j{i}") for i in range(3)]
    for job in jobs:
        job.state = JobState.SUBMITTED
        board.gridmap_job_submitted(job)
    first = board.snapshot()
    assert [row["name"] for row in first["jobs"]] == ["j0", "j1", "j2"]
    assert first["counts"]["submitted"] == 3
    jobs[1].state = JobState.RUNNING
    jobs[1].track_cpu.append(50.0)
    jobs[1].track_mem.append(12.0)
    board.gridmap_job_heartbeat(jobs[1], {"cpu": 50.0})
    second = board.snapshot(first["version"])
    assert [(r["index"], r["state"], r["cpu"], r["memory"]) for r in second["jobs"]] == [
        (1, "running", 50.0, 12.0)]
    assert board.snapshot(second["version"])["jobs"] == []
    board.gridmap_map_finished(jobs, {"total": 3, "succeeded": 3, "failed": 0, "wall_time": 1})
    assert board.snapshot()["finished"] == {"total": 3, "succeeded": 3, "failed": 0,
                                            "wall_time": 1}
    assert board.detail(7) is None


def test_tracks_are_thinned_keeping_both_ends() -> None:
    values = [float(i) for i in range(2000)]
    thinned = thin(values, 500)
    assert len(thinned) == 500 and thinned[0] == 0 and thinned[-1] == 1999
    assert thin(values[:10], 500) == values[:10]


def test_charts_escape_names_and_scale_to_the_peak() -> None:
    svg = line_chart([10.0, 130.0], 'CPU of <script>"x"', "%", seconds=10)
    root = ElementTree.fromstring(svg)  # well-formed although the name is hostile
    assert "<script>" not in svg
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "200 %" in labels and "10 s" in labels
    empty = ElementTree.fromstring(line_chart([], "Memory", "MB"))
    assert empty.find(f"{SVG}polyline") is None


def test_a_long_track_is_charted_thinned_over_its_whole_span() -> None:
    import urllib.request

    from gridmap_core.watching.server import StatusServer

    board = Board("m")
    job = Job(abs, [1], name="long")
    job.state = JobState.RUNNING
    job.track_cpu = [float(i % 100) for i in range(2000)]
    board.gridmap_job_started(job)
    server = StatusServer(board, "127.0.0.1:0", heartbeat=10)
    try:
        base, token = server.url.split("/?token=")
        with urllib.request.urlopen(f"{base}/api/job/0/cpu.svg?token={token}") as response:
            root = ElementTree.fromstring(response.read())
    finally:
        server.close()
    polyline = root.find(f"{SVG}polyline")
    assert polyline is not None
    assert len(polyline.get("points", "").split()) == 500
    assert "19990 s" in [t.text for t in root.iter(f"{SVG}text")]


def _raw_get(server: Any, target: bytes) -> tuple[int, bytes]:
    """Send ``GET target`` as raw bytes (what a browser would refuse to send); the
    status and body, or (0, b"") when the server answered nothing."""
    with socket.create_connection((server.host, server.port), timeout=10) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    if not answer:
        return 0, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_malformed_or_huge_numbers_are_refused_and_the_server_goes_on() -> None:
    from gridmap_core.watching.server import StatusServer

    board = Board("m")
    job = Job(abs, [1], name="one")
    job.state = JobState.SUBMITTED
    board.gridmap_job_submitted(job)
    server = StatusServer(board, "127.0.0.1:0")
    token = server.token.encode()
    huge = b"9" * 5000
    try:
        for target in (b"/api/job/" + huge, b"/api/job/" + huge + b"/cpu.svg",
                       b"/job/" + huge, b"/api/jobs?since=" + huge,
                       b"/api/job/\xb2", b"/api/job/%C2%B2", b"/api/job/-1", b"/api/job/1.0",
                       b"/api/job/", b"/job/x", b"/api/jobs?since=-1", b"/api/jobs?since=abc",
                       b"/api/jobs?since=1e3", b"/api/jobs?since=%C2%B2",
                       b"/api/jobs?since=\xb2", b"/api/jobs?since=+1"):
            separator = b"&" if b"?" in target else b"?"
            status, body = _raw_get(server, target + separator + b"token=" + token)
            assert status == 400, (target[:40], status, body)
            assert body.startswith(b"400 bad request") and len(body) < 300, body
        # Whatever else the address or query holds, an answer comes.
        for target in (b"//[x?token=" + token, b"/api/jobs?token=" + token + b"&%zz=%ff;;&&==",
                       b"/api/jobs?since=1&since=" + huge + b"&token=" + token,
                       b"/api/jobs?" + b"a=1&" * 5000 + b"token=" + token):
            status, body = _raw_get(server, target)
            assert status in (200, 400, 404), (target[:40], status, body)
        # Without the token, nothing about the request is read: still 403.
        assert _raw_get(server, b"/api/job/" + huge)[0] == 403
        status, body = _raw_get(server, b"/api/jobs?since=0&token=" + token)
        assert status == 200 and json.loads(body)["jobs"][0]["name"] == "one"
        assert _raw_get(server, b"/api/job/7?token=" + token)[0] == 404  # a number, no job
        assert _raw_get(server, b"/api/job/0?token=" + token)[0] == 200
    finally:
        server.close()


def test_a_resubmitted_job_shows_no_cause_of_death_its_page_keeps_it(tmp_path: Path) -> None:
    with HeldMap(tmp_path, count=1, processes=1, die=0) as held:
        rows = held.wait(lambda r: r and r[0]["resubmits"] == 1 and r[0]["state"] == "running"
                         and r[0]["memory"] is not None)
        assert rows[0]["cause"] == ""  # alive again: it has no cause of death
        detail = json.loads(held.get("/api/job/0")[1])
        assert detail["cause"] == "" and len(detail["history"]) == 1
        assert "signal 9" in detail["history"][0] or "killed" in detail["history"][0], detail
        held.release(0)
        rows = held.wait(lambda r: r[0]["state"] == "done")
        assert rows[0]["cause"] == "" and rows[0]["resubmits"] == 1
    assert held.results == [0]


def test_only_a_dead_job_has_a_cause_of_death() -> None:
    board = Board("m")
    job = Job(abs, [1], name="j")
    job.state = JobState.SUBMITTED
    board.gridmap_job_submitted(job)
    job.num_resubmits, job.cause_of_death = 1, "killed by signal 9"
    board.gridmap_job_resubmitted(job)  # as a Run reports it: queued again
    assert board.snapshot()["jobs"][0]["cause"] == ""
    job.state = JobState.DEAD
    job.cause_of_death = "out of memory"
    board.gridmap_job_died(job)
    detail = board.detail(0)
    assert detail is not None
    assert detail["cause"] == "out of memory" and detail["history"] == ["killed by signal 9"]


def test_an_ended_job_shows_the_last_lines_of_its_log(tmp_path: Path) -> None:
    with HeldMap(tmp_path, count=2, processes=2, fail=1) as held:
        held.wait(lambda r: len(r) == 2 and all(row["memory"] is not None for row in r.values()))
        for index in (0, 1):
            held.release(index)
        held.wait(lambda r: r[0]["state"] == "done" and r[1]["state"] == "failed")
        for index in (0, 1):
            log = json.loads(held.get(f"/api/job/{index}")[1])["log_tail"]
            assert log.splitlines()[-2:] == [f"job {index} is waiting", f"job {index} ends"], log


NOTE = "no queue instance can run it: all.q@node1 is in state E"


def _queued_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have the local backend's scheduler explain its queued jobs as Grid Engine does."""
    from gridmap_local.processes import ProcessScheduler

    from gridmap_core.backend.scheduler import JobStatus, Status

    poll = ProcessScheduler.poll

    def poll_with_notes(self: ProcessScheduler, ids: Any) -> Any:
        return {job_id: JobStatus(Status.QUEUED, note=NOTE)
                if status.status is Status.QUEUED else status
                for job_id, status in poll(self, ids).items()}

    monkeypatch.setattr(ProcessScheduler, "poll", poll_with_notes)


def test_a_queued_job_shows_why_it_waits(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _queued_with_a_note(monkeypatch)
    with HeldMap(tmp_path, count=2, processes=1) as held:
        rows = held.wait(lambda r: len(r) == 2 and r[1]["waiting"] == NOTE)
        assert rows[1]["state"] == "submitted"
        assert json.loads(held.get("/api/job/1")[1])["waiting"] == NOTE
        assert held.jobs()[0]["waiting"] == ""  # it runs
        held.release(0)
        rows = held.wait(lambda r: r[1]["state"] == "running")
        assert rows[1]["waiting"] == ""  # it no longer waits
        held.release(1)
        held.wait(lambda r: r[1]["state"] == "done")


def test_waiting_notes_and_warnings_reach_the_rows() -> None:
    board = Board("m")
    job = Job(abs, [1], name="j")
    job.state = JobState.SUBMITTED
    board.gridmap_job_submitted(job)
    version = board.snapshot()["version"]
    board.gridmap_job_waiting(job, NOTE)
    changed = board.snapshot(version)["jobs"]
    assert [(row["waiting"], row["warning"]) for row in changed] == [(NOTE, "")]
    job.state = JobState.RUNNING
    job.record_heartbeat({"cpu": 0.0, "memory": 2**20, "host_name": "h",
                          "warning": "idle for 1800 s; it will be killed at 3600 s"})
    board.gridmap_job_heartbeat(job, {})
    row = board.snapshot()["jobs"][0]
    assert row["waiting"] == "" and row["warning"].startswith("idle for 1800 s")


def test_an_idle_job_is_warned_of_before_it_is_killed(tmp_path: Path) -> None:
    # The held job sleeps: idle. Warned of from half its limit on, killed at the limit.
    with HeldMap(tmp_path, count=1, processes=1, MAX_IDLE_HEARTBEATS=None, MAX_IDLE_TIME=6,
                 NUM_RESUBMITS=0) as held:
        rows = held.wait(lambda r: r and r[0]["warning"] != "")
        assert rows[0]["state"] == "running"
        assert rows[0]["warning"].startswith("idle for "), rows
        assert "MAX_IDLE_TIME=6" in rows[0]["warning"]
        assert json.loads(held.get("/api/job/0")[1])["warning"].startswith("idle for ")
        rows = held.wait(lambda r: r[0]["state"] == "dead")
        assert rows[0]["warning"] == "" and rows[0]["cause"].startswith("idle"), rows
