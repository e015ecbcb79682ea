"""Job fields into a Grid Engine native specification (gridmap_sge.native)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from gridmap_sge.native import NativeOptions, job_name, native_specification

from gridmap_core.backend import JobSpec
from gridmap_core.model.resources import ResourceError, Resources

pytestmark = pytest.mark.timeout(30)


def make_spec(*, shell: str | None = None, extra: Mapping[str, str] | None = None,
              **resources: Any) -> JobSpec:
    return JobSpec(function=print, resources=Resources.parse(**resources),
                   interpreting_shell=shell, extra=dict(extra or {}))


def native(spec: JobSpec, options: NativeOptions | None = None, *, array: bool = False) -> str:
    text: str = native_specification(spec, options or NativeOptions(), array=array)
    return text


def test_nothing_requested_is_an_empty_specification() -> None:
    assert native(make_spec()) == ""


def test_h_vmem_keeps_a_spelling_grid_engine_reads() -> None:
    assert native(make_spec(h_vmem="300M")) == "-l h_vmem=300M"
    assert native(make_spec(h_vmem="4g")) == "-l h_vmem=4g"
    assert native(make_spec(h_vmem=" 2G ")) == "-l h_vmem=2G"


def test_h_vmem_grid_engine_cannot_read_goes_as_bytes() -> None:
    # Grid Engine has no fractions and no T suffix.
    assert native(make_spec(h_vmem="1.5G")) == f"-l h_vmem={3 * 2**29}"
    assert native(make_spec(h_vmem="1T")) == f"-l h_vmem={2**40}"
    assert native(make_spec(h_vmem="4 G")) == f"-l h_vmem={4 * 2**30}"


def test_mem_free_only_when_the_site_uses_it() -> None:
    spec = make_spec(mem_free="100M")
    assert native(spec) == ""
    assert native(spec, NativeOptions(use_mem_free=True)) == "-l mem_free=100M"
    both = make_spec(mem_free="0.5G", h_vmem="1G")
    assert native(both, NativeOptions(use_mem_free=True)) == \
        f"-l h_vmem=1G -l mem_free={2**29}"


def test_h_rt_in_seconds() -> None:
    assert native(make_spec(h_rt="1:30:00")) == "-l h_rt=5400"
    assert native(make_spec(h_rt="10:00")) == "-l h_rt=600"
    assert native(make_spec(h_rt=90)) == "-l h_rt=90"


def test_gpu_with_the_default_and_a_site_resource() -> None:
    assert native(make_spec(gpu=0)) == ""
    assert native(make_spec(gpu=2)) == "-l gpu=2"
    assert native(make_spec(gpu=1), NativeOptions(gpu_resource="nvidia_gpu")) == \
        "-l nvidia_gpu=1"


def test_slots_need_a_parallel_environment() -> None:
    assert native(make_spec(num_slots=4, par_env="smp")) == "-pe smp 4"
    assert native(make_spec(num_slots=1, par_env="smp")) == ""
    with pytest.raises(ResourceError, match=r"num_slots=4 needs a parallel environment"):
        native(make_spec(num_slots=4))


def test_queue_and_white_list() -> None:
    assert native(make_spec(queue="all.q")) == "-q all.q"
    assert native(make_spec(queue="all.q", white_list=["a", "b"])) == "-q all.q@a,all.q@b"
    assert native(make_spec(queue="all.q,long.q", white_list=["a", "b"])) == \
        "-q all.q@a,all.q@b,long.q@a,long.q@b"
    # Without a queue the host list is a request, not a queue list.
    assert native(make_spec(white_list=["a", "b"])) == "-l hostname=a|b"


def test_raw_resources_are_requests_or_options() -> None:
    spec = make_spec(resources=["arch=lx-amd64", "-R y", " -p -10", "-l scratch=1"])
    assert native(spec) == "-l arch=lx-amd64 -R y -p -10 -l scratch=1"


def test_shell_project_and_validation_level() -> None:
    assert native(make_spec(shell="/bin/bash")) == "-S /bin/bash"
    assert native(make_spec(extra={"project": "genomics"})) == "-P genomics"
    assert native(make_spec(extra={"validation_level": "v"})) == "-w v"
    assert native(make_spec(extra={"project": "", "validation_level": ""})) == ""
    with pytest.raises(ResourceError, match=r"validation_level='x'.*e, w, n, v, p"):
        native(make_spec(extra={"validation_level": "x"}))


def test_os_distribution_and_minor_are_requests() -> None:
    spec = make_spec(extra={"os_distribution": "debian", "os_minor": "12"})
    assert native(spec) == "-l os_distribution=debian -l os_minor=12"


def test_array_throttle_only_for_arrays() -> None:
    spec = make_spec(h_rt=60)
    throttled = NativeOptions(max_running=5)
    assert native(spec, throttled, array=True) == "-l h_rt=60 -tc 5"
    assert native(spec, throttled, array=False) == "-l h_rt=60"
    assert native(spec, NativeOptions(), array=True) == "-l h_rt=60"


def test_site_options_are_appended_as_they_are() -> None:
    site = NativeOptions(extra="-R y -m n")
    assert native(make_spec(queue="all.q"), site) == "-q all.q -R y -m n"
    assert native(make_spec(), site) == "-R y -m n"


def test_every_field_in_one_specification() -> None:
    spec = make_spec(h_vmem="2G", mem_free="1G", h_rt="0:05:00", gpu=1, num_slots=2,
                     par_env="smp", queue="all.q", white_list=["node1"],
                     resources=["arch=lx-amd64"], shell="/bin/sh",
                     extra={"project": "p1", "validation_level": "w",
                            "os_distribution": "debian"})
    options = NativeOptions(use_mem_free=True, max_running=3, extra="-R y")
    assert native(spec, options, array=True).split() == [
        "-l", "h_vmem=2G", "-l", "mem_free=1G", "-l", "h_rt=300", "-l", "gpu=1",
        "-l", "os_distribution=debian", "-l", "arch=lx-amd64", "-pe", "smp", "2",
        "-q", "all.q@node1", "-S", "/bin/sh", "-P", "p1", "-w", "w", "-tc", "3",
        "-R", "y",
    ]


@pytest.mark.parametrize("spec", [
    make_spec(queue="all q"),
    make_spec(white_list=["node 1"]),
    make_spec(queue="all.q", white_list=["node 1"]),
    make_spec(resources=["arch = lx-amd64"]),
    make_spec(resources=[""]),
    make_spec(shell="/bin/bash -l"),
    make_spec(extra={"project": "my project"}),
    make_spec(extra={"os_distribution": "red hat"}),
    make_spec(num_slots=2, par_env="s m p"),
], ids=["queue", "white_list", "queue_hosts", "resource", "empty", "shell", "project",
        "os", "par_env"])
def test_values_with_spaces_are_refused(spec: JobSpec) -> None:
    # Grid Engine splits a native specification at white space without unquoting.
    with pytest.raises(ResourceError, match=r"cannot be passed to Grid Engine"):
        native(spec)


@pytest.mark.parametrize(("name", "expected"), [
    ("gridmap_job", "gridmap_job"),
    ("my job", "my_job"),
    ("a/b:c", "a_b_c"),
    ("x@y\\z*?", "x_y_z__"),
    ("tab\there", "tab_here"),
    ("3rd_try", "j3rd_try"),
    ("", "gridmap_job"),
])
def test_job_name(name: str, expected: str) -> None:
    assert job_name(name) == expected
