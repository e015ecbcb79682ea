"""Shared fixtures: a clean settings environment for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridmap_core.model.config import SETTINGS, plugin_settings
from tests.support.browser import browser  # noqa: F401  (the fixture, for every test module)
from tests.support.needs import unavailable

# A cluster's client environment: with it, the automatic choice of backend is that
# cluster's. Tests that do not ask for a cluster run as on a machine without one.
CLUSTER_VARIABLES = ("SGE_ROOT", "SGE_CELL", "DRMAA_LIBRARY_PATH")
# Slurm's tools need no variables, only /etc/slurm/slurm.conf: pointing SLURM_CONF
# at nothing hides the cluster, as on a machine without Slurm.
NO_SLURM = "/nonexistent/gridmap-tests/slurm.conf"
# The settings the installed plugins declare (SMTP_*, GRIDMAP_MONITOR_*, USE_MEM_FREE):
# cleared as the core's are.
ALL_SETTINGS = [*SETTINGS.values(), *plugin_settings().values()]


@pytest.fixture(autouse=True)
def clean_settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No setting leaks in from the developer's environment or config files."""
    if not any(name.endswith("_cluster") for name in request.fixturenames):
        for name in CLUSTER_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("SLURM_CONF", NO_SLURM)
    for setting in ALL_SETTINGS:
        monkeypatch.delenv(setting.env_var, raising=False)
    monkeypatch.delenv("GRIDMAP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    # Failing jobs would mail the machine's default SMTP server: the notifier tests
    # turn mail on, each with a server of its own.
    monkeypatch.setenv("SEND_ERROR_MAIL", "False")
    yield


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in an empty working directory (no gridmap.toml, no pyproject)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc), for leak checks."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _cluster_missing(name: str, reason: str) -> None:
    """A test that needs a cluster fails in CI and is skipped elsewhere."""
    unavailable(f"the {name} test cluster", reason, "start it")


@pytest.fixture(scope="session")
def sge_cluster() -> str:
    """The single-node Grid Engine of scripts/sge, checked once: its host name."""
    import socket
    import subprocess

    from gridmap_core.backend.drmaa import library_problem

    problem = library_problem(["SGE_ROOT"])
    if problem:
        _cluster_missing("Grid Engine", f"{problem} (run the tests with scripts/test.sh, "
                         "which sources /etc/gridmap-sge.env)")
    check = Path(__file__).resolve().parents[1] / "scripts" / "sge" / "check.sh"
    done = subprocess.run(["bash", str(check)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        _cluster_missing("Grid Engine", done.stderr.strip()[-500:])
    return socket.gethostname()


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """The single-node Slurm of scripts/slurm, checked once: its node's name."""
    import subprocess

    from gridmap_slurm.backend import controller_problem

    problem = controller_problem()
    if problem:
        _cluster_missing("Slurm", problem)
    check = Path(__file__).resolve().parents[1] / "scripts" / "slurm" / "check.sh"
    done = subprocess.run(["bash", str(check)], capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        _cluster_missing("Slurm", done.stderr.strip()[-500:])
    return subprocess.run(["hostname", "-s"], capture_output=True, text=True,
                          check=True).stdout.strip()
