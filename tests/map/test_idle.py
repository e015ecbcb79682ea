"""Idle detection counts seconds, not heartbeats, and counts the CPU of the job's
child processes; an idle job is warned of before it is killed. Local backend, runner
mode: real runner processes and the real monitor."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gridmap_core import Job, JobException, hookimpl
from gridmap_core.map.monitor import idle_limits
from gridmap_core.model.config import load_settings
from gridmap_core.plugins.manager import get_plugin_manager
from tests.support import idle_jobs, monitored
from tests.support.monitored import runner_executor

# Heartbeats twice a second, and no idle setting of the tests' own: the defaults apply.
BEATING = {"HEARTBEAT_FREQUENCY": 0.5, "MAX_IDLE_HEARTBEATS": None, "NUM_RESUBMITS": 0}


def test_jobs_that_sleep_a_few_seconds_at_a_time_are_not_idle() -> None:
    # Each sleeps over several heartbeats at a time; the default limit is in seconds,
    # far above anything a job that sleeps on purpose does.
    jobs = [Job(idle_jobs.sleep_in_steps, [1.5, 3], name=f"napper{x}") for x in range(4)]
    with runner_executor(BEATING, max_processes=4) as executor:
        executor.run_jobs(jobs)
    assert [job.ret for job in jobs] == [3] * 4
    assert all(job.num_resubmits == 0 for job in jobs)


class Warnings:
    """Heard heartbeats' warnings, by job name (the status page listens so)."""

    def __init__(self) -> None:
        self.heard: dict[str, list[str]] = {}

    @hookimpl
    def gridmap_job_heartbeat(self, job: Job, heartbeat: dict[str, Any]) -> None:
        if "warning" in heartbeat:
            self.heard.setdefault(job.name, []).append(heartbeat["warning"])


def test_the_idle_limit_is_seconds_whatever_the_heartbeat_frequency(
        caplog: pytest.LogCaptureFixture) -> None:
    # Four seconds are eight heartbeats here: a job idle for two is not killed, one
    # idle for good is, and is warned of first, by name, in the log and its heartbeat.
    jobs = [Job(monitored.sleep_for, [60], name="stuck"),
            Job(monitored.sleep_for, [2], name="napper")]
    caplog.set_level(logging.WARNING, logger="gridmap_core.map.monitor")
    observer = Warnings()
    get_plugin_manager().register(observer, name="idle warnings")
    try:
        with runner_executor({**BEATING, "MAX_IDLE_TIME": 4}) as executor, \
                pytest.raises(JobException) as info:
            executor.run_jobs(jobs)
    finally:
        get_plugin_manager().unregister(name="idle warnings")
    assert [job.name for job in info.value.jobs] == ["stuck"]
    stuck, napper = jobs
    assert stuck.cause_of_death.startswith("idle") and "MAX_IDLE_TIME=4" in stuck.cause_of_death
    assert napper.ret == 2
    messages = [record.getMessage() for record in caplog.records]
    warned = [n for n, m in enumerate(messages)
              if m.startswith("stuck (job ") and "it will be killed at 4 s" in m]
    died = [n for n, m in enumerate(messages) if m.startswith("stuck (job ") and "died: idle" in m]
    assert warned and died and warned[0] < died[0], messages
    assert not any(m.startswith("napper") for m in messages)
    assert list(observer.heard) == ["stuck"]
    assert all(w.startswith("idle for ") and w.endswith("it will be killed at 4 s "
                                                          "(MAX_IDLE_TIME=4)")
               for w in observer.heard["stuck"])


def test_a_job_waiting_on_a_busy_subprocess_is_not_idle() -> None:
    jobs = [Job(idle_jobs.wait_on_busy_child, [3])]
    with runner_executor({**BEATING, "MAX_IDLE_TIME": 1}) as executor:
        executor.run_jobs(jobs)
    assert jobs[0].ret == 0
    assert max(jobs[0].track_cpu) > 50  # the child's CPU, counted as the job's


def test_max_idle_heartbeats_still_sets_the_limit_in_heartbeats() -> None:
    seconds, source = idle_limits(load_settings({"MAX_IDLE_HEARTBEATS": 3,
                                                 "HEARTBEAT_FREQUENCY": 10}))
    assert seconds == 30 and source.startswith("MAX_IDLE_HEARTBEATS=3")
    off, _ = idle_limits(load_settings({"MAX_IDLE_HEARTBEATS": 0}))
    assert off == 0
    # MAX_IDLE_TIME, given too, wins; unset, its default applies.
    assert idle_limits(load_settings({"MAX_IDLE_HEARTBEATS": 3, "MAX_IDLE_TIME": 50})) == (50, "")
    assert idle_limits(load_settings({})) == (3600, "")


def test_an_idle_limit_of_zero_is_off_and_a_negative_one_is_refused() -> None:
    assert load_settings({"MAX_IDLE_TIME": 0})["MAX_IDLE_TIME"] == 0
    with pytest.raises(ValueError, match="MAX_IDLE_TIME"):
        load_settings({"MAX_IDLE_TIME": -5})
