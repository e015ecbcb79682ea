"""The docs stay true: every Python block of README.md and docs/*.md runs, and every
hook has its own heading in docs/plugins.md.

In docs/plugins.md, code blocks that start with ``# file: PATH`` are the example
package, written to disk; every other ``python`` block of its guide runs, in order, in
one namespace (like a doctest), each ``test_*`` function a block defines is called,
and each block of its hook reference is registered and called as a plugin. In every
other doc, the ``python`` blocks run in order in one namespace, in a process of their
own. A block that cannot run here (it needs a cluster, or is a fragment naming
functions and inputs it does not define) is preceded by an HTML comment saying why:
``<!-- not run: needs a Grid Engine cluster -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from gridmap_core import (
    BackendSpec,
    GridMapExecutor,
    Job,
    NotifierSpec,
    ResourceError,
    TransportSpec,
    cli,
    get_plugin_manager,
    grid_map,
)
from gridmap_core.model.death import DeathKind
from gridmap_core.model.events import JobDied
from gridmap_core.plugins import hookspecs
from gridmap_core.plugins import manager as plugins
from gridmap_core.plugins.manager import PluginManager
from tests import PROJECT_ROOT
from tests.support.distributions import install

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass

# A map that never ends (a job never reported) fails here, not after minutes.
pytestmark = pytest.mark.timeout(60)

ROOT = PROJECT_ROOT
DOC = ROOT / "docs" / "plugins.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = ("python", "py", "python3")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->[ \t]*\n(?=```)", re.M)
REFERENCE = "## Hook reference"
FILE_MARK = re.compile(r"^# file: (\S+)\n")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int

    @property
    def file(self) -> str | None:
        match = FILE_MARK.match(self.code)
        return match.group(1) if match else None


def code_blocks(text: str, first_line: int = 1) -> list[Block]:
    """The fenced blocks of ``text``, those marked not to run left out."""
    marked = {m.end() for m in NOT_RUN.finditer(text)}
    return [
        Block(m.group(1), m.group(2), first_line + text.count("\n", 0, m.start()))
        for m in re.finditer(r"^```(\S*)\n(.*?)^```[ \t]*$", text, re.M | re.S)
        if m.start() not in marked
    ]


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def guide_and_reference() -> tuple[str, str]:
    text = doc_text()
    assert REFERENCE in text, f"{DOC} has no section {REFERENCE!r}"
    guide, reference = text.split(REFERENCE, 1)
    return guide, reference


def hookspec_names() -> list[str]:
    """Every function of gridmap_core/plugins/hookspecs.py marked as a hook specification."""
    return sorted(
        name
        for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, "gridmap_spec")
    )


def hook_sections() -> dict[str, tuple[str, int]]:
    """Hook name -> (text of its section under a heading naming it, line of heading)."""
    text = doc_text()
    start = text.index(REFERENCE)
    sections = {}
    for match in re.finditer(r"^###\s+(.*)$", text[start:], re.M):
        names = re.findall(r"gridmap_\w+", match.group(1))
        end = re.search(r"^#{1,3}\s", text[start + match.end() :], re.M)
        body = text[start + match.end() : start + match.end() + end.start() if end else None]
        for name in names:
            sections[name] = (body, text.count("\n", 0, start + match.start()) + 1)
    return sections


def test_hookspecs_are_found() -> None:
    names = hookspec_names()
    assert "gridmap_backends" in names and "gridmap_map_finished" in names
    declared = {name for name in dir(PluginManager().hook) if name.startswith("gridmap_")}
    assert set(names) == declared


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hook_is_documented_under_its_own_heading(hook: str) -> None:
    _, reference = guide_and_reference()
    heading = re.compile(rf"^#{{2,4}}\s.*(?<!\w){hook}(?!\w)", re.M)
    assert heading.search(reference), (
        f"hook {hook} (gridmap_core/plugins/hookspecs.py) has no heading in {DOC} under "
        f"{REFERENCE!r}: add '### {hook}' with its parameters, when it is called and "
        "an example"
    )


def test_every_documented_hook_exists() -> None:
    unknown = set(hook_sections()) - set(hookspec_names())
    assert not unknown, f"{DOC} documents hooks that hookspecs.py does not declare: {unknown}"


SAMPLE_JOB = Job(abs, [-1], name="sample")
SAMPLE_JOB.ret = ValueError("negative")
SAMPLE_JOB.traceback = "Traceback (most recent call last):\nValueError: negative\n"
SAMPLE_JOB.host_name = "node7"
SAMPLE_JOB.cause_of_death = "out of memory"
SAMPLE_JOB.death_kind = DeathKind.OUT_OF_MEMORY
SAMPLE_JOB.num_resubmits = 1
SAMPLE_JOB.backend = "local"
SAMPLES: dict[str, Any] = {
    "job": SAMPLE_JOB,
    "jobs": [SAMPLE_JOB],
    "heartbeat": {"cpu": 97.5, "memory": 3 * 2**30, "host_name": "node7"},
    "note": "no queue instance can run it: all.q@node7 is in state E",
    "event": JobDied(SAMPLE_JOB),
    "summary": {
        "name": "sample",
        "backend": "local",
        "total": 2,
        "succeeded": 1,
        "failed": 1,
        "wall_time": 1.5,
        "completion_mail": False,
    },
}
SPEC_TYPES = {
    "gridmap_backends": BackendSpec,
    "gridmap_transports": TransportSpec,
    "gridmap_notifiers": NotifierSpec,
}


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hook_example_registers_and_runs(
    hook: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sections = hook_sections()
    if hook not in sections:
        pytest.fail(f"{hook} is not documented in {DOC}")
    body, line = sections[hook]
    manager = PluginManager()  # no entry points: only the example
    arguments = manager.hook.__dict__[hook].spec.argnames
    for argument in arguments:
        assert f"`{argument}`" in body, (
            f"{DOC}:{line}: the section on {hook} does not describe its parameter `{argument}`"
        )
    if not arguments:
        assert "no parameters" in body, f"{DOC}:{line}: say that {hook} has no parameters"
    blocks = [b for b in code_blocks(body, line) if b.language == "python"]
    assert blocks, f"{DOC}:{line}: the section on {hook} has no python example"

    for block in blocks:
        module = types.ModuleType(f"plugins_md_{hook}_{block.line}")
        exec(compile(block.code, f"{DOC}:{block.line}", "exec"), module.__dict__)
        manager.register(module)  # pluggy checks the parameter names against the spec
        assert manager.hook.__dict__[hook].get_hookimpls(), (
            f"{DOC}:{block.line}: the example does not implement {hook}"
        )
        results = manager.hook.__dict__[hook](**{a: SAMPLES[a] for a in arguments})
        if hook in SPEC_TYPES:
            specs = [spec for result in results for spec in result]
            assert specs and all(isinstance(s, SPEC_TYPES[hook]) for s in specs)
        else:
            assert capsys.readouterr().out, f"{DOC}:{block.line}: the example did nothing"
        manager.unregister(module)


# -- the guide's example backend --------------------------------------------------------


def package_files() -> dict[str, str]:
    guide, _ = guide_and_reference()
    files = {b.file: FILE_MARK.sub("", b.code, count=1) for b in code_blocks(guide) if b.file}
    assert {"pyproject.toml", "gridmap_threads/plugin.py", "gridmap_threads/backend.py"} <= set(
        files
    ), "the guide lost its example package"
    return files


def runnable_blocks() -> list[Block]:
    guide, _ = guide_and_reference()
    return [b for b in code_blocks(guide) if b.language == "python" and not b.file]


def run_block(block: Block, namespace: dict[str, Any]) -> list[str]:
    """Run one block; call the test functions it defines; return their names. Test
    classes it defines are left for :func:`run_test_classes`."""
    before = set(namespace)
    exec(compile(block.code, f"{DOC}:{block.line}", "exec"), namespace)
    tests = [n for n in namespace if n.startswith("test_") and n not in before
             and callable(namespace[n])]
    for name in tests:
        namespace[name]()
    return tests


def classes_in(namespace: dict[str, Any]) -> dict[str, type]:
    return {name: value for name, value in namespace.items()
            if name.startswith("Test") and isinstance(value, type)}


def run_test_classes(namespace: dict[str, Any]) -> list[str]:
    """Run each test method of the ``Test*`` classes in ``namespace`` as pytest would
    (a test set to None is not one); return ``Class.method`` for each."""
    ran = []
    for class_name, cls in classes_in(namespace).items():
        for name in sorted(dir(cls)):
            if name.startswith("test_") and callable(getattr(cls, name)):
                getattr(cls(), name)()
                ran.append(f"{class_name}.{name}")
    return ran


@pytest.fixture
def threads_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The guide's package written to a temporary project directory, cwd elsewhere, and a
    process-wide plugin manager of its own."""
    project = tmp_path / "gridmap-threads"
    for relative, text in package_files().items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(plugins, "_manager", None)
    yield project
    for name in [n for n in sys.modules if n.split(".")[0] == "gridmap_threads"]:
        del sys.modules[name]


def test_guide_code_runs(threads_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(threads_package))
    namespace: dict[str, Any] = {"__name__": "plugins_md"}
    ran = []
    for block in runnable_blocks():
        ran += run_block(block, namespace)
    assert {"test_threads_backend", "test_session_reports_every_claimed_job"} <= set(ran)
    # The conformance class needs the installed package: it runs in the next test.
    assert "TestThreads" in classes_in(namespace)
    # The guide wrote a gridmap.toml that chooses and configures its backend.
    assert 'backend = "threads"' in Path("gridmap.toml").read_text()
    # The in-process registration was undone in `finally`.
    assert "threads" not in get_plugin_manager().backends()


def where(x: int) -> tuple[int, int]:
    return 2 * x, os.getpid()


def test_guide_package_works_when_installed(
    threads_package: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    assert install(threads_package, site) == "gridmap-threads"
    monkeypatch.syspath_prepend(str(site))
    [point] = [ep for ep in entry_points(group="gridmap") if ep.name == "threads"]
    assert point.dist is not None and point.dist.name == "gridmap-threads"

    manager = get_plugin_manager()
    assert manager.backends()["threads"].is_cluster is False
    assert "gridmap_threads.backend" not in sys.modules  # deferred until used
    assert cli.main(["backends"]) == 0
    assert re.search(
        r"^threads\s+gridmap-threads 0\.1\.0\s+usable\s", capsys.readouterr().out, re.M
    )

    [config_block] = [b for b in runnable_blocks() if "gridmap.toml" in b.code]
    run_block(config_block, {})
    with GridMapExecutor() as executor:  # chosen by gridmap.toml
        assert executor.backend_name == "threads"
        assert "gridmap.toml" in executor.chosen.reason
        results = list(executor.map(where, [1, 2, 3]))
        session: Any = executor.session
        assert session.pool._max_workers == 4  # [backends.threads] threads = 4
    assert [value for value, _ in results] == [2, 4, 6]
    assert {pid for _, pid in results} == {os.getpid()}  # threads of this process
    assert "gridmap_threads.backend" in sys.modules

    with pytest.raises(ResourceError, match="no GPUs"):
        grid_map(where, [1], gpu=1)

    # The guide's conformance class runs the suite on the installed backend, without
    # the tests it turns off.
    namespace: dict[str, Any] = {"__name__": "plugins_md"}
    for block in runnable_blocks():
        if "BackendConformance" in block.code:
            run_block(block, namespace)
    ran = run_test_classes(namespace)
    assert "TestThreads.test_results_come_back_in_input_order" in ran, ran
    assert "TestThreads.test_failure_policy_cancel_stops_the_rest" in ran, ran
    assert "TestThreads.test_cancelling_stops_running_jobs" not in ran, ran
    assert len(ran) >= 6, ran


# -- every other doc -----------------------------------------------------------------

# Runs the blocks it reads as JSON ([file:line, code] pairs) in order, in one namespace,
# and calls the test functions they define.
BLOCK_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for where, code in json.load(sys.stdin):
    before = set(namespace)
    exec(compile(code, where, "exec"), namespace)
    for name in [n for n in namespace if n.startswith("test_") and n not in before]:
        if callable(namespace[name]):
            namespace[name]()
"""
# What a doc's blocks print, where that is the point of the example.
PRINTED = {"docs/monitor.md": "[1, 2, 3]\n"}


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", [d for d in DOCS if d != DOC], ids=relative)
def test_every_python_block_of_the_doc_runs(doc: Path, tmp_path: Path) -> None:
    blocks = [b for b in code_blocks(doc.read_text(encoding="utf-8"))
              if b.language in PYTHON]
    if not blocks:
        return  # nothing to run: no Python block, or only ones that cannot run here
    import json

    payload = json.dumps([[f"{doc}:{b.line}", b.code] for b in blocks])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", BLOCK_RUNNER], input=payload,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, (
        f"a Python block of {relative(doc)} failed (mark one that cannot run here with "
        f"<!-- not run: why -->):\n{result.stderr}")
    if relative(doc) in PRINTED:
        assert result.stdout == PRINTED[relative(doc)], result.stdout


def test_blocks_marked_not_to_run_are_python_and_say_why() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in NOT_RUN.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            reason = match.group(1)
            fence = text[match.end():].split("\n", 1)[0]
            assert fence.removeprefix("```") in PYTHON, (
                f"{relative(doc)}:{line}: the mark is for Python blocks, not {fence!r}")
            # Only what cannot run here: a block that needs a cluster, or a fragment.
            assert re.search(r"cluster|fragment", reason), (
                f"{relative(doc)}:{line}: say why the block cannot run (it needs a "
                f"cluster, or is a fragment), not {reason!r}")
        # A mark that is not right before a block marks nothing: a typo.
        assert text.count("<!-- not run") == len(NOT_RUN.findall(text)), (
            f"{relative(doc)}: a '<!-- not run: ... -->' mark is not on the line right "
            "before its block")


def test_every_python_block_of_the_plugin_guide_is_run() -> None:
    guide, reference = guide_and_reference()
    guide_blocks = [b for b in code_blocks(guide) if b.language in PYTHON]
    assert all(b.file or b in runnable_blocks() for b in guide_blocks)
    in_sections = sum(len([b for b in code_blocks(body) if b.language in PYTHON])
                      for body, _ in hook_sections().values())
    in_reference = len([b for b in code_blocks(reference) if b.language in PYTHON])
    assert in_sections == in_reference, (
        f"{DOC}: a Python block of the hook reference is under no hook's heading, so "
        "nothing runs it")


# -- what the hook reference says of the local backend --------------------------------


def test_hook_reference_tells_what_the_local_backend_reports(tmp_path: Path) -> None:
    from gridmap_core.testing import EventRecorder
    from tests.support import jobs

    sections = hook_sections()
    # Its workers resubmit the job of a worker that died.
    marker = str(tmp_path / "died")
    with EventRecorder().listening() as recorder, GridMapExecutor(
            "local", max_processes=2, settings={"NUM_RESUBMITS": 1}) as executor:
        executor.run_jobs([Job(jobs.die_once, [marker, 0], name="phoenix")])
    assert "resubmitted" in recorder.of("phoenix"), recorder.events
    body, line = sections["gridmap_job_resubmitted"]
    assert "local backend does not" not in body and "local backend" in body, (
        f"{DOC}:{line}: the local backend resubmits the jobs of dead workers; say so")
    # Its runner mode sends heartbeats.
    with EventRecorder().listening() as recorder, GridMapExecutor(
            "local", settings={"HEARTBEAT_FREQUENCY": 0.2},
            backend_options={"mode": "runner"}) as executor:
        executor.run_jobs([Job(jobs.sleep_then, [1.0], name="sleeper")])
    assert "heartbeat" in recorder.of("sleeper"), recorder.events
    body, line = sections["gridmap_job_heartbeat"]
    assert "local backend does not" not in body and "runner" in body, (
        f"{DOC}:{line}: the local backend's runner mode sends heartbeats; say so")
