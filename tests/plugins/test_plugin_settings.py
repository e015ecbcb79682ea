"""Settings and options a plugin declares in its contribution: read with the core's
precedence (argument > environment > files > default), said where they came from, shown
by `gridmap config`, and checked with errors that say what to do. A third party gets
all of it by declaring them; the built-in plugins declare theirs the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridmap_core import (
    BackendSpec,
    ConfigError,
    GridMapExecutor,
    NotifierSpec,
    Option,
    Setting,
    hookimpl,
    load_settings,
)
from gridmap_core.model.config import SETTINGS
from gridmap_core.model.setting import choice, count
from gridmap_core.plugins import manager as plugins
from gridmap_core.plugins.manager import PluginManager, get_plugin_manager
from tests import PROJECT_ROOT
from tests.support.distributions import install
from tests.support.jobs import double

ROOT = PROJECT_ROOT

# A third party's notifier, which declares two settings of its own and records what
# it was made with.
SHOUT_PYPROJECT = """\
[project]
name = "gridmap-shout"
version = "2.0"

[project.entry-points.gridmap]
shout = "gridmap_shout.plugin"

[tool.setuptools]
packages = ["gridmap_shout"]
"""

SHOUT_PLUGIN = """\
from gridmap_core import NotifierSpec, Setting, hookimpl

SETTINGS = (
    Setting("SHOUT_PREFIX", str, ">>", "what every shouted line starts with",
            env="GRIDMAP_SHOUT_PREFIX"),
    Setting("SHOUT_TIMES", int, 1, "how many times each line is shouted"),
)
MADE = []


class Shout:
    def __init__(self, settings):
        self.prefix = settings["SHOUT_PREFIX"]
        self.times = settings["SHOUT_TIMES"]
        self.source = settings.sources["SHOUT_PREFIX"]
        MADE.append(self)


@hookimpl
def gridmap_notifiers():
    return [NotifierSpec("shout", Shout, "shouts about jobs", settings=SETTINGS)]
"""


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process-wide plugin manager built afresh from the entry points in sight."""
    monkeypatch.setattr(plugins, "_manager", None)


@pytest.fixture
def shout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
          ) -> Iterator[Path]:
    """``gridmap-shout`` installed into a directory on sys.path, forgotten afterwards."""
    project = tmp_path / "gridmap-shout"
    (project / "gridmap_shout").mkdir(parents=True)
    (project / "pyproject.toml").write_text(SHOUT_PYPROJECT)
    (project / "gridmap_shout" / "__init__.py").write_text("")
    (project / "gridmap_shout" / "plugin.py").write_text(SHOUT_PLUGIN)
    site = tmp_path / "site"
    site.mkdir()
    install(project, site)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [n for n in sys.modules if n.split(".")[0] == "gridmap_shout"]:
        del sys.modules[name]


def gridmap_config(*args: str, cwd: Path, site: Path, env: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), str(ROOT)])
    return subprocess.run([sys.executable, "-m", "gridmap_core.cli", "config", *args],
                          cwd=cwd, env={**os.environ, "PYTHONPATH": path, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def rows(stdout: str) -> dict[str, str]:
    return {line.split(" = ")[0].strip(): line for line in stdout.splitlines()
            if " = " in line}


# -- a third party's settings ----------------------------------------------------------


def test_a_plugin_setting_is_read_with_the_cores_precedence_and_provenance(
        shout: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings["SHOUT_PREFIX"] == ">>" and settings.sources["SHOUT_PREFIX"] == "default"
    assert settings.shout_times == 1

    (in_tmp / "gridmap.toml").write_text("shout_prefix = 'file:'\nshout_times = 3\n")
    settings = load_settings()
    assert settings["SHOUT_PREFIX"] == "file:" and settings["SHOUT_TIMES"] == 3
    assert settings.sources["SHOUT_PREFIX"] == f"{in_tmp / 'gridmap.toml'}, key 'shout_prefix'"

    monkeypatch.setenv("GRIDMAP_SHOUT_PREFIX", "env:")
    settings = load_settings()
    assert settings["SHOUT_PREFIX"] == "env:"
    assert settings.sources["SHOUT_PREFIX"] == "environment variable GRIDMAP_SHOUT_PREFIX"
    assert settings["SHOUT_TIMES"] == 3  # still the file's

    settings = load_settings({"shout_prefix": "arg:"})
    assert settings["SHOUT_PREFIX"] == "arg:"
    assert settings.sources["SHOUT_PREFIX"] == "argument shout_prefix"


def test_a_bad_value_of_a_plugin_setting_says_where_and_what_is_expected(
        shout: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (in_tmp / "gridmap.toml").write_text("shout_times = 'often'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "'shout_times'" in str(caught.value) and "whole number" in str(caught.value)
    (in_tmp / "gridmap.toml").write_text("shout_volume = 11\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "unknown key 'shout_volume'" in str(caught.value)
    assert "shout_prefix" in str(caught.value)  # the plugin's keys are accepted ones


def test_gridmap_config_shows_a_third_party_setting_from_environment_and_file(
        shout: Path, in_tmp: Path) -> None:
    done = gridmap_config(cwd=in_tmp, site=shout)
    assert done.returncode == 0, done.stderr
    assert "# settings of notifier shout (package gridmap-shout):" in done.stdout
    shown = rows(done.stdout)
    assert "'>>'" in shown["SHOUT_PREFIX"] and shown["SHOUT_PREFIX"].endswith("# default")

    (in_tmp / "gridmap.toml").write_text("shout_prefix = 'file:'\nshout_times = 2\n")
    done = gridmap_config(cwd=in_tmp, site=shout, env={"GRIDMAP_SHOUT_PREFIX": "env:"})
    assert done.returncode == 0, done.stderr
    shown = rows(done.stdout)
    assert "'env:'" in shown["SHOUT_PREFIX"]
    assert shown["SHOUT_PREFIX"].endswith("# environment variable GRIDMAP_SHOUT_PREFIX")
    assert shown["SHOUT_TIMES"].endswith(f"# {in_tmp / 'gridmap.toml'}, key 'shout_times'")
    # The columns of the plugin's rows line up with the core's.
    assert len({line.index(" = ") for line in shown.values()}) == 1


def test_a_notifier_reads_the_settings_it_declares(shout: Path, in_tmp: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDMAP_SHOUT_PREFIX", "!!")
    with GridMapExecutor("local", settings={"NOTIFIERS": "shout", "SHOUT_TIMES": 2}):
        pass
    [made] = sys.modules["gridmap_shout.plugin"].MADE
    assert (made.prefix, made.times) == ("!!", 2)
    assert made.source == "environment variable GRIDMAP_SHOUT_PREFIX"


# -- the built-in plugins' settings ----------------------------------------------------


def test_the_built_in_plugins_declare_their_own_settings() -> None:
    declared = get_plugin_manager().declared_settings()
    owners = {name: owner for name, (_, owner) in declared.items()}
    assert {name: owners[name] for name in ("USE_MEM_FREE", "MONITOR_ADDRESS",
                                            "MONITOR_INTERFACE", "MONITOR_PORTS",
                                            "SMTP_SERVER", "SMTP_PASSWORD")} == {
        "USE_MEM_FREE": "backend sge", "MONITOR_ADDRESS": "transport zmq",
        "MONITOR_INTERFACE": "transport zmq", "MONITOR_PORTS": "transport zmq",
        "SMTP_SERVER": "notifier email", "SMTP_PASSWORD": "notifier email"}
    assert not set(owners) & set(SETTINGS)  # none of them is the core's
    # Their variables, defaults and secrecy are as they were.
    assert declared["MONITOR_PORTS"][0].env_var == "GRIDMAP_MONITOR_PORTS"
    assert declared["USE_MEM_FREE"][0].env_var == "USE_MEM_FREE"
    assert declared["SMTP_PASSWORD"][0].secret


def test_the_original_settings_read_without_a_map(tmp_path: Path) -> None:
    """``import gridmap`` (in a job on a node, say) reads the settings plugins own from
    the environment as it did when the core declared them."""
    code = ("import gridmap\n"
            "assert gridmap.USE_MEM_FREE is True, gridmap.USE_MEM_FREE\n"
            "assert gridmap.SMTP_SERVER == 'mail.example.org', gridmap.SMTP_SERVER\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "USE_MEM_FREE": "yes",
                               "SMTP_SERVER": "mail.example.org"})
    assert done.returncode == 0, done.stderr


def test_the_original_use_mem_free_reads_without_the_sge_backend(tmp_path: Path) -> None:
    """Where no installed plugin declares USE_MEM_FREE, ``gridmap.USE_MEM_FREE`` still
    reads its variable, with the original's default."""
    code = ("import gridmap_core.model.config as config\n"
            "declared = config.plugin_settings\n"
            "config.plugin_settings = lambda: {  # as if gridmap-sge were not installed\n"
            "    name: s for name, s in declared().items() if name != 'USE_MEM_FREE'}\n"
            "import gridmap\n"
            "print(gridmap.USE_MEM_FREE)\n")
    for value, expected in (("1", "True"), (None, "False")):
        env = {k: v for k, v in os.environ.items() if k != "USE_MEM_FREE"}
        if value is not None:
            env["USE_MEM_FREE"] = value
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env={**env, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


def test_a_fresh_plugin_manager_reads_a_map_without_the_process_wide_one(
        fresh_plugins: None, in_tmp: Path) -> None:
    manager = PluginManager()
    manager.load_entry_points()
    with GridMapExecutor("local", plugin_manager=manager,
                         settings={"NOTIFIERS": "email", "SEND_ERROR_MAIL": True}) as executor:
        assert list(executor.map(double, [1])) == [2]
    assert plugins._manager is None


class Twice:
    def __init__(self, first: Setting, second: Setting) -> None:
        self.first, self.second = first, second

    @hookimpl
    def gridmap_notifiers(self) -> list[NotifierSpec]:
        return [NotifierSpec("one", "x.y:Z", "one", settings=(self.first,)),
                NotifierSpec("two", "x.y:Z", "two", settings=(self.second,))]


def test_a_setting_declared_twice_differently_names_both() -> None:
    manager = PluginManager()
    manager.register(Twice(Setting("SAME", str, "a", "one's"),
                           Setting("SAME", str, "b", "two's")), name="twice")
    with pytest.raises(ConfigError, match="'SAME' is declared twice: by notifier one and "
                                          "by notifier two"):
        manager.declared_settings()


def test_a_plugin_may_not_declare_a_core_setting() -> None:
    manager = PluginManager()
    manager.register(Twice(Setting("NUM_RESUBMITS", int, 1, "mine"),
                           Setting("OTHER", str, "", "other")), name="twice")
    with pytest.raises(ConfigError, match="declares the setting 'NUM_RESUBMITS', which is "
                                          "gridmap's own"):
        manager.declared_settings()


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "lower"}, "upper case"),
    ({"help": ""}, "one-line help"),
    ({"type": list}, "must be bool, int, float, str or a converter"),
])
def test_a_setting_is_checked_when_declared(fields: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"name": "GOOD", "type": str, "default": "", "help": "h",
                                 **fields}
    with pytest.raises(ValueError, match=message):
        Setting(**arguments)


# -- a backend's typed options ----------------------------------------------------------

OPTIONS = (Option("workers", count, 2, "how many"),
           Option("flavour", choice("mint", "lime"), "mint", "which"),
           Option("note", str, help="no default: absent unless given"))


def test_options_are_converted_and_their_defaults_filled(in_tmp: Path) -> None:
    settings = load_settings()
    assert settings.checked_backend_options("mine", OPTIONS) == {"workers": 2,
                                                                 "flavour": "mint"}
    (in_tmp / "gridmap.toml").write_text("[backends.mine]\nworkers = '4'\nflavour = 'LIME'\n")
    assert load_settings().checked_backend_options("mine", OPTIONS, {"note": "hi"}) == {
        "workers": 4, "flavour": "lime", "note": "hi"}


def test_a_bad_option_names_option_section_expectation_and_what_to_do(in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text("[backends.mine]\nworkers = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings().checked_backend_options("mine", OPTIONS)
    message = str(caught.value)
    assert message.startswith(f"{in_tmp / 'gridmap.toml'} [backends.mine]: workers = 0 ")
    assert "option 'workers' of backend 'mine'" in message
    assert "expected a whole number of at least 1" in message
    assert "Correct it in the [backends.mine] section of that file, or leave it out for the " \
           "default (2)" in message
    (in_tmp / "gridmap.toml").unlink()
    with pytest.raises(ConfigError) as caught:
        load_settings().checked_backend_options("mine", OPTIONS, {"flavour": "cherry"})
    assert "argument backend_options: flavour = 'cherry'" in str(caught.value)
    assert "one of 'mint', 'lime'" in str(caught.value)
    assert "Correct it in backend_options=" in str(caught.value)


def test_a_plugin_setting_in_a_backend_section_is_a_setting_not_an_option(
        in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text("use_mem_free = false\n[backends.sge]\n"
                                         "use_mem_free = true\nmax_running = 3\n")
    settings = load_settings().for_backend("sge")
    assert settings["USE_MEM_FREE"] is True
    assert "[backends.sge]" in settings.sources["USE_MEM_FREE"]
    spec = get_plugin_manager().backends()["sge"]
    assert settings.checked_backend_options("sge", spec.options)["max_running"] == 3


@pytest.mark.parametrize("backend", ["sge", "slurm"])
def test_a_clusters_max_running_is_checked_by_the_core(backend: str, in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text(f"[backends.{backend}]\nmax_running = -1\n")
    spec = get_plugin_manager().backends()[backend]
    with pytest.raises(ConfigError, match=rf"\[backends.{backend}\]: max_running = -1 .*"
                                          "a whole number of at least 1"):
        load_settings().checked_backend_options(backend, spec.options)


def test_a_bad_option_stops_a_map_before_anything_is_submitted(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match="option 'mode' of backend 'local'"):
        GridMapExecutor("local", backend_options={"mode": "threads"})


def test_gridmap_config_shows_every_option_of_the_chosen_backend(in_tmp: Path) -> None:
    (in_tmp / "gridmap.toml").write_text("[backends.local]\nstart_method = 'spawn'\n")
    done = subprocess.run([sys.executable, "-m", "gridmap_core.cli", "config", "--backend",
                           "local"], cwd=in_tmp, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    shown = rows(done.stdout)
    assert "# options of backend local:" in done.stdout
    assert "'spawn'" in shown["local.start_method"] and "[backends.local]" in \
        shown["local.start_method"]
    assert shown["local.mode"].split(" = ")[1].split("#")[0].strip() == "'workers'"
    assert shown["local.mode"].endswith("# default")


def test_a_plain_name_is_an_option_of_any_type_left_out_unless_given(in_tmp: Path) -> None:
    spec = BackendSpec("plain", "x.y:Z", "plain", options=("anything",))
    assert spec.option_names == ("anything",)
    settings = load_settings()
    assert settings.checked_backend_options("plain", spec.options) == {}
    assert settings.checked_backend_options("plain", spec.options, {"anything": [1]}) == {
        "anything": [1]}
