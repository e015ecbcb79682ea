"""The ``gridmap`` command's own face: --version, --help, and columns that line up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gridmap_core import BackendSpec, __version__, cli, get_plugin_manager, hookimpl
from gridmap_core.model.config import user_config_path
from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT


def gridmap(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridmap_core.cli", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_version(tmp_path: Path) -> None:
    done = gridmap("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"gridmap {__version__}\n"


def test_help_shows_no_markup(tmp_path: Path) -> None:
    done = gridmap("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "``" not in done.stdout and "`" not in done.stdout, done.stdout
    assert "--version" in done.stdout


class LongNamed:
    """A backend whose name and package are longer than any installed one's."""

    @hookimpl
    def gridmap_backends(self) -> list[BackendSpec]:
        return [BackendSpec("a_backend_with_a_long_name", "gridmap_local.backend:LocalBackend",
                            "a long-named backend", is_cluster=False)]


def test_backends_columns_line_up(capsys: pytest.CaptureFixture[str]) -> None:
    manager = get_plugin_manager()
    manager.register(LongNamed(), name="long-named")
    try:
        assert cli.main(["backends"]) == 0
    finally:
        manager.unregister(name="long-named")
    rows = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert any(row.startswith("a_backend_with_a_long_name ") for row in rows), rows
    # Where the status and description columns start: the same in every row.
    statuses = {re.search(r" (not usable|usable|broken) ", row).start()  # type: ignore[union-attr]
                for row in rows}
    assert len(statuses) == 1, rows


def test_config_columns_line_up_and_the_user_file_is_said_to_exist_or_not(
        in_tmp: Path) -> None:
    queue = "a-queue-whose-name-takes-35-letters"  # wider than the values were let be
    (in_tmp / "gridmap.toml").write_text(
        f"default_queue = {queue!r}\n[backends.local]\nstart_method = 'spawn'\n")
    done = gridmap("config", "--backend", "local", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if " = " in line]
    assert any(row.startswith("local.start_method ") for row in rows), rows
    assert len({row.index(" = ") for row in rows}) == 1, rows
    assert len({row.index(" # ") for row in rows}) == 1, rows
    user = user_config_path()
    assert f"# user config file: {user} (does not exist)" in done.stdout
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text("num_resubmits = 2\n")
    done = gridmap("config", cwd=in_tmp)
    assert f"# user config file: {user} (exists)" in done.stdout, done.stdout
