"""Functions from modules the node cannot import by itself: a helper module the
submitting process imported from a directory on its sys.path (neither installed
nor in the working directory), one loaded from a file path, and the error when
the node cannot see the module at all. Local backend in runner mode, a stand-in
monitor, and the real Slurm cluster."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from gridmap_core import GridMapExecutor, Job, JobException, JobState, process_jobs
from gridmap_core.model.config import SETTINGS
from gridmap_core.model.node_imports import search_path
from gridmap_core.wire.messages import decode_result
from gridmap_core.wire.protocol import Kind
from tests.node.test_runner import Monitor, key, key_file, run_runner, serving, task_of  # noqa: F401
from tests.support import monitored

pytestmark = pytest.mark.timeout(180)

HELPER = '''
import os
import sys


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def shifted(point, by):
    """A Point moved by ``by``, and whether this module was imported here by name."""
    return Point(point.x + by, point.y + by), __name__ in sys.modules
'''


def write_helper(directory: Path) -> str:
    """A helper module with a name of its own in ``directory``; its name."""
    name = f"gm_helper_{uuid.uuid4().hex[:12]}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(HELPER)
    return name


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A helper module imported, as a script's neighbour is, from a directory on
    sys.path that is neither installed nor the working directory."""
    name = write_helper(tmp_path / "lib")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


@pytest.fixture
def loose_helper(tmp_path: Path) -> Iterator[ModuleType]:
    """A helper module loaded from its file path: no finder knows its name."""
    name = write_helper(tmp_path / "loose")
    spec = importlib.util.spec_from_file_location(name, tmp_path / "loose" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)


def run_shifted(module: ModuleType, executor: GridMapExecutor) -> list[Job]:
    jobs = [Job(module.shifted, [module.Point(x, -x), 10], name=f"shift{x}") for x in range(3)]
    with executor:
        executor.run_jobs(jobs)
    return jobs


def test_the_submitting_process_s_own_path_entries_travel(helper: ModuleType,
                                                          tmp_path: Path) -> None:
    entries = search_path()
    assert str(tmp_path / "lib") in entries
    assert not any(entry.startswith(sys.base_prefix + os.sep) for entry in entries)
    assert not any("site-packages" in entry for entry in entries)


def test_a_helper_module_from_the_submitters_path_is_imported_on_the_node(
        helper: ModuleType, in_tmp: Path) -> None:
    jobs = run_shifted(helper, monitored.runner_executor())
    for x, job in enumerate(jobs):
        point, imported = job.ret
        assert isinstance(point, helper.Point)  # the submitting process's own class
        assert (point.x, point.y) == (x + 10, 10 - x)
        assert imported, "the helper travelled by value instead of being imported"


def test_a_module_loaded_from_a_file_path_travels_by_value(loose_helper: ModuleType,
                                                           in_tmp: Path) -> None:
    jobs = run_shifted(loose_helper, monitored.runner_executor())
    for x, job in enumerate(jobs):
        point, imported = job.ret
        assert (point.x, point.y) == (x + 10, 10 - x)
        assert not imported


def test_a_module_the_node_cannot_see_is_named_with_what_to_do(
        helper: ModuleType, tmp_path: Path, key: bytes, key_file: Path) -> None:  # noqa: F811
    payload = task_of(helper.shifted, [helper.Point(1, 2), 3])
    shutil.rmtree(tmp_path / "lib")  # what a node without that directory sees
    with Monitor(key, serving(payload)) as monitor:
        result = run_runner(monitor.address, key_file, tmp_path, "--give-up", "20")
    assert result.code == 0, result.err
    outcome = decode_result(monitor.of_kind(Kind.RESULT)[0].payload)
    assert isinstance(outcome.exception, ModuleNotFoundError)
    message = str(outcome.exception)
    assert f"No module named {helper.__name__!r}" in message
    assert str(tmp_path / "lib") in message  # the directory the node lacks
    assert f"cloudpickle.register_pickle_by_value({helper.__name__})" in message


@pytest.fixture
def quick_slurm(slurm_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 1,
                        "NUM_RESUBMITS": 0}.items():
        monkeypatch.setenv(SETTINGS[name].env_var, str(value))


def test_a_helper_module_reaches_slurm_jobs(quick_slurm: None, helper: ModuleType,
                                            in_tmp: Path) -> None:
    jobs = [Job(helper.shifted, [helper.Point(x, -x), 10], name=f"shift{x}") for x in range(2)]
    try:
        process_jobs(jobs, backend="slurm", require_cluster=True, temp_dir=str(in_tmp))
    except JobException as error:
        pytest.fail(str(error))
    for x, job in enumerate(jobs):
        assert job.state is JobState.DONE
        point, imported = job.ret
        assert (point.x, point.y) == (x + 10, 10 - x) and imported
