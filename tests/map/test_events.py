"""The one event path: typed events, their table of hooks, the typed hook, and each
executor's notifiers as plugins of its own manager."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from gridmap_core import GridMapExecutor, Job, NotifierSpec, grid_map, hookimpl
from gridmap_core.map.notifying import Notifiers
from gridmap_core.model import events
from gridmap_core.model.config import ConfigError
from gridmap_core.model.events import (
    EVENTS,
    EVERY_JOB_HOOKS,
    FAILURE_HOOKS,
    TYPED_HOOK,
    Event,
    JobEvent,
    JobFailed,
    JobFinished,
    JobStarted,
    JobSubmitted,
    MapFinished,
)
from gridmap_core.plugins import hookspecs
from gridmap_core.plugins.manager import get_plugin_manager
from tests.support.jobs import double, fail_on

LIFECYCLE_SPECS = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
                   if name.startswith(("gridmap_job_", "gridmap_map_"))}


def test_every_event_names_a_hook_whose_arguments_are_its_fields() -> None:
    assert {event.hook for event in EVENTS} == LIFECYCLE_SPECS
    for event in EVENTS:
        spec = inspect.signature(getattr(hookspecs, event.hook))
        fields = [field.name for field in dataclasses.fields(event)]
        assert fields == list(spec.parameters), event.__name__
    assert set(EVERY_JOB_HOOKS) | set(FAILURE_HOOKS) == LIFECYCLE_SPECS - {
        "gridmap_map_finished"}
    assert not set(EVERY_JOB_HOOKS) & set(FAILURE_HOOKS)
    assert TYPED_HOOK in dict(inspect.getmembers(hookspecs, inspect.isfunction))


def test_an_ended_job_gets_the_event_of_its_state() -> None:
    job = Job(double, [1])
    job.record_success(2, "here")
    assert type(events.ended(job)) is JobFinished
    assert events.ended(job).arguments() == {"job": job}


class TypedListener:
    def __init__(self) -> None:
        self.heard: list[Event] = []

    @hookimpl
    def gridmap_event(self, event: Event) -> None:
        self.heard.append(event)


@pytest.fixture
def typed() -> Iterator[TypedListener]:
    listener = TypedListener()
    manager = get_plugin_manager()
    manager.register(listener, name="typed listener")
    try:
        yield listener
    finally:
        manager.unregister(name="typed listener")


def test_the_typed_hook_hears_every_event_of_a_map(in_tmp: Any, typed: TypedListener) -> None:
    assert grid_map(fail_on, [1, 3], backend="local", name="typed",
                    on_failure="return")[0] == 1
    kinds = [(type(event).__name__, event.job.name if isinstance(event, JobEvent) else None)
             for event in typed.heard]
    for name in ("typed0", "typed1"):
        mine = [kind for kind, job in kinds if job == name]
        assert mine[:2] == ["JobSubmitted", "JobStarted"]
    assert ("JobFinished", "typed0") in kinds and ("JobFailed", "typed1") in kinds
    last = typed.heard[-1]
    assert isinstance(last, MapFinished) and last.summary["failed"] == 1
    # Listening to every event means listening to every job: each input had a Job.
    assert sorted(job.name for job in last.jobs) == ["typed0", "typed1"]


class Counting:
    """A notifier that counts the jobs it hears of, by name."""

    made: ClassVar[list[Counting]] = []

    def __init__(self, settings: Any) -> None:
        self.jobs: list[str] = []
        self.closed = False
        Counting.made.append(self)

    def gridmap_job_finished(self, job: Job) -> None:
        self.jobs.append(job.name)

    def gridmap_event(self, event: Event) -> None:
        if isinstance(event, JobFailed):
            self.jobs.append(f"typed {event.job.name}")

    def close(self, timeout: float) -> None:
        self.closed = True


class Offering:
    def __init__(self, *specs: NotifierSpec) -> None:
        self.specs = specs

    @hookimpl
    def gridmap_notifiers(self) -> list[NotifierSpec]:
        return list(self.specs)


@pytest.fixture
def counting() -> Iterator[None]:
    manager = get_plugin_manager()
    manager.register(Offering(NotifierSpec("counting", Counting, "counts jobs")),
                     name="counting")
    Counting.made.clear()
    try:
        yield
    finally:
        manager.unregister(name="counting")


def test_a_notifier_hears_only_its_own_executors_jobs(in_tmp: Any, counting: None) -> None:
    one = GridMapExecutor("local", name="one", settings={"NOTIFIERS": "counting"})
    two = GridMapExecutor("local", name="two", settings={"NOTIFIERS": "counting"})
    silent = GridMapExecutor("local", settings={"NOTIFIERS": ""})
    try:
        # Both share the process's plugin manager; their notifiers are not in it.
        assert one.runtime.plugins is two.runtime.plugins is silent.runtime.plugins
        assert one.runtime.observes_every_job() and not silent.runtime.observed()
        assert one.submit(double, 1).result() == 2
        assert two.submit(double, 2).result() == 4
        with pytest.raises(ValueError):
            two.submit(fail_on, 3).result()
        assert list(one.map(double, [3])) == [6]
    finally:
        for executor in (one, two, silent):
            executor.shutdown()
    first, second = Counting.made
    assert first.jobs == ["one", "one0"]
    assert second.jobs == ["two", "typed two"]
    assert first.closed and second.closed


def test_closing_unregisters_the_notifiers(in_tmp: Any, counting: None) -> None:
    executor = GridMapExecutor("local", settings={"NOTIFIERS": "counting"})
    notifiers = executor.notifiers
    assert notifiers.manager.get_plugin("counting") is Counting.made[0]
    executor.shutdown()
    assert notifiers.manager.get_plugins() == set()
    assert not executor.runtime.observed()
    notifiers.tell(JobFinished(Job(double, [1], name="late")))
    assert Counting.made[0].jobs == []


class Raising:
    def gridmap_job_started(self, job: Job) -> None:
        raise RuntimeError("notifier bug")


def test_a_raising_notifier_is_logged_once_then_at_debug_level(
        caplog: pytest.LogCaptureFixture) -> None:
    counted = Counting(None)
    notifiers = Notifiers({"raising": Raising(), "counting": counted})
    with caplog.at_level(logging.DEBUG, logger="gridmap_core.map.notifying"):
        for index in range(3):
            job = Job(double, [index], name=f"j{index}")
            notifiers.tell(JobStarted(job))
            notifiers.tell(JobFinished(job))
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "notifier 'raising' failed in gridmap_job_started" in caplog.records[0].message
    assert counted.jobs == ["j0", "j1", "j2"]  # the others heard every event


class Misnamed:
    def gridmap_job_failed(self, job: Job, reason: str) -> None:
        pass


def test_a_notifier_method_with_wrong_arguments_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"notifier 'misnamed' cannot be used.*reason"):
        Notifiers({"misnamed": Misnamed()})


def test_submitted_is_an_event_of_every_job() -> None:
    assert JobSubmitted.every_job and not JobFailed.every_job
    assert JobSubmitted.hook in EVERY_JOB_HOOKS and JobFailed.hook in FAILURE_HOOKS


def test_the_log_notifier_names_the_kind_of_a_death(caplog: pytest.LogCaptureFixture) -> None:
    from gridmap_core.backend import Failure
    from gridmap_core.model.death import DeathKind
    from gridmap_core.notifiers.log import LogNotifier

    job = Job(double, [1], name="lost")
    job.record_failure(Failure(None, None, "node3", "no heartbeat for 31 s",
                               death_kind=DeathKind.NO_HEARTBEAT))
    notifiers = Notifiers({"log": LogNotifier()})
    with caplog.at_level(logging.INFO, logger="gridmap.events"):
        notifiers.tell(events.ended(job))
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith("job_died job=lost host=node3 kind='no heartbeat' "
                           "cause='no heartbeat for 31 s'"), line
