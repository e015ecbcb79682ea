"""Without a usable Grid Engine client environment, the sge backend says what to do,
and a map that names it raises (it never runs the jobs locally instead)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gridmap_sge.backend import SgeBackend

from gridmap_core import grid_map
from gridmap_core.plugins.selection import BackendUnavailableError


def test_missing_sge_root_names_the_variable_and_the_settings_file() -> None:
    availability = SgeBackend().availability()
    assert not availability.usable
    assert "SGE_ROOT is not set" in availability.reason
    assert "settings.sh" in availability.reason


def test_missing_library_path_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGE_ROOT", "/var/lib/gridengine")
    availability = SgeBackend().availability()
    assert not availability.usable
    assert "DRMAA_LIBRARY_PATH is not set" in availability.reason


def test_a_library_path_that_does_not_exist_is_named(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("SGE_ROOT", "/var/lib/gridengine")
    monkeypatch.setenv("DRMAA_LIBRARY_PATH", str(tmp_path / "libdrmaa.so"))
    availability = SgeBackend().availability()
    assert not availability.usable
    assert f"{tmp_path / 'libdrmaa.so'} does not exist" in availability.reason


def test_a_map_that_names_sge_raises_instead_of_running_locally() -> None:
    with pytest.raises(BackendUnavailableError, match=r"backend 'sge'.*SGE_ROOT is not set"):
        grid_map(abs, [-1, -2], backend="sge")


def test_require_cluster_raises_instead() -> None:
    with pytest.raises(BackendUnavailableError, match="SGE_ROOT is not set"):
        grid_map(abs, [-1], backend="sge", require_cluster=True)
