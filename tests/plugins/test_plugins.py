"""The plugin machinery: third-party backends found through entry points, broken
plugins, name clashes, helpful errors, and lifecycle hooks."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from gridmap_core import (
    BackendSpec,
    ConfigError,
    GridMapExecutor,
    Job,
    JobException,
    PluginLoadError,
    UnknownPluginError,
    cli,
    get_plugin_manager,
    grid_map,
    hookimpl,
    process_jobs,
)
from gridmap_core.plugins import manager as plugins
from gridmap_core.plugins.manager import PluginManager
from tests.support.distributions import install
from tests.support.jobs import double, fail_on

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass

# A map that never ends (a job never reported) fails here, not after minutes.
pytestmark = pytest.mark.timeout(60)

# A third party's backend: runs every job in a thread of the submitting process, and
# records what it was asked to do, so a test can prove the jobs went through it.
INLINE_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "gridmap-inline"
version = "0.3.1"
description = "Runs gridmap jobs in a thread of the submitting process."
dependencies = ["gridmap"]

[project.entry-points.gridmap]
inline = "gridmap_inline.plugin"

[tool.setuptools]
packages = ["gridmap_inline"]
"""

INLINE_PLUGIN = """\
from gridmap_core import BackendSpec, hookimpl


@hookimpl
def gridmap_backends():
    return [BackendSpec("inline", "gridmap_inline.backend:InlineBackend",
                        "a thread of the submitting process", priority=-5,
                        is_cluster=False, options=("flavour",))]
"""

INLINE_BACKEND = """\
import threading
import traceback

from gridmap_core import Availability, Failure

CALLS = []      # (job name, arguments) of every job run
SESSIONS = []   # every session opened


class InlineBackend:
    def availability(self):
        return Availability(True, "always")

    def check(self, spec):
        pass

    def open(self, options):
        session = InlineSession(options)
        SESSIONS.append(session)
        return session


class InlineSession:
    def __init__(self, options):
        self.options = dict(options.options)
        self.settings = options.settings
        self.threads = []
        self.closed = False

    def submit(self, batch):
        thread = threading.Thread(target=self._run, args=(batch,))
        thread.start()
        self.threads.append(thread)

    def _run(self, batch):
        for index in batch.sink.claim(0, len(batch)):
            CALLS.append((batch.spec.name, list(batch.args[index])))
            kwargs = batch.kwargs[index] if batch.kwargs else {}
            try:
                value = batch.spec.function(*batch.args[index], **kwargs)
            except Exception as error:
                batch.sink.failed(index, Failure(error, traceback.format_exc(), "inline-host"))
            else:
                batch.sink.succeeded([index], [value], "inline-host")

    def close(self, cancel=False):
        self.closed = True
        for thread in self.threads:
            thread.join()
"""


def make_project(root: Path, pyproject: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def simple_project(tmp: Path, dist: str, entry_point: str, module: str, source: str) -> Path:
    """A one-module distribution with one ``gridmap`` entry point."""
    pyproject = textwrap.dedent(f"""\
        [project]
        name = "{dist}"
        version = "1.0"

        [project.entry-points.gridmap]
        {entry_point} = "{module}.plugin"

        [tool.setuptools]
        packages = ["{module}"]
        """)
    return make_project(
        tmp / dist, pyproject, {f"{module}/__init__.py": "", f"{module}/plugin.py": source}
    )


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test builds its own process-wide plugin manager from the entry points it
    can see; the real one comes back afterwards, so nothing leaks between tests."""
    monkeypatch.setattr(plugins, "_manager", None)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path to install distributions into, forgotten afterwards."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(path)):
            del sys.modules[name]


@pytest.fixture
def inline(site: Path, tmp_path: Path) -> Path:
    """The third-party ``gridmap-inline`` distribution, installed into ``site``."""
    project = make_project(
        tmp_path / "gridmap-inline",
        INLINE_PYPROJECT,
        {
            "gridmap_inline/__init__.py": '"""gridmap backend in a thread."""\n',
            "gridmap_inline/plugin.py": INLINE_PLUGIN,
            "gridmap_inline/backend.py": INLINE_BACKEND,
        },
    )
    install(project, site)
    return site


def inline_module() -> Any:
    return sys.modules["gridmap_inline.backend"]


# -- a third-party backend --------------------------------------------------------------


def test_third_party_backend_is_found_through_its_entry_point(inline: Path) -> None:
    found = {ep.name: ep for ep in entry_points(group="gridmap")}
    assert found["inline"].value == "gridmap_inline.plugin"
    assert found["inline"].dist is not None and found["inline"].dist.name == "gridmap-inline"

    manager = PluginManager()
    manager.load_entry_points()
    backends = manager.backends()
    assert {"inline", "local"} <= set(backends)
    assert backends["inline"].description == "a thread of the submitting process"
    assert manager.distribution_of("inline", "backend") == ("gridmap-inline", "0.3.1")
    # The factory is a dotted path: the backend module waits until it is used.
    assert "gridmap_inline.plugin" in sys.modules
    assert "gridmap_inline.backend" not in sys.modules


def test_grid_map_runs_jobs_through_the_third_party_backend(inline: Path, in_tmp: Path) -> None:
    assert grid_map(double, [1, 2, 3], backend="inline", name="twice") == [2, 4, 6]
    backend = inline_module()
    assert sorted(backend.CALLS) == [("twice", [1]), ("twice", [2]), ("twice", [3])]
    assert len(backend.SESSIONS) == 1 and backend.SESSIONS[0].closed

    jobs = [Job(fail_on, [x], name=f"job{x}") for x in (1, 3)]
    with pytest.raises(JobException) as caught:
        process_jobs(jobs, backend="inline")
    assert [job.name for job in caught.value.jobs] == ["job3"]
    assert [job.host_name for job in jobs] == ["inline-host", "inline-host"]
    assert [job.backend for job in jobs] == ["inline", "inline"]
    assert jobs[0].ret == 1
    assert isinstance(jobs[1].ret, ValueError) and "bad input 3" in (jobs[1].traceback or "")


def test_an_executor_takes_a_fresh_plugin_manager(inline: Path, in_tmp: Path) -> None:
    manager = PluginManager()
    manager.load_entry_points()
    with GridMapExecutor("inline", plugin_manager=manager) as executor:
        assert executor.backend_name == "inline"
        assert list(executor.map(double, [5, 6])) == [10, 12]
    assert sorted(args for _, args in inline_module().CALLS) == [[5], [6]]
    assert plugins._manager is None  # the global manager was never built


def test_config_file_selects_the_backend(inline: Path, in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text('backend = "inline"\n')
    assert grid_map(double, [4]) == [8]
    assert inline_module().CALLS == [("gridmap_job", [4])]


def test_backend_section_options_reach_the_session(
    inline: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = in_tmp / "site.toml"
    config.write_text('num_resubmits = 5\n[backends.inline]\nflavour = "mint"\nnum_resubmits = 1\n')
    monkeypatch.setenv("GRIDMAP_CONFIG", str(config))
    assert grid_map(double, [1], backend="inline") == [2]
    session = inline_module().SESSIONS[0]
    assert session.options == {"flavour": "mint"}  # general settings stay out of options
    assert session.settings["NUM_RESUBMITS"] == 1
    assert "[backends.inline]" in session.settings.sources["NUM_RESUBMITS"]


def test_one_config_file_selects_and_configures_the_backend(inline: Path, in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text(
        'backend = "inline"\n[backends.inline]\n'
        'flavour = "lime"\n[backends.local]\n'
        'flavour = "ignored: not the chosen backend"\n'
    )
    assert grid_map(double, [1]) == [2]
    assert inline_module().SESSIONS[0].options == {"flavour": "lime"}


def test_undeclared_backend_option_is_an_error(
    inline: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = in_tmp / "site.toml"
    config.write_text('[backends.inline]\ncolour = "red"\n')
    monkeypatch.setenv("GRIDMAP_CONFIG", str(config))
    with pytest.raises(ConfigError) as caught:
        grid_map(double, [1], backend="inline")
    message = str(caught.value)
    assert "'colour'" in message and "'inline'" in message and str(config) in message
    assert "flavour" in message  # what it would accept


SELECTED_SCRIPT = """\
import json, sys
from gridmap_core import grid_map

def triple(x):
    return 3 * x

results = grid_map(triple, [1, 2, 3])
backend = sys.modules.get("gridmap_inline.backend")
print(json.dumps({"results": results, "calls": getattr(backend, "CALLS", None)}))
"""


@pytest.mark.parametrize("chosen", ["inline", None])
def test_environment_variable_selects_the_backend_in_a_new_process(
    inline: Path, tmp_path: Path, chosen: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRIDMAP_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(inline), env.get("PYTHONPATH", "")])
    if chosen:
        env["GRIDMAP_BACKEND"] = chosen
    result = subprocess.run(
        [sys.executable, "-c", SELECTED_SCRIPT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["results"] == [3, 6, 9]
    if chosen:
        assert sorted(out["calls"]) == [
            ["gridmap_job", [1]],
            ["gridmap_job", [2]],
            ["gridmap_job", [3]],
        ]
    else:  # the control: with no choice, the higher-priority local backend runs them
        assert out["calls"] is None


# -- broken and clashing plugins -------------------------------------------------------

BROKEN_PLUGIN = 'raise ImportError("libbroken.so.1: cannot open shared object file")\n'


def test_a_plugin_that_fails_to_import_breaks_only_itself(
    inline: Path, tmp_path: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(
        simple_project(tmp_path, "gridmap-broken", "broken", "gridmap_broken", BROKEN_PLUGIN),
        inline,
    )
    manager = get_plugin_manager()
    assert {"local", "inline"} <= set(manager.backends())
    package, error = manager.broken["broken"]
    assert package == "gridmap-broken" and isinstance(error, ImportError)

    assert grid_map(double, [1, 2], backend="local") == [2, 4]
    assert grid_map(double, [1, 2], backend="inline") == [2, 4]

    assert cli.main(["backends"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^local\s", listing, re.M) and re.search(r"^inline\s", listing, re.M)
    assert re.search(r"^broken\s+gridmap-broken\s+broken\b", listing, re.M)
    assert "libbroken.so.1" in listing

    with pytest.raises(PluginLoadError) as caught:
        grid_map(double, [1], backend="broken")
    message = str(caught.value)
    assert "'broken'" in message and "'gridmap-broken'" in message
    assert "ImportError: libbroken.so.1" in message


def test_a_backend_whose_module_fails_to_import_names_the_backend() -> None:
    spec = BackendSpec("ghost", "gridmap_no_such_module_here:Backend", "never there")
    with pytest.raises(
        PluginLoadError,
        match=r"backend 'ghost' could not be loaded from "
        r"'gridmap_no_such_module_here:Backend': ModuleNotFoundError",
    ):
        spec.create()


@pytest.mark.parametrize(
    "where, expected",
    [
        ("argument", "argument backend"),
        ("environment", "environment variable GRIDMAP_BACKEND"),
        ("file", "gridmap.toml"),
        ("named file", "chosen.toml"),
    ],
)
def test_unknown_backend_error_says_what_where_and_what_is_installed(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, where: str, expected: str
) -> None:
    backend = None
    if where == "argument":
        backend = "nosuch"
    elif where == "environment":
        monkeypatch.setenv("GRIDMAP_BACKEND", "nosuch")
    elif where == "file":
        (in_tmp / "gridmap.toml").write_text('backend = "nosuch"\n')
        expected = str(Path.cwd() / "gridmap.toml")
    else:
        (in_tmp / "chosen.toml").write_text('backend = "nosuch"\n')
        monkeypatch.setenv("GRIDMAP_CONFIG", str(in_tmp / "chosen.toml"))
        expected = str(in_tmp / "chosen.toml")
    with pytest.raises(UnknownPluginError) as caught:
        grid_map(double, [1], backend=backend)
    message = str(caught.value)
    assert "'nosuch'" in message
    assert expected in message
    assert re.search(r"Installed backends: [^.]*\blocal\b", message)


class Offers:
    """An in-process plugin offering the given backend specs."""

    def __init__(self, *specs: Any) -> None:
        self.specs = list(specs)

    @hookimpl
    def gridmap_backends(self) -> list[Any]:
        return self.specs


def test_two_plugins_registering_one_name_is_an_error_naming_both() -> None:
    manager = get_plugin_manager()
    manager.register(Offers(BackendSpec("twin", "a.b:C", "first")), name="plugin_one")
    manager.register(Offers(BackendSpec("twin", "d.e:F", "second")), name="plugin_two")
    try:
        with pytest.raises(ValueError, match=r"'twin' is registered twice") as caught:
            manager.backends()
        assert "'plugin_one'" in str(caught.value) and "'plugin_two'" in str(caught.value)
    finally:
        manager.unregister(name="plugin_one")
        manager.unregister(name="plugin_two")
    assert "twin" not in manager.backends()


def test_two_packages_registering_one_name_is_an_error_naming_both(
    site: Path, tmp_path: Path
) -> None:
    for letter in "ab":
        source = (
            "from gridmap_core import BackendSpec, hookimpl\n@hookimpl\n"
            "def gridmap_backends():\n"
            f"    return [BackendSpec('twin', 'x.y:Z', 'from {letter}')]\n"
        )
        install(
            simple_project(
                tmp_path,
                f"gridmap-twin-{letter}",
                f"twin_{letter}",
                f"gridmap_twin_{letter}",
                source,
            ),
            site,
        )
    manager = get_plugin_manager()
    with pytest.raises(ValueError, match="registered twice") as caught:
        grid_map(double, [1], backend="twin")
    assert "'twin_a'" in str(caught.value) and "'twin_b'" in str(caught.value)
    assert set(manager.broken) == set()


def test_a_hook_returning_something_else_is_an_error_naming_the_plugin() -> None:
    manager = get_plugin_manager()
    manager.register(Offers("not a spec"), name="sloppy")
    try:
        with pytest.raises(
            TypeError,
            match=r"plugin 'sloppy': gridmap_backends must return "
            r"BackendSpec objects, not str",
        ):
            manager.backends()
    finally:
        manager.unregister(name="sloppy")


# -- BackendSpec validation -------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Local", "9lives", "with-dash", "has space", None, 7])
def test_backend_spec_rejects_a_bad_name(name: Any) -> None:
    with pytest.raises(ValueError, match=r"name .* must be lower case letters, digits and '_'"):
        BackendSpec(name, "pkg.mod:Backend", "a backend")


@pytest.mark.parametrize(
    "factory",
    ["pkg.mod", "pkg.mod:", ":Backend", "pkg.mod:Backend()", "pkg-mod:Backend", "pkg.mod:Back end"],
)
def test_backend_spec_rejects_a_bad_factory_path(factory: str) -> None:
    with pytest.raises(
        ValueError,
        match=r"backend 'pbs': factory .* must be "
        r"'package\.module:Name'",
    ):
        BackendSpec("pbs", factory, "a backend")


@pytest.mark.parametrize("factory", [42, None, ["pkg.mod:Backend"]])
def test_backend_spec_rejects_a_factory_that_is_neither_path_nor_callable(factory: Any) -> None:
    with pytest.raises(ValueError, match="factory must be callable or a dotted path"):
        BackendSpec("pbs", factory, "a backend")


@pytest.mark.parametrize("description", ["", None])
def test_backend_spec_needs_a_description(description: Any) -> None:
    with pytest.raises(ValueError, match="backend 'pbs': give a one-line description"):
        BackendSpec("pbs", "pkg.mod:Backend", description)


def test_backend_spec_accepts_good_values() -> None:
    spec = BackendSpec("pbs_2", "gridmap_pbs.backend:PBSBackend", "PBS via qsub")
    assert (spec.priority, spec.is_cluster, spec.options) == (0, True, ())
    assert BackendSpec("direct", dict, "a callable factory").create() == {}


# -- lifecycle hooks --------------------------------------------------------------------


class Recorder:
    """Records every lifecycle event it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @hookimpl
    def gridmap_job_submitted(self, job: Job) -> None:
        self.events.append(("submitted", job.name))

    @hookimpl
    def gridmap_job_started(self, job: Job) -> None:
        self.events.append(("started", job.name))

    @hookimpl
    def gridmap_job_finished(self, job: Job) -> None:
        self.events.append(("finished", job.name, job.ret))

    @hookimpl
    def gridmap_job_failed(self, job: Job) -> None:
        self.events.append(
            ("failed", job.name, type(job.ret).__name__, "bad input 3" in (job.traceback or ""))
        )

    @hookimpl
    def gridmap_job_died(self, job: Job) -> None:
        self.events.append(("died", job.name))

    @hookimpl
    def gridmap_map_finished(self, jobs: list[Job], summary: dict[str, Any]) -> None:
        self.events.append(("map_finished", sorted(job.name for job in jobs), summary))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return sorted((e[1:] for e in self.events if e[0] == kind), key=repr)


class Raiser:
    """An observer that fails on every event."""

    @hookimpl
    def gridmap_job_submitted(self, job: Job) -> None:
        raise RuntimeError("observer failed")

    @hookimpl
    def gridmap_job_started(self, job: Job) -> None:
        raise RuntimeError("observer failed")

    @hookimpl
    def gridmap_job_finished(self, job: Job) -> None:
        raise RuntimeError("observer failed")

    @hookimpl
    def gridmap_job_failed(self, job: Job) -> None:
        raise RuntimeError("observer failed")

    @hookimpl
    def gridmap_map_finished(self, jobs: list[Job], summary: dict[str, Any]) -> None:
        raise RuntimeError("observer failed")


def test_observer_sees_every_event_of_a_map_with_a_failing_job(in_tmp: Path) -> None:
    recorder = Recorder()
    manager = get_plugin_manager()
    manager.register(recorder, name="recorder")
    try:
        jobs = [Job(fail_on, [x], name=f"job{x}") for x in (1, 2, 3)]
        with pytest.raises(JobException):
            process_jobs(jobs, backend="local", max_processes=2)
    finally:
        manager.unregister(name="recorder")
    names = [("job1",), ("job2",), ("job3",)]
    assert recorder.of("submitted") == names
    assert recorder.of("started") == names
    assert recorder.of("finished") == [("job1", 1), ("job2", 2)]
    assert recorder.of("failed") == [("job3", "ValueError", True)]
    assert recorder.of("died") == []
    [(jobs_seen, summary)] = recorder.of("map_finished")
    assert jobs_seen == ["job1", "job2", "job3"]
    assert {k: summary[k] for k in ("backend", "total", "succeeded", "failed")} == {
        "backend": "local",
        "total": 3,
        "succeeded": 2,
        "failed": 1,
    }
    assert summary["wall_time"] >= 0 and summary["completion_mail"] is False
    assert recorder.events[-1][0] == "map_finished"  # the last word


def test_grid_map_tells_observers_about_its_jobs(in_tmp: Path) -> None:
    recorder = Recorder()
    manager = get_plugin_manager()
    manager.register(recorder, name="recorder")
    try:
        with pytest.raises(JobException):
            grid_map(fail_on, [2, 3], backend="local", name="gm", completion_mail=True)
    finally:
        manager.unregister(name="recorder")
    assert recorder.of("finished") == [("gm0", 2)]
    assert recorder.of("failed") == [("gm1", "ValueError", True)]
    [(_, summary)] = recorder.of("map_finished")
    assert (summary["total"], summary["failed"]) == (2, 1)
    assert summary["completion_mail"] is True


def test_map_finished_names_the_map_whether_or_not_jobs_are_observed(in_tmp: Path) -> None:
    recorder = Recorder()
    manager = get_plugin_manager()
    manager.register(recorder, name="recorder")
    try:
        grid_map(double, [1, 2], backend="local", name="gm")
    finally:
        manager.unregister(name="recorder")
    [(_, summary)] = recorder.of("map_finished")
    assert summary["name"] == "gm"


def test_an_observer_that_raises_does_not_fail_the_map(
    in_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = get_plugin_manager()
    manager.register(Raiser(), name="raiser")
    try:
        with caplog.at_level(logging.ERROR, logger="gridmap_core"):
            jobs = [Job(double, [x], name=f"job{x}") for x in (1, 2)]
            assert process_jobs(jobs, backend="local") == [2, 4]
            assert grid_map(double, [3], backend="local") == [6]
            with pytest.raises(JobException) as caught:  # still the job's error, not ours
                grid_map(fail_on, [3], backend="local")
            assert "bad input 3" in str(caught.value)
    finally:
        manager.unregister(name="raiser")
    assert "a gridmap plugin failed in gridmap_map_finished" in caplog.text


# -- one broken plugin or observer never harms the rest ------------------------------


def test_an_observer_that_raises_does_not_silence_the_others(in_tmp: Path) -> None:
    recorder = Recorder()
    manager = get_plugin_manager()
    # Raisers on both sides, so whichever order pluggy calls them in, one comes first.
    manager.register(Raiser(), name="raiser_before")
    manager.register(recorder, name="recorder")
    manager.register(Raiser(), name="raiser_after")
    try:
        assert grid_map(double, [1, 2], backend="local", name="j") == [2, 4]
    finally:
        for name in ("raiser_before", "recorder", "raiser_after"):
            manager.unregister(name=name)
    assert recorder.of("finished") == [("j0", 2), ("j1", 4)]
    assert len(recorder.of("map_finished")) == 1


class ExplodingRegistry:
    @hookimpl
    def gridmap_backends(self) -> list[Any]:
        raise RuntimeError("cannot read /etc/pbs.conf")


def test_a_plugin_whose_gridmap_backends_raises_breaks_only_itself(in_tmp: Path) -> None:
    manager = get_plugin_manager()
    manager.register(ExplodingRegistry(), name="exploding")
    try:
        assert grid_map(double, [1], backend="local") == [2]
    finally:
        manager.unregister(name="exploding")


def test_a_plugin_with_a_bad_hook_signature_breaks_only_itself(
    site: Path, tmp_path: Path, in_tmp: Path
) -> None:
    source = (
        "from gridmap_core import hookimpl\n@hookimpl\ndef gridmap_job_failed(jobb):\n    pass\n"
    )
    install(simple_project(tmp_path, "gridmap-badsig", "badsig", "gridmap_badsig", source), site)
    manager = get_plugin_manager()
    assert "local" in manager.backends()
    assert manager.broken["badsig"][0] == "gridmap-badsig"
    assert grid_map(double, [1], backend="local") == [2]


def test_two_packages_with_one_entry_point_name_are_reported(site: Path, tmp_path: Path) -> None:
    for letter in "ab":
        source = (
            "from gridmap_core import BackendSpec, hookimpl\n@hookimpl\n"
            "def gridmap_backends():\n"
            f"    return [BackendSpec('dup', 'x.y:Z', 'from {letter}')]\n"
        )
        install(
            simple_project(
                tmp_path, f"gridmap-dup-{letter}", "dup", f"gridmap_dup_{letter}", source
            ),
            site,
        )
    assert sorted(ep.dist.name for ep in entry_points(group="gridmap", name="dup") if ep.dist) == [
        "gridmap-dup-a",
        "gridmap-dup-b",
    ]
    with pytest.raises(ValueError) as caught:
        get_plugin_manager().backends()
    assert "gridmap-dup-a" in str(caught.value) and "gridmap-dup-b" in str(caught.value)


def test_unknown_name_error_mentions_plugins_that_failed_to_load(
    site: Path, tmp_path: Path, in_tmp: Path
) -> None:
    install(
        simple_project(
            tmp_path,
            "gridmap-pbs",
            "gridmap_pbs",
            "gridmap_pbs",
            'raise ImportError("libpbs.so: cannot open shared object")\n',
        ),
        site,
    )
    with pytest.raises(LookupError) as caught:
        grid_map(double, [1], backend="pbs")
    assert "gridmap-pbs" in str(caught.value) and "libpbs.so" in str(caught.value)


def test_observers_hear_how_executor_submitted_jobs_end(in_tmp: Path) -> None:
    recorder = Recorder()
    manager = get_plugin_manager()
    manager.register(recorder, name="recorder")
    try:
        with GridMapExecutor("local", name="fut") as executor:
            assert executor.submit(double, 4).result() == 8
            with pytest.raises(ValueError):
                executor.submit(fail_on, 3).result()
    finally:
        manager.unregister(name="recorder")
    assert recorder.of("submitted") == [("fut",), ("fut",)]
    assert recorder.of("finished") == [("fut", 8)]
    assert recorder.of("failed") == [("fut", "ValueError", True)]


class ClaimsAtOnce:
    """A backend whose scheduler starts jobs the moment they are submitted."""

    @hookimpl
    def gridmap_backends(self) -> list[BackendSpec]:
        return [BackendSpec("eager", ClaimsAtOnce, "starts jobs on submit", is_cluster=False)]

    def availability(self) -> Any:
        from gridmap_core import Availability

        return Availability(True)

    def check(self, spec: Any) -> None:
        pass

    def open(self, options: Any) -> ClaimsAtOnce:
        return self

    def submit(self, batch: Any) -> None:
        indices = batch.sink.claim(0, len(batch))
        batch.sink.succeeded(
            indices, [batch.spec.function(*batch.args[i]) for i in indices], "here"
        )

    def close(self, cancel: bool = False) -> None:
        pass


def test_observers_hear_submitted_before_started(in_tmp: Path) -> None:
    recorder = Recorder()
    manager = get_plugin_manager()
    manager.register(ClaimsAtOnce(), name="eager")
    manager.register(recorder, name="recorder")
    try:
        assert grid_map(double, [1], backend="eager", name="e") == [2]
    finally:
        manager.unregister(name="eager")
        manager.unregister(name="recorder")
    kinds = [event[0] for event in recorder.events]
    assert kinds.index("submitted") < kinds.index("started")
