"""Lifecycle hooks and notifiers: what an observer hears, the mails a real SMTP server
receives, the log lines, and that no notifier failure harms a map."""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gridmap_core import GridMapExecutor, Job, JobException, NotifierSpec, grid_map, hookimpl
from gridmap_core.model.config import ConfigError
from gridmap_core.notifiers.plots import PLOT_SIZE
from gridmap_core.plugins.manager import get_plugin_manager
from gridmap_core.testing import EventRecorder
from tests.support import jobs, monitored
from tests.support.smtp_server import (
    Server,
    closed_port,
    hanging_server,
    png_sizes,
    running_smtp_server,
)

FAST_MAIL = {**monitored.FAST, "SEND_ERROR_MAIL": True, "ERROR_MAIL_WINDOW": 0.3,
             "ERROR_MAIL_SENDER": "gridmap@example.org",
             "ERROR_MAIL_RECIPIENT": "ann@example.org, bob@example.org"}


def printing_then_failing(x: int) -> None:
    print(f"working on {x}", flush=True)
    time.sleep(1.2)  # heartbeats carry the log and the CPU/memory samples
    raise ValueError(f"bad input {x}")


def mail_settings(server: Server, **extra: Any) -> dict[str, Any]:
    return {**FAST_MAIL, "SMTP_SERVER": f"127.0.0.1:{server.port}", **extra}


def run_jobs(settings: dict[str, Any], job_list: list[Job], **kwargs: Any) -> None:
    executor = GridMapExecutor(backend="local", max_processes=2, settings=settings,
                               backend_options={"mode": "runner"})
    with executor:
        executor.run_jobs(job_list, on_failure="return", **kwargs)


# -- lifecycle hooks -------------------------------------------------------------------


@pytest.fixture
def observer() -> Iterator[EventRecorder]:
    with EventRecorder().listening() as recorder:
        yield recorder


def test_an_observer_hears_every_event_in_order(observer: EventRecorder, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monitored.blind_to_suspension(monkeypatch)
    marker = tmp_path / "first-attempt"
    job_list = [
        Job(monitored.sleep_for, [1.2], name="fine"),
        Job(monitored.raise_value_error, [7], name="raiser"),
        Job(monitored.die_first_time, [str(marker), 4], name="phoenix"),
    ]
    settings = {"MAX_TIME_BETWEEN_HEARTBEATS": 2, "NUM_RESUBMITS": 1}
    executor = monitored.runner_executor(settings, max_processes=3)

    def freeze_first_attempt() -> None:
        deadline = time.monotonic() + 30
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the first attempt never started"
            time.sleep(0.05)
        # The job and its runner (its process group): silent, it dies of no heartbeat.
        os.killpg(os.getpgid(int(marker.read_text())), signal.SIGSTOP)

    freezer = threading.Thread(target=freeze_first_attempt)
    freezer.start()
    with executor:
        executor.run_jobs(job_list, on_failure="return")
    freezer.join()
    assert observer.of("fine") == ["submitted", "started", "heartbeat", "finished"]
    assert observer.of("raiser") == ["submitted", "started", "failed"]
    phoenix = observer.of("phoenix")
    assert phoenix[:2] == ["submitted", "started"] and phoenix.count("resubmitted") == 1
    assert phoenix[-3:] == ["resubmitted", "started", "finished"], phoenix
    assert job_list[2].ret == 8 and job_list[2].num_resubmits == 1
    assert observer.events[-1] == ("map_finished", "2/3", None)


def test_a_job_that_dies_for_good_is_heard_of_once_as_died(
        observer: EventRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monitored.blind_to_suspension(monkeypatch)
    job_list = [Job(monitored.stop_self, [0], name="frozen")]
    executor = monitored.runner_executor({"MAX_TIME_BETWEEN_HEARTBEATS": 2,
                                          "NUM_RESUBMITS": 1})
    with executor, pytest.raises(JobException):
        executor.run_jobs(job_list)
    assert observer.of("frozen") == ["submitted", "started", "resubmitted", "started", "died"]
    assert job_list[0].cause_of_death.startswith("no heartbeat")


# -- error mails -----------------------------------------------------------------------


def test_a_failed_job_is_mailed_with_its_traceback_log_and_plots(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path) as server:
        job_list = [Job(printing_then_failing, [5], name="badjob"),
                    Job(monitored.sleep_for, [0.1], name="goodjob")]
        run_jobs(mail_settings(server), job_list)
        [mail] = server.wait_for(1)
    assert job_list[0].failed and job_list[1].ret == 0.1
    assert mail.mail_from == "gridmap@example.org"
    assert sorted(mail.rcpt_tos) == ["ann@example.org", "bob@example.org"]
    assert mail.message["Subject"] == "gridmap: job badjob failed: ValueError: bad input 5"
    body = mail.message.get_body(("plain",)).get_content()
    assert f"Job id: {job_list[0].id}" in body and "Job: badjob" in body
    assert f"Host: {job_list[0].host_name}" in body and job_list[0].host_name
    assert "Exception: ValueError: bad input 5" in body and "Resubmits: 0 of 1" in body
    assert 'raise ValueError(f"bad input {x}")' in body  # the remote traceback
    assert "working on 5" in body  # the tail of its log
    assert png_sizes(mail) == {"cpu.png": PLOT_SIZE, "memory.png": PLOT_SIZE}


def test_a_dead_job_is_mailed_with_its_cause_of_death(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monitored.blind_to_suspension(monkeypatch)
    with running_smtp_server(tmp_path) as server:
        job_list = [Job(monitored.stop_self, [0], name="frozen")]
        run_jobs(mail_settings(server, MAX_TIME_BETWEEN_HEARTBEATS=2, NUM_RESUBMITS=0,
                               CREATE_PLOTS=False), job_list)
        [mail] = server.wait_for(1)
    assert mail.message["Subject"].startswith("gridmap: job frozen died: no heartbeat")
    body = mail.message.get_body(("plain",)).get_content()
    assert "Cause of death: no heartbeat" in body and "Resubmits: 0 of 0" in body
    assert list(mail.message.iter_attachments()) == []


def test_many_failures_at_once_become_one_digest(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path) as server:
        job_list = [Job(jobs.fail_on, [x, (0, 1, 2, 3, 4)], name=f"many{x}") for x in range(6)]
        executor = GridMapExecutor(backend="local", max_processes=2, settings=mail_settings(
            server, ERROR_MAIL_DIGEST=3, ERROR_MAIL_WINDOW=5))
        with executor:
            executor.run_jobs(job_list, on_failure="return")
        [digest] = server.wait_for(1)
        time.sleep(0.3)
        assert len(server.messages) == 1, [m.message["Subject"] for m in server.messages]
    assert [job.failed for job in job_list] == [True] * 5 + [False]
    assert digest.message["Subject"] == "gridmap: 5 jobs failed or died (5 failed)"
    body = digest.message.get_body(("plain",)).get_content()
    assert all(f"Job: many{x}" in body for x in range(5)) and "Job: many5" not in body
    assert body.count("Exception: ValueError") == 5


def test_a_few_failures_get_a_mail_each(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path) as server:
        results = grid_map_with(server, jobs.fail_on, [[x, (1, 2)] for x in range(4)],
                                ERROR_MAIL_DIGEST=3)
        mails = server.wait_for(2)
    assert results[0] == 0 and isinstance(results[1], ValueError)
    assert sorted(m.message["Subject"].split(" failed")[0] for m in mails) == [
        "gridmap: job fewjob1", "gridmap: job fewjob2"]


def grid_map_with(server: Server, function: Any, inputs: list[Any], **settings: Any
                  ) -> list[Any]:
    """grid_map, with mail settings given through the environment as a user would."""
    patch = pytest.MonkeyPatch()
    try:
        for key, value in mail_settings(server, **settings).items():
            patch.setenv(key, str(value))
        return grid_map(function, inputs, name="fewjob", backend="local", max_processes=2,
                        on_failure="return")
    finally:
        patch.undo()


def test_a_completion_mail_sums_up_the_map(tmp_path: Path) -> None:
    with running_smtp_server(tmp_path) as server:
        job_list = [Job(jobs.fail_on, [x, (2,)], name=f"part{x}") for x in range(4)]
        run_jobs(mail_settings(server, SEND_ERROR_MAIL=False), job_list,
                 name="summing", completion_mail=True)
        [mail] = server.wait_for(1)
    assert mail.message["Subject"] == \
        "gridmap: summing finished with failures: 3 of 4 jobs succeeded"
    body = mail.message.get_body(("plain",)).get_content()
    for line in ("Map: summing", "Backend: local", "Jobs: 4", "Succeeded: 3",
                 "Failed or died: 1", "job part2 failed: ValueError"):
        assert line in body, line
    assert "Wall time: " in body


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_mail_goes_over_tls_with_a_login(tmp_path: Path, security: str) -> None:
    with running_smtp_server(tmp_path, security=security, users={"ann": "s3cret!"}) as server:
        run_jobs(mail_settings(server, SMTP_SERVER=f"localhost:{server.port}",
                               SMTP_SECURITY=security, SMTP_USER="ann",
                               SMTP_PASSWORD="s3cret!", SMTP_CAFILE=server.cafile,
                               CREATE_PLOTS=False),
                 [Job(jobs.fail_on, [3], name="secure")])
        [mail] = server.wait_for(1)
    assert mail.login == "ann" and mail.tls
    assert mail.message["Subject"].startswith("gridmap: job secure failed")


# -- failures stay contained -----------------------------------------------------------


def mail_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    notifying = ("gridmap_core.notifiers", "gridmap_core.map.notifying")
    return [r.getMessage() for r in caplog.records
            if r.name.startswith(notifying) and r.levelno >= logging.WARNING]


def test_a_mail_server_that_is_down_costs_one_warning(caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    settings = {**FAST_MAIL, "SMTP_SERVER": f"127.0.0.1:{closed_port()}",
                "ERROR_MAIL_DIGEST": 10}
    job_list = [Job(jobs.fail_on, [x, (0, 1, 2)], name=f"j{x}") for x in range(4)]
    executor = GridMapExecutor(backend="local", max_processes=2, settings=settings)
    with caplog.at_level(logging.DEBUG), executor:
        executor.run_jobs(job_list, on_failure="return")
    assert job_list[3].ret == 3 and all(job.failed for job in job_list[:3])
    [warning] = mail_warnings(caplog)
    assert "not sent" in warning and "SEND_ERROR_MAIL=False" in warning


def test_a_hanging_mail_server_does_not_hang_the_map() -> None:
    with hanging_server() as endpoint:
        settings = {**FAST_MAIL, "SMTP_SERVER": f"127.0.0.1:{endpoint.port}",
                    "SMTP_TIMEOUT": 1, "CREATE_PLOTS": False}
        started = time.monotonic()
        executor = GridMapExecutor(backend="local", settings=settings)
        with pytest.raises(JobException), executor:
            executor.run_jobs([Job(jobs.fail_on, [3], name="hung")])
        assert time.monotonic() - started < 15


def test_a_plot_that_cannot_be_drawn_leaves_the_mail_without_plots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import gridmap_core.notifiers.mailer as mailer

    def broken(*args: Any) -> list[tuple[str, bytes]]:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(mailer, "usage_plots", broken)
    with running_smtp_server(tmp_path) as server, caplog.at_level(logging.WARNING):
        job_list = [Job(printing_then_failing, [x], name=f"plotless{x}") for x in range(2)]
        run_jobs(mail_settings(server), job_list)
        mails = server.wait_for(2)
    assert all(list(m.message.iter_attachments()) == [] for m in mails)
    [warning] = mail_warnings(caplog)
    assert "no CPU/memory plots" in warning and "no fonts" in warning


class Boom:
    def __init__(self, settings: Any) -> None:
        pass

    def gridmap_job_failed(self, job: Job) -> None:
        raise RuntimeError("notifier bug")

    def gridmap_map_finished(self, jobs: list[Job], summary: dict[str, Any]) -> None:
        raise RuntimeError("notifier bug")


class BoomPlugin:
    @hookimpl
    def gridmap_notifiers(self) -> list[NotifierSpec]:
        return [NotifierSpec("boom", Boom, "always raises")]


def test_a_notifier_that_raises_is_logged_once_and_the_map_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manager = get_plugin_manager()
    manager.register(BoomPlugin(), name="boom")
    try:
        with running_smtp_server(tmp_path) as server, caplog.at_level(logging.DEBUG):
            job_list = [Job(jobs.fail_on, [x, (0, 1)], name=f"b{x}") for x in range(3)]
            run_jobs(mail_settings(server, NOTIFIERS="boom, email", CREATE_PLOTS=False),
                     job_list)
            mails = server.wait_for(2)  # the notifier after the broken one still mails
    finally:
        manager.unregister(name="boom")
    assert job_list[2].ret == 2 and len(mails) == 2
    [warning] = mail_warnings(caplog)
    assert "notifier 'boom' failed in gridmap_job_failed" in warning


def test_an_unknown_notifier_or_bad_mail_setting_is_refused_before_submitting() -> None:
    with pytest.raises(ConfigError, match=r"NOTIFIERS names 'pager'.*Registered: email, log"):
        GridMapExecutor(backend="local", settings={"NOTIFIERS": "email,pager"})
    with pytest.raises(ConfigError, match=r"notifier 'email': .*SMTP_SECURITY"):
        GridMapExecutor(backend="local", settings={"SMTP_SECURITY": "tls1.3"})
    executor = GridMapExecutor(backend="local", settings={"NOTIFIERS": ""})
    assert executor.notifiers.notifiers == {} and not executor.runtime.observed()


# -- the log notifier ------------------------------------------------------------------


def test_the_log_notifier_writes_one_line_per_event(caplog: pytest.LogCaptureFixture) -> None:
    job_list = [Job(jobs.fail_on, [x, (1,)], name=f"logged{x}") for x in range(2)]
    with caplog.at_level(logging.INFO, logger="gridmap.events"):
        run_jobs({**monitored.FAST, "NOTIFIERS": "log"}, job_list, name="logmap")
    lines = [r.getMessage() for r in caplog.records if r.name == "gridmap.events"]
    ids = {job.name: job.id for job in job_list}
    assert "job_submitted job=logged0 backend=local" in lines
    assert any(line.startswith("job_started job=logged0 ") for line in lines)
    assert any(line.startswith(f"job_finished job=logged0 id={ids['logged0']} ")
               for line in lines)
    [failed] = [line for line in lines if line.startswith("job_failed")]
    assert "job=logged1" in failed and "exception=ValueError" in failed
    assert lines[-1].startswith("map_finished name=logmap backend=local total=2 "
                                "succeeded=1 failed=1")


def test_plots_are_drawn_in_a_child_process_whose_crash_is_contained(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gridmap_core.notifiers import plots

    images = dict(plots.usage_plots([5.0, 90.0], [10.0, 12.5], 2.0, "job x"))
    assert {name: Image.open(io.BytesIO(data)).size for name, data in images.items()} == {
        "cpu.png": PLOT_SIZE, "memory.png": PLOT_SIZE}
    aborting = tmp_path / "python"
    aborting.write_text("#!/bin/sh\nkill -ABRT $$\n")
    aborting.chmod(0o755)
    monkeypatch.setattr(plots.sys, "executable", str(aborting))
    with pytest.raises(plots.PlotError, match="exit status -6"):
        plots.usage_plots([5.0], [10.0], 2.0, "job x")
