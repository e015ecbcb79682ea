"""Resource requests are parsed and validated when a Job is created."""

from __future__ import annotations

import datetime

import pytest

from gridmap_core import Job, ResourceError, Resources, parse_memory, parse_runtime


def f(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4G", 4 * 2**30), ("512M", 512 * 2**20), ("1.5G", int(1.5 * 2**30)), ("100", 100),
     ("2k", 2000), ("2K", 2048), (1024, 1024), ("3T", 3 * 2**40), (" 8 G ", 8 * 2**30)],
)
def test_memory_forms(text: str | int, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["4 gigs", "G", "-1G", "4GB", "1e9", "0", 0, -5, True, 1.5])
def test_bad_memory_names_field_and_forms(bad: object) -> None:
    with pytest.raises(ResourceError) as info:
        parse_memory(bad, "h_vmem")  # type: ignore[arg-type]
    message = str(info.value)
    assert "h_vmem=" in message
    assert repr(bad) in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1:30:00", 5400), ("90", 90), (90, 90), ("05:00", 300), ("0:0:1", 1),
     (datetime.timedelta(hours=2), 7200), (12.7, 12)],
)
def test_runtime_forms(value: object, expected: int) -> None:
    assert parse_runtime(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["1h", "1:2:3:4", "a:b", "0", -1, "", [1]])
def test_bad_runtime(bad: object) -> None:
    if bad == "":
        assert parse_runtime(bad) is None  # type: ignore[arg-type]
        return
    with pytest.raises(ResourceError, match="h_rt"):
        parse_runtime(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("mem_free", "lots", "mem_free='lots' is not a memory size"),
     ("h_vmem", "4 gigs", "h_vmem='4 gigs'"),
     ("h_rt", "one hour", "h_rt='one hour' is not a runtime"),
     ("num_slots", 0, "num_slots=0 must be at least 1"),
     ("num_slots", 2.5, "num_slots=2.5 must be a whole number"),
     ("gpu", -1, "gpu=-1 must be at least 0"),
     ("resources", "h=node1", "must be a list of strings, not one string"),
     ("validation_level", "x", "validation_level='x'")],
)
def test_job_rejects_bad_resources_at_creation(field: str, value: object, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        Job(f, [1], **{field: value})  # type: ignore[arg-type]
    assert message in str(info.value)


def test_job_rejects_non_callable_and_bad_args() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        Job(42, [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"write \[x\]"):
        Job(f, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kwlist"):
        Job(f, [1], kwlist=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="add_env"):
        Job(f, [1], add_env={"A": 1})  # type: ignore[dict-item]


def test_resources_of_a_job() -> None:
    job = Job(f, [1], mem_free="2G", h_vmem="3G", h_rt="0:10:00", num_slots=2, gpu=1,
              queue="fast.q", resources=["arch=x86"])
    job.white_list = ["node1"]
    spec = job.spec({"par_env": "mpi"})
    assert spec.resources == Resources(
        mem_free=2 * 2**30, h_vmem=3 * 2**30, h_rt=600, num_slots=2, par_env="mpi", gpu=1,
        queue="fast.q", white_list=("node1",), extra=("arch=x86",), mem_free_text="2G",
        h_vmem_text="3G", h_rt_text="0:10:00")
    assert job.name == "gridmap_job"


def test_parsing_is_done_once_per_distinct_request_and_never_hides_an_error() -> None:
    first = Resources.parse(mem_free="2G", white_list=["node1"])
    assert Resources.parse(mem_free="2G", white_list=["node1"]) is first  # cached
    assert Resources.parse(num_slots=1).num_slots == 1
    with pytest.raises(ResourceError, match="num_slots=True"):  # 1 == True, yet refused
        Resources.parse(num_slots=True)
    for _ in range(2):  # a refusal is not remembered as a result
        with pytest.raises(ResourceError, match=r"white_list=\['a', 1\]"):
            Resources.parse(white_list=["a", 1])  # type: ignore[list-item]
    with pytest.raises(ResourceError, match="resources="):
        Resources.parse(resources=(["x"],))  # type: ignore[arg-type]
