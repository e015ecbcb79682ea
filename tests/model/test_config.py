"""Settings: argument > environment > GRIDMAP_CONFIG > project file > user file > default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridmap_core import ConfigError, GridMapExecutor, load_settings
from gridmap_core.model.config import user_config_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_the_originals(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEND_ERROR_MAIL")  # the suite turns mail off
    settings = load_settings()
    assert settings["NUM_RESUBMITS"] == 3
    assert settings["MAX_TIME_BETWEEN_HEARTBEATS"] == 90
    assert settings["DEFAULT_QUEUE"] == "all.q"
    assert settings["DEFAULT_TEMP_DIR"] == "/scratch/"
    assert settings["DEFAULT_PAR_ENV"] == "smp"
    assert settings["USE_MEM_FREE"] is False
    assert settings["IDLE_THRESHOLD"] == 1.0
    assert settings["HEARTBEAT_FREQUENCY"] == 10
    assert settings["CHECK_FREQUENCY"] == 15
    assert settings["ERROR_MAIL_SENDER"] == "error@gridmap.py"
    assert settings["SEND_ERROR_MAIL"] is True and settings["CREATE_PLOTS"] is True
    assert settings.backend is None
    assert set(settings.sources.values()) == {"default"}


def test_each_layer_beats_the_next(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = write(user_config_path(), "num_resubmits = 1\ncheck_frequency = 1\n"
                 "heartbeat_frequency = 1\nidle_threshold = 1.5\nmax_idle_heartbeats = 1\n")
    write(in_tmp / "gridmap.toml", "num_resubmits = 2\ncheck_frequency = 2\n"
          "heartbeat_frequency = 2\nidle_threshold = 2.5\n")
    named = write(in_tmp / "other.toml", "num_resubmits = 3\ncheck_frequency = 3\n"
                  "heartbeat_frequency = 3\n")
    monkeypatch.setenv("GRIDMAP_CONFIG", str(named))
    monkeypatch.setenv("NUM_RESUBMITS", "4")
    monkeypatch.setenv("CHECK_FREQUENCY", "4")
    settings = load_settings({"num_resubmits": 5})
    assert settings["NUM_RESUBMITS"] == 5
    assert settings.sources["NUM_RESUBMITS"] == "argument num_resubmits"
    assert settings["CHECK_FREQUENCY"] == 4
    assert settings.sources["CHECK_FREQUENCY"] == "environment variable CHECK_FREQUENCY"
    assert settings["HEARTBEAT_FREQUENCY"] == 3
    assert str(named) in settings.sources["HEARTBEAT_FREQUENCY"]
    assert settings["IDLE_THRESHOLD"] == 2.5
    assert "gridmap.toml" in settings.sources["IDLE_THRESHOLD"]
    assert settings["MAX_IDLE_HEARTBEATS"] == 1
    assert str(user) in settings.sources["MAX_IDLE_HEARTBEATS"]
    assert settings.sources["NUM_RESUBMITS"] != settings.sources["IDLE_THRESHOLD"]


def test_pyproject_tool_table(in_tmp: Path) -> None:
    write(in_tmp / "pyproject.toml", "[project]\nname='x'\n[tool.gridmap]\n"
          "DEFAULT_QUEUE = 'big.q'\nbackend = 'local'\n")
    settings = load_settings()
    assert settings["DEFAULT_QUEUE"] == "big.q"
    assert settings.backend == "local"
    assert "[tool.gridmap]" in settings.sources["DEFAULT_QUEUE"]


def test_gridmap_toml_wins_over_pyproject(in_tmp: Path) -> None:
    write(in_tmp / "pyproject.toml", "[tool.gridmap]\ndefault_queue = 'a.q'\n")
    write(in_tmp / "gridmap.toml", "default_queue = 'b.q'\n")
    assert load_settings()["DEFAULT_QUEUE"] == "b.q"


def test_backend_sections(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(in_tmp / "gridmap.toml", "backend = 'local'\nnum_resubmits = 1\n"
          "[backends.local]\nnum_resubmits = 7\nstart_method = 'spawn'\n"
          "[backends.sge]\nnum_resubmits = 9\n")
    settings = load_settings()
    assert settings["NUM_RESUBMITS"] == 7
    assert "[backends.local]" in settings.sources["NUM_RESUBMITS"]
    assert settings.backend_options("local")["start_method"][0] == "spawn"
    assert settings.for_backend("sge")["NUM_RESUBMITS"] == 9
    monkeypatch.setenv("NUM_RESUBMITS", "2")  # the environment still beats any file
    assert load_settings()["NUM_RESUBMITS"] == 2


def test_backend_from_environment_and_argument(in_tmp: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    write(in_tmp / "gridmap.toml", "backend = 'from_file'\n")
    assert load_settings().backend == "from_file"
    monkeypatch.setenv("GRIDMAP_BACKEND", "from_env")
    assert load_settings().backend == "from_env"
    assert load_settings({"backend": "from_arg"}).backend == "from_arg"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("num_resubmits = 'five'\n", ["gridmap.toml", "'num_resubmits'", "whole number"]),
     ("use_mem_free = 'maybe'\n", ["use_mem_free", "true or false"]),
     ("colour = 'blue'\n", ["unknown key 'colour'", "num_resubmits"]),
     ("num_resubmits = \n", ["not valid TOML"]),
     ("[backends]\nsge = 3\n", ["[backends.sge] must be a table"])],
)
def test_malformed_files_name_file_key_and_accepted(in_tmp: Path, text: str,
                                                    expected: list[str]) -> None:
    write(in_tmp / "gridmap.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    for part in expected:
        assert part in str(info.value)


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [("NUM_RESUBMITS", "x", "environment variable NUM_RESUBMITS"),
     ("IDLE_THRESHOLD", "high", "a number"),
     ("SEND_ERROR_MAIL", "sometimes", "true or false")],
)
def test_bad_environment_values(in_tmp: Path, monkeypatch: pytest.MonkeyPatch, var: str,
                                value: str, expected: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_boolean_spellings(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for text, expected in [("TRUE", True), ("yes", True), ("1", True), ("False", False),
                           ("off", False)]:
        monkeypatch.setenv("USE_MEM_FREE", text)
        assert load_settings()["USE_MEM_FREE"] is expected


def test_gridmap_config_must_exist(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDMAP_CONFIG", str(in_tmp / "missing.toml"))
    with pytest.raises(ConfigError, match="GRIDMAP_CONFIG names"):
        load_settings()


def test_unknown_backend_option_is_refused_before_submission(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "[backends.local]\nstart_mehtod = 'fork'\n")
    with pytest.raises(ConfigError) as info:
        GridMapExecutor("local")
    assert "start_mehtod" in str(info.value)
    assert "start_method" in str(info.value)
    assert "gridmap.toml" in str(info.value)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridmap_core.cli", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


def test_cli_config_shows_value_and_source(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "default_queue = 'q1'\n[backends.local]\n"
          "start_method = 'spawn'\n")
    result = run_cli("config", "--backend", "local", cwd=in_tmp,
                     env={"NUM_RESUBMITS": "6"})
    assert result.returncode == 0, result.stderr
    lines = {line.split("=")[0].strip(): line for line in result.stdout.splitlines()
             if "=" in line}
    assert "6" in lines["NUM_RESUBMITS"]
    assert "environment variable NUM_RESUBMITS" in lines["NUM_RESUBMITS"]
    assert "'q1'" in lines["DEFAULT_QUEUE"]
    assert "gridmap.toml" in lines["DEFAULT_QUEUE"]
    assert "default" in lines["HEARTBEAT_FREQUENCY"]
    assert "argument backend" in lines["BACKEND"]
    assert "'spawn'" in lines["local.start_method"]


def test_cli_config_never_prints_a_password(in_tmp: Path) -> None:
    result = run_cli("config", cwd=in_tmp,
                     env={"SMTP_USER": "me", "SMTP_PASSWORD": "hunter2-secret"})
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("SMTP_PASSWORD")]
    assert "(set, not shown)" in line and "environment variable SMTP_PASSWORD" in line
    result = run_cli("config", cwd=in_tmp, env={"SMTP_PASSWORD": ""})
    assert "(not set)" in result.stdout


def test_cli_config_reports_bad_file(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "num_resubmits = 'many'\n")
    result = run_cli("config", cwd=in_tmp)
    assert result.returncode == 2
    assert "num_resubmits" in result.stderr
    assert "whole number" in result.stderr


def test_cli_backends_lists_local(in_tmp: Path) -> None:
    result = run_cli("backends", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("local "))
    assert "gridmap-local" in line
    assert "usable" in line


# `gridmap config` checks the settings as a map would, and exits 2 with the error.


def test_cli_config_refuses_an_unknown_key_of_the_chosen_backend(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "backend = 'local'\n[backends.local]\nmod = 'runner'\n")
    result = run_cli("config", cwd=in_tmp)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown key 'mod' for backend 'local'" in result.stderr
    assert "gridmap.toml [backends.local]" in result.stderr
    assert "mode" in result.stderr  # what is accepted instead


def test_cli_config_refuses_a_backend_that_is_not_installed(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "backend = 'nosuch'\n")
    result = run_cli("config", cwd=in_tmp)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'nosuch'" in result.stderr and "gridmap.toml" in result.stderr
    assert "local" in result.stderr  # the installed backends are named


def test_cli_config_checks_the_section_of_every_installed_backend(in_tmp: Path) -> None:
    # A map on sge would refuse this key, even though this map would run locally.
    write(in_tmp / "gridmap.toml", "[backends.sge]\nqueu = 'long.q'\n")
    result = run_cli("config", cwd=in_tmp)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown key 'queu' for backend 'sge'" in result.stderr


def test_cli_config_notes_a_section_of_no_installed_backend(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "[backends.lcoal]\nnum_resubmits = 1\n")
    result = run_cli("config", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert "[backends.lcoal]: no backend called 'lcoal' is installed" in result.stdout


def test_cli_config_accepts_good_settings(in_tmp: Path) -> None:
    write(in_tmp / "gridmap.toml", "backend = 'local'\n[backends.local]\nmode = 'runner'\n")
    result = run_cli("config", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
