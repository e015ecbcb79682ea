"""JobOptions is the one list of per-job options: the public signatures that must keep
the original GridMap's explicit parameters are held to it here."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from gridmap_core import GridMapExecutor, Job, ResourceError, grid_map
from gridmap_core.model.options import JobOptions


def _options_in(signature_of: Callable[..., Any]) -> dict[str, Any]:
    parameters = inspect.signature(signature_of).parameters
    return {name: parameters[name].default for name in parameters if name in JobOptions.names()}


def _defaults() -> dict[str, Any]:
    return {field.name: field.default for field in dataclasses.fields(JobOptions)}


def test_job_takes_every_option_with_the_same_default_in_order() -> None:
    parameters = list(inspect.signature(Job.__init__).parameters)
    assert parameters[:4] == ["self", "f", "args", "kwlist"]
    assert tuple(parameters[4:]) == JobOptions.names()
    assert _options_in(Job.__init__) == _defaults()


def test_grid_map_takes_every_option_with_the_same_default() -> None:
    assert _options_in(grid_map) == _defaults()


def test_job_fields_are_typed_as_the_options_are() -> None:
    job_types = typing.get_type_hints(Job)
    option_types = typing.get_type_hints(JobOptions)
    for name in JobOptions.names():
        assert name in job_types, f"Job declares no type for its option {name}"
    # add_env is a dict once checked; the rest are the same types.
    differing = {name for name in JobOptions.names() if job_types[name] != option_types[name]}
    assert differing <= {"add_env"}


def test_a_job_hands_its_options_on_and_sees_later_changes() -> None:
    job = Job(abs, [1], mem_free="2G", name="two words", add_env={"A": "1"})
    assert job.options.mem_free == "2G" and job.options.name == "two_words"
    job.h_rt = "1:00:00"
    assert job.options.h_rt == "1:00:00"


def test_options_differing_only_by_name_group_together() -> None:
    first = JobOptions(name="a", add_env={"X": "1"}, resources=["fast"])
    second = first.replace(name="b")
    assert first.grouping_key() == second.grouping_key()
    assert hash(first.grouping_key()) == hash(second.grouping_key())
    assert first.replace(mem_free="4G").grouping_key() != first.grouping_key()
    assert first.replace(add_env={"X": "2"}).grouping_key() != first.grouping_key()


def test_bad_options_are_refused_with_what_to_do() -> None:
    unknown = r"unknown job option\(s\) \['memfree'\]"
    with pytest.raises(TypeError, match=unknown + "; accepted: .*mem_free"):
        JobOptions.of({"memfree": "1G"})
    with pytest.raises(TypeError, match=r"unknown job option\(s\) \['memfree'\]"):
        GridMapExecutor(backend="local", memfree="1G")
    with pytest.raises(ResourceError, match="validation_level='x': use one of"):
        JobOptions(validation_level="x")
    with pytest.raises(TypeError, match=r"add_env=.*must map variable names"):
        JobOptions(add_env={"A=B": "1"})
    with pytest.raises(TypeError, match="name=3 must be a string"):
        Job(abs, [1], name=3)  # type: ignore[arg-type]


def test_the_executor_gives_its_options_to_the_jobs_it_makes() -> None:
    with GridMapExecutor(backend="local", name="sq", mem_free="3G") as executor:
        assert executor.runtime.job_options == JobOptions(name="sq", mem_free="3G")
        assert list(executor.map(abs, [-1, -2])) == [1, 2]
