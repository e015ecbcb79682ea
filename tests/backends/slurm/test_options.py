"""Job fields into sbatch options (gridmap_slurm.options), without a cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from gridmap_slurm.options import (
    GRID_ENGINE_DEFAULT_QUEUE,
    SlurmOptions,
    job_name,
    job_options,
    memory_mb,
    partition,
    time_limit,
)

from gridmap_core.backend import JobSpec
from gridmap_core.model.resources import ResourceError
from tests.backends.slurm.fakes import make_spec

pytestmark = pytest.mark.timeout(30)

MB = 2**20


def options_of(options: SlurmOptions | None = None, *,
               extra: Mapping[str, str] | None = None, **resources: Any) -> list[str]:
    return job_options(make_spec(extra=extra, **resources), options or SlurmOptions())


NODES = SlurmOptions(nodes=("n1", "n2", "n3"))


def test_nothing_requested_is_no_option() -> None:
    assert options_of() == []


@pytest.mark.parametrize(("resources", "expected"), [
    ({"mem_free": "100M"}, "--mem-per-cpu=100"),
    ({"h_vmem": "1G"}, "--mem-per-cpu=1024"),
    ({"h_vmem": "1.5G"}, "--mem-per-cpu=1536"),
    ({"mem_free": "100m"}, "--mem-per-cpu=96"),  # 10**8 bytes are 95.4 MiB
    ({"mem_free": "1000"}, "--mem-per-cpu=1"),  # never rounded down to nothing
    ({"mem_free": 2**20 + 1}, "--mem-per-cpu=2"),
    ({"mem_free": "100M", "h_vmem": "2G"}, "--mem-per-cpu=2048"),  # the limit wins
    ({"mem_free": "4G", "h_vmem": "1G"}, "--mem-per-cpu=1024"),
], ids=["mem_free", "h_vmem", "fraction", "decimal_unit", "tiny", "one_byte_over",
        "h_vmem_wins", "h_vmem_wins_even_when_smaller"])
def test_memory_is_per_cpu_in_mb_rounded_up(resources: dict[str, Any], expected: str) -> None:
    assert options_of(**resources) == [expected]


def test_memory_mb() -> None:
    assert memory_mb(1) == 1
    assert memory_mb(MB) == 1
    assert memory_mb(MB + 1) == 2
    assert memory_mb(3 * 2**30) == 3072


def test_slots_are_cpus_per_task() -> None:
    assert options_of(num_slots=1) == []
    assert options_of(num_slots=4) == ["--cpus-per-task=4"]
    # A Grid Engine parallel environment has no Slurm counterpart and is not needed.
    assert options_of(num_slots=2, par_env="smp") == ["--cpus-per-task=2"]


@pytest.mark.parametrize(("h_rt", "expected"), [
    (1, "--time=0:01:00"),
    (59, "--time=0:01:00"),
    (60, "--time=0:01:00"),
    (61, "--time=0:02:00"),
    (3599, "--time=1:00:00"),
    (3600, "--time=1:00:00"),
    ("1:30:00", "--time=1:30:00"),
    ("10:00", "--time=0:10:00"),
    (90061, "--time=25:02:00"),
])
def test_runtime_is_whole_minutes_as_hours_minutes_seconds(h_rt: Any, expected: str) -> None:
    assert options_of(h_rt=h_rt) == [expected]


def test_time_limit() -> None:
    assert time_limit(59) == "0:01:00"
    assert time_limit(3600) == "1:00:00"
    assert time_limit(90061) == "25:02:00"
    assert time_limit(100 * 3600) == "100:00:00"


def test_queue_is_a_partition() -> None:
    assert options_of(queue="debug") == ["--partition=debug"]
    assert options_of(queue="debug,long") == ["--partition=debug,long"]


def test_the_grid_engine_default_queue_means_the_default_partition() -> None:
    assert GRID_ENGINE_DEFAULT_QUEUE == "all.q"
    assert options_of(queue="all.q") == []
    assert options_of(SlurmOptions(partitions=("debug", "long")), queue="all.q") == []
    # ... unless the cluster really has a partition of that name.
    assert options_of(SlurmOptions(partitions=("debug", "all.q")), queue="all.q") == \
        ["--partition=all.q"]
    assert partition("all.q", None) is None
    assert partition("all.q", ["all.q"]) == "all.q"
    assert partition(None, ["debug"]) is None
    assert partition("long", None) == "long"


def test_a_white_list_of_one_host_is_a_node_list() -> None:
    assert options_of(white_list=["n2"]) == ["--nodelist=n2"]
    assert options_of(NODES, white_list=["n2"]) == ["--nodelist=n2"]


def test_a_white_list_of_several_hosts_excludes_every_other_node() -> None:
    assert options_of(NODES, white_list=["n1", "n3"]) == ["--exclude=n2"]
    assert options_of(SlurmOptions(nodes=("a", "b", "c", "d")), white_list=["b", "c"]) == \
        ["--exclude=a,d"]
    # Every node allowed: nothing to exclude.
    assert options_of(NODES, white_list=["n3", "n2", "n1"]) == []


def test_a_white_list_with_unknown_hosts_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"white_list names hosts Slurm does not know: "
                                            r"x9, zz; its nodes are: n1, n2, n3"):
        options_of(NODES, white_list=["n1", "zz", "x9"])


def test_a_white_list_of_one_unknown_host_is_refused() -> None:
    with pytest.raises(ResourceError, match=r"does not know: n9; its nodes are: n1, n2"):
        job_options(make_spec(white_list=["n9"]), SlurmOptions(nodes=("n1", "n2")))


def test_a_white_list_of_several_hosts_needs_the_node_list() -> None:
    with pytest.raises(ResourceError, match=r"white_list=\['n1', 'n2'\].*excluding all other "
                                            r"nodes, and the node list is unknown"):
        options_of(white_list=["n1", "n2"])


def test_gpus_are_a_generic_resource() -> None:
    assert options_of(gpu=0) == []
    assert options_of(gpu=2) == ["--gres=gpu:2"]
    assert options_of(SlurmOptions(gpu_resource="tesla"), gpu=1) == ["--gres=tesla:1"]


def test_project_is_an_account() -> None:
    assert options_of(extra={"project": "genomics"}) == ["--account=genomics"]
    assert options_of(extra={"project": ""}) == []


def test_raw_resources_starting_with_a_dash_are_split_into_options() -> None:
    assert options_of(resources=["--constraint=avx2", "-C avx2", "  --qos=high ",
                                 "--exclusive"]) == \
        ["--constraint=avx2", "-C", "avx2", "--qos=high", "--exclusive"]


@pytest.mark.parametrize("entry", ["arch=lx-amd64", "h_vmem=1G", "", "gpu"])
def test_grid_engine_style_raw_resources_are_refused(entry: str) -> None:
    with pytest.raises(ResourceError) as refused:
        options_of(resources=[entry])
    message = str(refused.value)
    assert f"resources=[{entry!r}]" in message
    assert "Slurm has no Grid Engine style resource requests" in message
    assert "give sbatch options instead" in message and "--constraint=avx2" in message


@pytest.mark.parametrize("field", ["os_distribution", "os_minor"])
def test_grid_engine_only_fields_are_refused(field: str) -> None:
    with pytest.raises(ResourceError, match=rf"{field}='x' is a Grid Engine resource with no "
                                            r"Slurm counterpart.*--constraint=FEATURE"):
        options_of(extra={field: "x"})
    assert options_of(extra={field: ""}) == []  # not asked for


@pytest.mark.parametrize(("spec", "options"), [
    (make_spec(queue="my partition"), SlurmOptions()),
    (make_spec(queue="a\tb"), SlurmOptions()),
    (make_spec(white_list=["node 1"]), SlurmOptions()),
    (make_spec(extra={"project": "my project"}), SlurmOptions()),
    (make_spec(), SlurmOptions(extra=("--comment=a b",))),
], ids=["queue", "tab", "white_list", "project", "site_option"])
def test_values_with_spaces_are_refused(spec: JobSpec, options: SlurmOptions) -> None:
    with pytest.raises(ResourceError, match=r"Slurm options may not contain spaces"):
        job_options(spec, options)


def test_site_options_are_appended_as_they_are() -> None:
    site = SlurmOptions(extra=("--qos=high", "-C", "avx2"))
    assert options_of(site) == ["--qos=high", "-C", "avx2"]
    assert options_of(site, h_rt=60, resources=["--exclusive"]) == \
        ["--time=0:01:00", "--exclusive", "--qos=high", "-C", "avx2"]


def test_every_field_in_one_option_list() -> None:
    options = SlurmOptions(gpu_resource="gpu", extra=("--qos=high",), nodes=("n1", "n2", "n3"),
                           partitions=("debug", "long"))
    spec = make_spec(mem_free="1G", h_vmem="2G", num_slots=2, par_env="smp", h_rt="0:05:00",
                     queue="long", white_list=["n1", "n2"], gpu=1,
                     resources=["--constraint=avx2"], extra={"project": "p1"})
    assert job_options(spec, options) == [
        "--mem-per-cpu=2048", "--cpus-per-task=2", "--time=0:05:00", "--partition=long",
        "--exclude=n3", "--gres=gpu:1", "--account=p1", "--constraint=avx2", "--qos=high",
    ]


@pytest.mark.parametrize(("name", "expected"), [
    ("gridmap_job", "gridmap_job"),
    ("my job", "my_job"),
    ("a/b:c", "a_b_c"),
    ("x@y\\z*?", "x_y_z__"),
    ("tab\there", "tab_here"),
    ("a=b;c", "a_b_c"),
    ("run-1.2+3", "run-1.2+3"),
    ("", "gridmap_job"),
])
def test_job_name(name: str, expected: str) -> None:
    assert job_name(name) == expected
